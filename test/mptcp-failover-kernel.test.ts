/**
 * Failover against the Linux kernel's MPTCP (issue 7, must-show 5): our client (a TUN stack in
 * `cli`, mptcp-user-peer.ts) → a kernel MPTCP server in `srv` (C flag via
 * allow_join_initial_addr_port=0, a signal endpoint on its path-2 address; kernel-gap-server.py
 * receives the lab's seeded payload, hashes it and prints each gap in delivered bytes). Both
 * paths are shaped to 25 Mbit/s with tbf. Our client joins the announced address from both of
 * its addresses, so path 2 carries one subflow (ours c2 → the kernel's path-2 address).
 * Mid-transfer path 2's link goes down on our side (`ip link set p2 down` in `cli`: our stack
 * behind its TUN cannot see it, only its subflow's RTOs tell); the stall is the largest gap at
 * the kernel server while it is down. After 3 s it comes back: our path manager re-creates the
 * subflow, and the kernel confirms it (MPJoinAckRx, and `ss` shows a subflow from our path-2
 * address with a new port carrying bytes). SHA-256 equal at the end.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  doneCounters,
  failoverPeer,
  gaps,
  linkDown,
  linkUp,
  shapePaths,
  stallBetween,
  type Tick,
  tickWhere,
} from './support/failover-lab.js';
import {
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  mptcpCounters,
  mptcpSubflows,
  nonZero,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { plumbUserClient, userClientAddr } from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { start } from './support/perf-lab.js';

const GAP_SERVER = fileURLToPath(new URL('./support/kernel-gap-server.py', import.meta.url));
const lab = new NetnsLab();
after(() => lab.cleanup());

test('our client → kernel MPTCP server: path 2 down mid-transfer (stall), back up (a re-created subflow the kernel sees)', async (t) => {
  const t0 = Date.now();
  const topo = twoPathTopology(lab, { tag: 'fk' });
  plumbUserClient(lab, topo);
  shapePaths(lab, topo, '25mbit');
  const [p1, p2] = topo.paths;
  const port = 5321;
  configureMptcp(lab, topo.srv, {
    sysctls: { enabled: true, allow_join_initial_addr_port: false },
    limits: { subflows: 8, addAddrAccepted: 0 },
    flush: true,
    endpoints: [{ addr: p2.far.v4, dev: p2.far.dev, flags: ['signal'] }],
  });
  const kernelBefore = mptcpCounters(lab, topo.srv);
  const server = start(lab, topo.srv, 'python3', [GAP_SERVER, '--host', '0.0.0.0', '--port', String(port)]);
  await server.waitFor(/^listening /m, 30_000);
  const c1 = userClientAddr(1, 'v4');
  const c2 = userClientAddr(2, 'v4');
  const size = 48 << 20;
  const seed = 13;
  const client = failoverPeer(lab, topo.cli, 'client', [
    ...['--tun', 'fkc', '--addr', c1, '--addr', c2, '--host', p1.far.v4, '--port', String(port)],
    ...['--local', c1, '--bytes', String(size), '--seed', String(seed), '--timeout', '90'],
  ]);
  const onPath2 = (k: Tick, minId = 0) =>
    k.subflows.filter((s) => s.local.startsWith(`${c2}:`) && s.est && s.id >= minId);
  const warm = await tickWhere(client, 0, (k) => onPath2(k).some((s) => s.acked > 2 << 20), 30_000).catch(
    (e: Error) => {
      const k = nonZero(counterDelta(kernelBefore, mptcpCounters(lab, topo.srv)));
      throw new Error(`${e.message}\nkernel ${JSON.stringify(k)}`);
    },
  );
  const firstIds = Math.max(...warm.subflows.map((s) => s.id)) + 1;
  const oldPorts = new Set(onPath2(warm).map((s) => s.local.slice(c2.length + 1)));

  const downAt = linkDown(lab, topo.cli, p2.cli.dev);
  await new Promise((r) => setTimeout(r, Math.max(0, downAt + 3000 - Date.now())));
  const joinsBeforeUp = mptcpCounters(lab, topo.srv).MPJoinAckRx ?? 0;
  const upAt = linkUp(lab, topo.cli, p2.cli.dev, [
    ['default', 'via', p2.far.v4, 'dev', p2.cli.dev, 'table', '202'],
  ]);
  const back = await tickWhere(client, upAt, (k) => onPath2(k, firstIds).some((s) => s.acked > 0), 15_000);
  // The kernel's view of it, while the transfer goes on: a new join, and a subflow from our
  // path-2 address on a port that is not the old one, with bytes received.
  const joinsAfter = await eventually(
    'the kernel counts the re-created join',
    () => mptcpCounters(lab, topo.srv).MPJoinAckRx ?? 0,
    (n) => n > joinsBeforeUp,
    5000,
  );
  const kernelSubflows = mptcpSubflows(lab, topo.srv, ['sport', '=', `:${port}`]);
  const fresh = kernelSubflows.filter(
    (s) => s.peer.addr === c2 && !oldPorts.has(String(s.peer.port)) && s.bytesReceived > 0,
  );

  const res = await server.waitFor(/^result (.*)\n/m, 90_000);
  const r = JSON.parse(res[1]!) as { bytes: number; sha256: string; maxGapMs: number };
  // Our client has the kernel's DATA_FIN once the server closed; `quit` if it still waits.
  const finished = await client.waitFor(/^result 0 /m, 20_000).then(
    () => true,
    () => false,
  );
  if (!finished) client.child.stdin!.write('quit\n');
  assert.equal((await client.done(20_000)).code, 0, client.stderr());
  const kernelDelta = nonZero(counterDelta(kernelBefore, mptcpCounters(lab, topo.srv)));
  const clientMib = doneCounters(client);
  const stall = stallBetween(server, downAt, upAt);
  const report = [
    `${Math.round((Date.now() - t0) / 1000)} s in all`,
    `path 2 down ${upAt - downAt} ms: stall at the kernel server ${stall} ms (largest gap of the whole transfer ${Math.round(r.maxGapMs)} ms; gaps >= 50 ms as [ms, end - downAt]: ${JSON.stringify(gaps(server).map((g) => [g.ms, g.end - downAt]))})`,
    `link up: a re-created subflow carried data ${back.at - upAt} ms after`,
    `kernel MPJoinAckRx ${joinsBeforeUp} -> ${joinsAfter}; kernel subflows from ${c2}: ${JSON.stringify(kernelSubflows.filter((s) => s.peer.addr === c2).map((s) => [s.peer.port, s.bytesReceived]))} (old ports ${[...oldPorts]})`,
    `our client ${JSON.stringify(clientMib)}`,
    `kernel ${JSON.stringify(kernelDelta)}`,
  ].join('; ');
  t.diagnostic(report);
  assert.equal(r.bytes, size, report);
  assert.equal(r.sha256, labSha256(seed, size), report);
  assert.ok((clientMib.subflowsRecreated ?? 0) >= 1, report);
  assert.ok(fresh.length >= 1, report);
  // Generous guards on a noisy 2-core machine (the goal, 300 ms and 2 s, is in the report).
  assert.ok(stall < 1500, report);
  assert.ok(back.at - upAt <= 3000, report);
});
