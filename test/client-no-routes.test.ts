/**
 * `mptun client --addr ... --no-routes` in a topology wired by someone else (here: the test): a
 * persistent TUN with its own address, the stack's path addresses routed into it and out by
 * source address (mptcp-user-lab's plumbUserClient: no NAT, `srv` routes them back), the
 * intercepted address routed into the TUN. A plain TCP app reaches a kernel MPTCP server over
 * both paths, SHA-256 both ways; on SIGTERM the TUN and every route stay as they were.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { configureMptcp, labSha256, startClient, startServer, twoPathTopology } from './support/mptcp-lab.js';
import { plumbUserClient, userClientAddr } from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

test('--no-routes: addresses, TUN and routes made by someone else; both paths used; nothing removed on exit', async () => {
  const t = twoPathTopology(lab, { tag: 'clin' });
  const tun = 'mpt-wired';
  const dst = '10.70.0.1';
  lab.exec(t.srv, 'ip', 'addr', 'add', `${dst}/32`, 'dev', 'lo');
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 0 },
    flush: true,
  });
  plumbUserClient(lab, t);
  const addrs = [userClientAddr(1, 'v4'), userClientAddr(2, 'v4')];
  lab.exec(t.cli, 'ip', 'tuntap', 'add', 'mode', 'tun', 'name', tun);
  lab.exec(t.cli, 'sysctl', '-qw', `net.ipv6.conf.${tun}.disable_ipv6=1`);
  lab.exec(t.cli, 'ip', 'link', 'set', tun, 'up');
  lab.exec(t.cli, 'ip', 'addr', 'add', '100.64.0.1/32', 'dev', tun);
  for (const a of addrs) lab.exec(t.cli, 'ip', 'route', 'add', `${a}/32`, 'dev', tun);
  lab.exec(t.cli, 'ip', 'route', 'add', `${dst}/32`, 'dev', tun, 'src', '100.64.0.1');
  // Routes, rules and addresses; a route's "linkdown" (the TUN's carrier, off while no process
  // holds it) is left out: the kernel updates it asynchronously (linkwatch) after the exit.
  const wiring = () => [
    lab.exec(t.cli, 'ip', 'route', 'show', 'table', 'all').replaceAll(' linkdown', ''),
    lab.exec(t.cli, 'ip', 'rule', 'show'),
    lab.exec(t.cli, 'ip', '-o', 'addr', 'show'),
  ];
  const before = wiring();
  const mptun = startMptun(lab, t.cli, [
    'client',
    '--tun',
    tun,
    '--intercept',
    `${dst}/32`,
    '--addr',
    addrs[0]!,
    '--addr',
    addrs[1]!,
    '--no-routes',
  ]);
  await mptun.waitFor(/"msg":"client: intercepting"/);
  const up = 6_000_000;
  const down = 4_000_000;
  const server = await startServer(lab, t.srv, { host: dst, port: 5001, send: down, seed: 82 });
  const app = startClient(lab, t.cli, { host: dst, port: 5001, bytes: up, seed: 81, tcp: true });
  await app.done(30_000);
  await server.done(30_000);
  assert.deepEqual(server.connections()[0]?.received, { bytes: up, sha256: labSha256(81, up) });
  assert.deepEqual(app.connections()[0]?.received, { bytes: down, sha256: labSha256(82, down) });
  const closed = await mptun.waitFor(/^.*"msg":"connection closed".*$/m);
  assert.match(closed[0], /"subflows":2/);
  assert.match(
    closed[0],
    new RegExp(`${addrs[1]!.replaceAll('.', '\\.')}:\\d+->${dst.replaceAll('.', '\\.')}`),
  );
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stdout() + mptun.stderr());
  assert.deepEqual(wiring(), before);
});
