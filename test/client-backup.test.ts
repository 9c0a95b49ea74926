/**
 * `mptun client --backup IFACE` against a kernel MPTCP server: the join from the backup path
 * carries the B flag (the kernel marks that subflow backup), and while path 1 works neither end
 * puts data on it: the kernel's per-subflow count (ss -ti) for the upload, the bytes through
 * the client's path-2 link for both directions. The bytes' SHA-256 both ways.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  configureMptcp,
  eventually,
  labSha256,
  startClient,
  startServer,
  tcpSockets,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

test('--backup p2: the kernel sees a backup subflow on path 2, and no data goes on it while path 1 works', async () => {
  const t = twoPathTopology(lab, { tag: 'clbk' });
  const dst = '10.70.0.1';
  lab.exec(t.srv, 'ip', 'addr', 'add', `${dst}/32`, 'dev', 'lo');
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 0 },
    flush: true,
  });
  const mptun = startMptun(lab, t.cli, [
    'client',
    '--tun',
    'mpt-bk',
    '--intercept',
    `${dst}/32`,
    '--path',
    `p1=${t.paths[0].far.v4}`,
    '--path',
    `p2=${t.paths[1].far.v4}`,
    '--backup',
    'p2',
    '--drain-timeout',
    '2',
  ]);
  const started = await mptun.waitFor(/^.*"msg":"client: intercepting".*$/m);
  assert.match(started[0], /"backup":\["100\.64\.2\.2"\]/);
  // Bytes through cli's path-2 link, both ways: the download's share shows there.
  const p2 = () => {
    const j = JSON.parse(lab.exec(t.cli, 'ip', '-s', '-j', 'link', 'show', 'p2'))[0].stats64;
    return { tx: Number(j.tx.bytes), rx: Number(j.rx.bytes) };
  };
  const p2Before = p2();
  const up = 8_000_000;
  const down = 4_000_000;
  const server = await startServer(lab, t.srv, { host: dst, port: 5001, send: down, seed: 62 });
  const app = startClient(lab, t.cli, { host: dst, port: 5001, bytes: up, seed: 61, tcp: true, hold: true });
  await app.step('holding', 0, 30_000);
  // Read once the upload is in (the app holds the connection open; the server replies after).
  const subflows = await eventually(
    'the kernel server has every byte, on its two subflows',
    () => tcpSockets(lab, t.srv, ['sport', '=', ':5001']).filter((s) => s.mptcp !== undefined),
    (s) => s.length === 2 && s.reduce((n, x) => n + x.bytesReceived, 0) >= up,
  );
  const onPath = (addr: string) => subflows.find((s) => s.peer.addr === addr);
  const regular = onPath('10.50.1.1');
  const backup = onPath('10.50.2.1');
  assert.ok(regular !== undefined && backup !== undefined, JSON.stringify(subflows));
  // ss's subflow flags: B = the peer (our client) asked for backup.
  assert.match(backup.mptcp!.flags, /B/, JSON.stringify(backup));
  assert.doesNotMatch(regular.mptcp!.flags, /B/, JSON.stringify(regular));
  assert.ok(backup.bytesReceived < up / 100, `the backup subflow brought ${backup.bytesReceived} bytes`);
  app.release();
  await app.done(60_000);
  await server.done(30_000);
  assert.deepEqual(server.connections()[0]?.received, { bytes: up, sha256: labSha256(61, up) });
  assert.deepEqual(app.connections()[0]?.received, { bytes: down, sha256: labSha256(62, down) });
  const p2After = p2();
  assert.ok(p2After.rx - p2Before.rx < down / 100, `path 2 brought ${p2After.rx - p2Before.rx} bytes`);
  assert.ok(p2After.tx - p2Before.tx < up / 100, `path 2 took ${p2After.tx - p2Before.tx} bytes`);
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
});
