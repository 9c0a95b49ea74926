/**
 * `mptun server --no-routes` in a topology wired by someone else: the TUN and the routes for the
 * VIP and the unique address exist before mptun starts (made here), mptun attaches to the TUN,
 * serves through it (a kernel MPTCP client that joins the unique address), resets a client whose
 * backend is down, and on SIGTERM leaves the TUN and those routes as it found them.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { configureMptcp, labSha256, startClient, startServer, twoPathTopology } from './support/mptcp-lab.js';
import { plumbUserServer, userServerAddr } from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

test('--no-routes: serves over a TUN and routes made by someone else, and leaves them on exit', async () => {
  const t = twoPathTopology(lab, { tag: 'srvn' });
  plumbUserServer(lab, t);
  configureMptcp(lab, t.cli, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
  });
  const tun = 'mpt-pre';
  const vip = userServerAddr(1, 'v4');
  const unique = userServerAddr(2, 'v4');
  lab.exec(t.srv, 'ip', 'tuntap', 'add', 'mode', 'tun', 'name', tun);
  lab.exec(t.srv, 'ip', 'link', 'set', tun, 'up');
  for (const a of [vip, unique]) lab.exec(t.srv, 'ip', 'route', 'add', `${a}/32`, 'dev', tun);
  // Without the carrier flag: "linkdown" follows the TUN's holder, asynchronously after an exit.
  const routes = () => lab.exec(t.srv, 'ip', 'route', 'show', 'dev', tun).replaceAll(' linkdown', '');
  const routesBefore = routes();
  const reply = 3_000_000;
  await startServer(lab, t.srv, {
    host: '127.0.0.1',
    port: 7101,
    tcp: true,
    conns: 0,
    send: reply,
    seed: 51,
  });
  const mptun = startMptun(lab, t.srv, [
    'server',
    '--tun',
    tun,
    '--vip',
    vip,
    '--unique',
    unique,
    '--no-routes',
    '--listen',
    '5101',
    '--backend',
    '127.0.0.1:7101',
    // Nothing listens there: its clients are reset.
    '--listen',
    '5102',
    '--backend',
    '127.0.0.1:7999',
  ]);
  await mptun.waitFor(/"routes":\[\].*"msg":"server: listening"/);

  const size = 4_000_000;
  const client = startClient(lab, t.cli, {
    host: vip,
    port: 5101,
    bytes: size,
    seed: 52,
    subflows: 1,
    subflowsWhen: 'connected',
    timeout: 30,
  });
  await client.done(45_000);
  const c = client.connections()[0];
  assert.equal(c?.proto, 'mptcp');
  assert.equal(c?.subflows[0]?.dst.addr, unique, 'joined the unique address');
  assert.deepEqual(c?.received, { bytes: reply, sha256: labSha256(51, reply) });

  const refused = startClient(lab, t.cli, { host: vip, port: 5102, bytes: 1000, seed: 53, timeout: 10 });
  // The reset shows as ECONNRESET on a read, or, when it lands before the client's shutdown(),
  // as ENOTCONN (Errno 107) there: the socket is already closed by the RST. A clean FIN gives neither.
  await assert.rejects(refused.done(20_000), /Connection reset|ECONNRESET|Errno 104|Errno 107/);
  await mptun.waitFor(/"err":"connect ECONNREFUSED 127\.0\.0\.1:7999".*"msg":"connection failed"/);

  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  // Not ours: the TUN and its routes stay as they were.
  assert.equal(routes(), routesBefore);
  assert.match(lab.exec(t.srv, 'ip', 'link', 'show', tun), new RegExp(tun));
});
