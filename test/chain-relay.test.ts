/**
 * The chain bench's baseline (bench/chain.ts) is what it claims: app in cli → a Node relay under
 * `mptcpize run` → kernel MPTCP through the ECMP load balancer → a Node relay under mptcpize on
 * s1 or s2 → the backend on app (test/support/chain-lab.ts). One connection, seeded bytes both
 * ways, SHA-256 checked at each end; while it is open, cli's kernel shows an MPTCP socket with
 * two extra subflows, one from each path's address, joined to the unique address of the server
 * that holds the connection (C flag: no join to the VIP), and the server's relay holds an MPTCP
 * socket too. So the baseline cannot silently be plain TCP or a single path.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChainLab, RELAY_OFFSET, SHA_PORT } from './support/chain-lab.js';
import { counterDelta, eventually, mptcpSockets, mptcpSubflows, nonZero } from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
let c: ChainLab;
const UP = 16 * 1024 * 1024;
const DOWN = 8 * 1024 * 1024;

before(async () => {
  c = await ChainLab.create(lab, 'cr', { mptun: false, shaDown: DOWN });
});
after(async () => {
  await c?.close();
  await lab.cleanup();
});

test('kernel MPTCP + two Node relays through the load balancer: SHA-256 both ways, a subflow per path', async (ctx) => {
  const port = SHA_PORT + RELAY_OFFSET;
  const before = c.counters();
  let seen:
    | { paths: string[]; joinedTo: string[]; extra: number; serverExtra: number[]; acked: number }
    | undefined;
  const r = await c.sha('kernel', UP, 5, async () => {
    // The app has written everything (it holds before its FIN); the relay may still be sending
    // the tail, and the kernel has no event for "acknowledged": a bounded retry until the
    // subflows' acknowledged bytes cover the upload (handshake and DATA_FIN bytes come on top).
    const subflows = await eventually(
      'the upload acknowledged on the MPTCP subflows',
      () => mptcpSubflows(lab, c.ns.cli, ['dport', '=', `:${port}`]),
      (list) => list.reduce((sum, s) => sum + s.bytesAcked, 0) >= UP,
      30_000,
    );
    const conns = mptcpSockets(lab, c.ns.cli, ['dport', '=', `:${port}`]);
    assert.equal(conns.length, 1, JSON.stringify(conns));
    assert.equal(conns[0]!.peer.addr, c.plan.vip.v4);
    seen = {
      paths: subflows.map((s) => s.local.addr).sort(),
      joinedTo: subflows.filter((s) => s.mptcp?.join).map((s) => s.peer.addr),
      extra: conns[0]!.subflows,
      serverExtra: c.plan.servers.flatMap((s) =>
        mptcpSockets(lab, c.ns[s.name], ['sport', '=', `:${port}`]).map((m) => m.subflows),
      ),
      acked: subflows.reduce((sum, s) => sum + s.bytesAcked, 0),
    };
    ctx.diagnostic(
      `cli subflows: ${subflows.map((s) => `${s.local.addr} → ${s.peer.addr} acked ${s.bytesAcked}`).join('; ')}`,
    );
  });
  ctx.diagnostic(JSON.stringify(r));
  assert.ok(r.ok, JSON.stringify(r));
  assert.ok(seen !== undefined);
  const p1 = c.plan.paths[0].cli.v4;
  const p2 = c.plan.paths[1].cli.v4;
  // The initial subflow and a join from path 1, a join from path 2.
  assert.deepEqual(seen.paths, [p1, p1, p2].sort(), JSON.stringify(seen));
  assert.equal(seen.extra, 2, JSON.stringify(seen));
  assert.equal(seen.joinedTo.length, 2, JSON.stringify(seen));
  const uniques = c.plan.servers.map((s) => s.unique.v4);
  assert.equal(new Set(seen.joinedTo).size, 1, 'both joins reached one server');
  assert.ok(uniques.includes(seen.joinedTo[0]!), JSON.stringify(seen));
  // The server relay's accepted socket is MPTCP with the same two joins.
  assert.deepEqual(seen.serverExtra, [2], JSON.stringify(seen));
  // The upload went over the MPTCP subflows.
  assert.ok(seen.acked >= UP, JSON.stringify(seen));

  const d = counterDelta(before.cli, c.counters().cli);
  assert.ok((d['MPCapableSYNACKRX'] ?? 0) >= 1, JSON.stringify(nonZero(d)));
  assert.ok((d['MPJoinSynAckRx'] ?? 0) >= 2, JSON.stringify(nonZero(d)));
  assert.equal(d['MPFallbackTokenInit'] ?? 0, 0, JSON.stringify(nonZero(d)));
  // Both relays carried exactly the connection's bytes.
  const relayed = c.relayLines().flatMap((h) => h.lines.map((l) => ({ host: h.host, ...l })));
  assert.equal(relayed.length, 2, JSON.stringify(relayed));
  for (const l of relayed) {
    assert.equal(l.msg, 'relayed', JSON.stringify(l));
    assert.equal(l.up, UP, JSON.stringify(l));
    assert.equal(l.down, DOWN, JSON.stringify(l));
  }
  assert.deepEqual(
    relayed.map((l) => l.host).sort(),
    ['cli', seen.joinedTo[0] === uniques[0] ? 's1' : 's2'].sort(),
  );
});
