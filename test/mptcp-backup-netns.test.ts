/**
 * A backup path in namespaces (issue 7, must-show 5): our client ↔ our server, each on a TUN, over
 * the lab's two paths (mptcp-lab.ts twoPathTopology, plumbed as mptcp-user-lab.ts does), each
 * shaped to 25 Mbit/s with tbf. The client's path-2 address is a backup (MptcpConfig.backupAddresses:
 * its join carries the B flag), so the connection has a regular subflow on path 1 and a backup one
 * on path 2.
 * 1. While path 1 works the backup carries 0 bytes: counted at the client (bytes sent on it) and
 *    at the server (bytes received on it).
 * 2. Path 1's link goes down on the far side (neither stack can see it): after the regular
 *    subflow's RTOs (staleAfterRtos) the backup takes over (backupTakeover, bytes on the backup);
 *    the stall is the largest gap in delivered bytes at the server, reported.
 * 3. The link comes back: a regular subflow carries data again (the old one recovered or a
 *    re-created one), and the backup goes idle.
 * The transfer completes with SHA-256 equal. Processes, qdiscs and namespaces go with the lab.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  doneCounters,
  failoverPeer,
  linkDown,
  linkUp,
  result0,
  shapePaths,
  stallBetween,
  type Tick,
  tickBefore,
  tickWhere,
} from './support/failover-lab.js';
import { labSha256, twoPathTopology } from './support/mptcp-lab.js';
import {
  plumbUserClient,
  plumbUserServer,
  userClientAddr,
  userServerAddr,
} from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

test('backup path: idle while the regular works, takes over at its failure, idle again once it is back', async (t) => {
  const t0 = Date.now();
  const topo = twoPathTopology(lab, { tag: 'bk' });
  plumbUserClient(lab, topo);
  plumbUserServer(lab, topo);
  shapePaths(lab, topo, '25mbit');
  const c1 = userClientAddr(1, 'v4');
  const c2 = userClientAddr(2, 'v4');
  const s1 = userServerAddr(1, 'v4');
  const s2 = userServerAddr(2, 'v4');
  const size = 40 << 20;
  const seed = 9;
  const server = failoverPeer(lab, topo.srv, 'server', [
    '--tun',
    'bks',
    '--addr',
    s1,
    '--addr',
    s2,
    '--port',
    '5311',
  ]);
  await server.waitFor(/^listening /m, 20_000);
  const client = failoverPeer(lab, topo.cli, 'client', [
    ...['--tun', 'bkc', '--addr', c1, '--addr', c2, '--host', s1, '--port', '5311', '--local', c1],
    ...['--backup', c2, '--bytes', String(size), '--seed', String(seed), '--timeout', '90'],
  ]);
  const from = (k: Tick, addr: string) => k.subflows.filter((s) => s.local.startsWith(`${addr}:`) && s.est);
  const sum = (list: Tick['subflows'], f: 'sent' | 'acked' | 'rx') => list.reduce((n, s) => n + s[f], 0);
  // Warm: the backup join is fully established and path 1 has carried 4 MiB.
  const warm = await tickWhere(
    client,
    0,
    (k) => from(k, c2).length > 0 && sum(from(k, c1), 'acked') > 4 << 20,
    30_000,
  );
  assert.ok(
    from(warm, c2).every((s) => s.backup),
    `the path-2 subflow is a backup: ${JSON.stringify(warm.subflows)}`,
  );

  // 1 + 2. Path 1's far end goes down.
  const downAt = linkDown(lab, topo.srv, topo.paths[0].far.dev);
  const before = tickBefore(client, downAt)!;
  const serverBefore = tickBefore(server, downAt);
  const backupSentBefore = sum(from(before, c2), 'sent');
  const serverBackup = (k: Tick | undefined) =>
    sum(k?.subflows.filter((s) => s.remote.startsWith(`${c2}:`)) ?? [], 'rx');
  const backupRxBefore = serverBackup(serverBefore);
  const took = await tickWhere(client, downAt, (k) => sum(from(k, c2), 'acked') > 0, 15_000);
  // Down for 3 s: the regular subflow is stale and its replacement attempts go into the dead link.
  await new Promise((r) => setTimeout(r, Math.max(0, downAt + 3000 - Date.now())));
  const p1 = topo.paths[0];
  const upAt = linkUp(lab, topo.srv, p1.far.dev, [['10.51.1.0/24', 'via', p1.cli.v4, 'dev', p1.far.dev]]);
  const atUp = tickBefore(client, upAt)!;
  const regularAtUp = new Map(from(atUp, c1).map((s) => [s.id, s.acked]));
  // 3. A regular subflow carries data again (more acked than at the link's return, or a new one).
  const back = await tickWhere(
    client,
    upAt,
    (k) => from(k, c1).some((s) => s.acked > (regularAtUp.get(s.id) ?? 0) + (256 << 10)),
    15_000,
  );
  // Then the backup goes idle: what it sent stays the same over a second (after half a second
  // for what it had in flight).
  const settled = await tickWhere(client, back.at + 500, () => true, 5000);
  const idleEnd = await tickWhere(client, settled.at + 1000, () => true, 5000);
  const idle = {
    sentThen: sum(from(settled, c2), 'sent'),
    sentLater: sum(from(idleEnd, c2), 'sent'),
    regularThen: sum(from(settled, c1), 'acked'),
    regularLater: sum(from(idleEnd, c1), 'acked'),
  };

  const r = await result0(server, 90_000);
  client.child.stdin!.write('quit\n');
  assert.equal((await client.done(20_000)).code, 0, client.stderr());
  server.child.stdin!.end();
  assert.equal((await server.done(15_000)).code, 0, server.stderr());
  const clientMib = doneCounters(client);
  const serverMib = doneCounters(server);
  const stall = stallBetween(server, downAt, upAt);
  const report = [
    `${Math.round((Date.now() - t0) / 1000)} s in all`,
    `before the failure: backup sent ${backupSentBefore} B (client), received ${backupRxBefore} B (server), path 1 acked ${sum(from(before, c1), 'acked')} B`,
    `link down: the backup carried data ${took.at - downAt} ms after; stall ${stall} ms`,
    `link up: a regular subflow carried data again ${back.at - upAt} ms after`,
    `then over 1 s: backup sent ${idle.sentLater - idle.sentThen} B, regular acked ${idle.regularLater - idle.regularThen} B`,
    `client ${JSON.stringify(clientMib)}`,
    `server MPJoinSynBackupRx ${serverMib.MPJoinSynBackupRx ?? 0}`,
  ].join('; ');
  t.diagnostic(report);
  assert.equal(r.bytes, size, report);
  assert.equal(r.sha256, labSha256(seed, size), report);
  // 1. Nothing on the backup while the regular path worked, at either end.
  assert.equal(backupSentBefore, 0, report);
  assert.notEqual(serverBefore, undefined, report);
  assert.equal(backupRxBefore, 0, report);
  assert.ok((serverMib.MPJoinSynBackupRx ?? 0) >= 1, report);
  // 2. The backup took over.
  assert.ok((clientMib.backupTakeover ?? 0) >= 1, report);
  assert.ok(sum(from(idleEnd, c2), 'acked') > 1 << 20, report);
  // Generous guards on a noisy 2-core machine (the figures are in the report).
  assert.ok(took.at - downAt < 5000, report);
  assert.ok(stall < 5000, report);
  // 3. Regular again, the backup idle.
  assert.equal(idle.sentLater - idle.sentThen, 0, report);
  assert.ok(idle.regularLater > idle.regularThen, report);
});
