/**
 * `mptun client` end to end in namespaces, transparent mode: an unmodified plain-TCP app in `cli`
 * (mptcp-peer.py with --tcp) connects to 10.70.0.1, which the client routes into its TUN; the
 * client carries the connection over MPTCP across the lab's two paths (p1, p2: --path plumbing,
 * per-path NAT and policy routing) to a kernel MPTCP server in `srv` on 10.70.0.1. Checked: the
 * bytes' SHA-256 both ways, the kernel's view (ss -M: one extra subflow, on the other path;
 * MPTcpExt MPJoinSynRx), a plain TCP server (fallback), a refused destination (the app is reset),
 * and that SIGTERM leaves no route, rule, nftables table, address, sysctl or TUN it created.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  mptcpCounters,
  mptcpSockets,
  nonZero,
  startClient,
  startServer,
  type TwoPathLab,
  tcpSockets,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const TUN = 'mpt-cli';
const DST = '10.70.0.1';

let t: TwoPathLab;
let mptun: Run;
interface HostState {
  links: string;
  addrs: string;
  rules: string;
  routes: string;
  nft: string;
  forwarding: string;
}

let hostBefore: HostState;

/** Everything of the host's network config the client may touch, as text. */
function hostState(ns: string): HostState {
  return {
    links: lab.exec(ns, 'ip', '-o', 'link', 'show').replace(/\s+link\/.*$/gm, ''),
    addrs: lab.exec(ns, 'ip', '-o', 'addr', 'show'),
    rules: lab.exec(ns, 'ip', 'rule', 'show'),
    routes: lab.exec(ns, 'ip', 'route', 'show', 'table', 'all'),
    nft: lab.exec(ns, 'nft', 'list', 'ruleset'),
    forwarding: lab.exec(ns, 'sysctl', '-n', 'net.ipv4.ip_forward'),
  };
}

before(async () => {
  t = twoPathTopology(lab, { tag: 'clik' });
  // Path 1's gateway is learnt from cli's default route; path 2's is given (--path p2=GW).
  lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
  lab.exec(t.srv, 'ip', 'addr', 'add', `${DST}/32`, 'dev', 'lo');
  // Kernel defaults otherwise: no C flag, so our client joins the server's initial address
  // from its path-2 address.
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 0 },
    flush: true,
  });
  hostBefore = hostState(t.cli);
  mptun = startMptun(lab, t.cli, [
    'client',
    '--tun',
    TUN,
    '--intercept',
    `${DST}/32`,
    '--path',
    'p1',
    '--path',
    `p2=${t.paths[1].far.v4}`,
    '--drain-timeout',
    '5',
  ]);
  await mptun.waitFor(/"msg":"client: intercepting"/);
});

test('the plumbing: TUN address, per-path tables and rules, NAT table, interception route, forwarding', () => {
  const s = hostState(t.cli);
  assert.match(s.addrs, /mpt-cli\s+inet 100\.64\.0\.1\/32/);
  assert.match(s.rules, /^4201:\s+from 100\.64\.1\.2 lookup 4201/m);
  assert.match(s.rules, /^4202:\s+from 100\.64\.2\.2 lookup 4202/m);
  assert.match(s.routes, /^default via 10\.50\.1\.2 dev p1 table 4201/m);
  assert.match(s.routes, /^default via 10\.50\.2\.2 dev p2 table 4202/m);
  assert.match(s.routes, /^10\.70\.0\.1 dev mpt-cli .*src 100\.64\.0\.1/m);
  assert.match(s.routes, /^100\.64\.1\.2 dev mpt-cli/m);
  assert.match(s.nft, /table ip mptun_client_mpt_cli/);
  assert.match(s.nft, /oifname "p2" ip saddr 100\.64\.2\.2 masquerade/);
  assert.match(s.nft, /iifname \{ "p1", "p2" \} ct state invalid drop/);
  assert.equal(s.forwarding.trim(), '1');
  assert.equal(lab.exec(t.cli, 'sysctl', '-n', `net.ipv6.conf.${TUN}.disable_ipv6`).trim(), '1');
});

test('plain TCP app -> mptun client -> kernel MPTCP server, two paths: SHA-256 both ways, 2 subflows', async () => {
  const up = 16_000_000;
  const down = 8_000_000;
  const before = mptcpCounters(lab, t.srv);
  const server = await startServer(lab, t.srv, { host: DST, port: 5001, send: down, seed: 52 });
  const app = startClient(lab, t.cli, { host: DST, port: 5001, bytes: up, seed: 51, tcp: true, hold: true });
  await app.step('holding', 0, 30_000);
  // The server has every byte; the connection is live: what does the kernel see?
  const conns = await eventually(
    'the kernel server sees the join',
    () => mptcpSockets(lab, t.srv, ['sport', '=', ':5001']),
    (c) => c.length === 1 && c[0]!.subflows === 1,
  );
  const subflows = tcpSockets(lab, t.srv, ['sport', '=', ':5001']).filter((s) => s.mptcp !== undefined);
  assert.deepEqual(
    subflows.map((s) => s.peer.addr).sort(),
    ['10.50.1.1', '10.50.2.1'],
    JSON.stringify(subflows),
  );
  assert.equal(subflows.filter((s) => s.mptcp?.join).length, 1);
  app.release();
  await app.done(60_000);
  await server.done(30_000);
  const got = server.connections()[0];
  assert.deepEqual(got?.received, { bytes: up, sha256: labSha256(51, up) });
  const mine = app.connections()[0];
  assert.deepEqual(mine?.sent, { bytes: up, sha256: labSha256(51, up) });
  assert.deepEqual(mine?.received, { bytes: down, sha256: labSha256(52, down) });
  const d = counterDelta(before, mptcpCounters(lab, t.srv));
  assert.equal(d['MPCapableSYNRX'], 1, JSON.stringify(nonZero(d)));
  assert.equal(d['MPJoinSynRx'], 1, JSON.stringify(nonZero(d)));
  assert.equal(d['MPJoinAckRx'], 1, JSON.stringify(nonZero(d)));
  const closed = await mptun.waitFor(/^.*"conn":1,.*"msg":"connection closed".*$/m);
  assert.match(closed[0], /"subflows":2/);
  assert.equal(conns[0]!.subflows, 1);
});

test('a plain TCP server is still reached (fallback): SHA-256 both ways', async () => {
  const server = await startServer(lab, t.srv, {
    host: DST,
    port: 5002,
    send: 2_000_000,
    seed: 54,
    tcp: true,
  });
  const app = startClient(lab, t.cli, { host: DST, port: 5002, bytes: 3_000_000, seed: 53, tcp: true });
  await app.done(30_000);
  await server.done(30_000);
  assert.deepEqual(server.connections()[0]?.received, { bytes: 3_000_000, sha256: labSha256(53, 3_000_000) });
  assert.deepEqual(app.connections()[0]?.received, { bytes: 2_000_000, sha256: labSha256(54, 2_000_000) });
  await mptun.waitFor(/"proto":"fallback"/);
});

test('a destination that refuses: the app connection is reset', async () => {
  const app = start(lab, t.cli, 'python3', [
    '-c',
    `import socket
s = socket.create_connection(("${DST}", 5999), timeout=20)
try:
    d = s.recv(10)
    print("eof" if d == b"" else "data", flush=True)
except ConnectionResetError:
    print("reset", flush=True)`,
  ]);
  await app.waitFor(/^reset$/m, 25_000);
  await app.done(10_000);
  await mptun.waitFor(/"msg":"connection failed"/);
});

test('SIGTERM: clean exit, and nothing it created is left (routes, rules, nftables, address, TUN, sysctl)', async () => {
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  const out = mptun.stdout() + mptun.stderr();
  assert.match(out, /"msg":"client: stopped"/);
  assert.doesNotMatch(out, /undoFailed/);
  assert.deepEqual(hostState(t.cli), hostBefore);
});
