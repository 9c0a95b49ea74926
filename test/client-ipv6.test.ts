/**
 * `mptun client` intercepting IPv6, in namespaces. Transparent mode: a plain TCP app in `cli`
 * connects to fd71::1 (IPv6), which the client routes into its TUN (source: the TUN's own
 * fd64::1); the client carries the connection over MPTCP on IPv6 across both paths (per path a
 * private stack address fd64:<k>::2, an ip6 policy table via the path's IPv6 gateway, ip6
 * masquerade) to a kernel MPTCP server in `srv`. Checked: the plumbing, SHA-256 both ways, the
 * kernel's view (the join from path 2's IPv6 address), and that SIGTERM removes every v4 and v6
 * thing it added. Converter mode: an IPv6 destination travels in the Convert request over the
 * client's IPv4 paths to an mptun server (--converter, an IPv6 --allow rule), which connects on
 * over IPv6. Also the config checks for IPv6 (no namespace needed).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { validateClientFlags } from '../src/proxy/client/config.js';
import {
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  loadBalancerTopology,
  mptcpCounters,
  nonZero,
  startClient,
  startServer,
  type TwoPathLab,
  tcpSockets,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const TUN = 'mpt-v6';
const DST = 'fd71::1';

let t: TwoPathLab;
let mptun: Run;
let hostBefore: string;

/** Everything of the host's network config the client may touch (both families), as text. */
function hostState(ns: string): string {
  return [
    lab.exec(ns, 'ip', '-o', 'link', 'show').replace(/\s+link\/.*$/gm, ''),
    lab.exec(ns, 'ip', '-o', 'addr', 'show'),
    lab.exec(ns, 'ip', '-4', 'rule', 'show'),
    lab.exec(ns, 'ip', '-6', 'rule', 'show'),
    lab.exec(ns, 'ip', '-4', 'route', 'show', 'table', 'all'),
    lab.exec(ns, 'ip', '-6', 'route', 'show', 'table', 'all'),
    lab.exec(ns, 'nft', 'list', 'ruleset'),
    lab.exec(ns, 'sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'),
  ].join('\n');
}

test('config: a v6 --intercept gives the paths v6 addresses; gateways per family; the checks', () => {
  const r = validateClientFlags({
    tun: 'ptun0',
    intercept: ['fd71::/64', '10.100.0.100/32'],
    path: ['eth0', 'wwan0=10.2.0.1,fe80::1'],
  });
  assert.ok('config' in r, JSON.stringify(r));
  assert.deepEqual(r.config.paths, [
    { iface: 'eth0', gateway: undefined, address: '100.64.1.2', address6: 'fd64:1::2', gateway6: undefined },
    {
      iface: 'wwan0',
      gateway: '10.2.0.1',
      address: '100.64.2.2',
      address6: 'fd64:2::2',
      gateway6: 'fe80::1',
    },
  ]);
  assert.deepEqual(r.config.addresses, ['100.64.1.2', '100.64.2.2', 'fd64:1::2', 'fd64:2::2']);
  assert.equal(r.config.tunAddress6, 'fd64::1');
  const given = validateClientFlags({
    tun: 'ptun0',
    intercept: ['fd71::/64'],
    path: ['eth0', 'wwan0'],
    addr: ['fd00:a::2', '10.1.0.3', 'fd00:b::2', '10.2.0.3'],
    'tun-addr6': 'fd00::1',
  });
  assert.ok('config' in given, JSON.stringify(given));
  assert.deepEqual(
    given.config.paths.map((p) => [p.address, p.address6]),
    [
      ['10.1.0.3', 'fd00:a::2'],
      ['10.2.0.3', 'fd00:b::2'],
    ],
  );
  // Converter mode carries v6 destinations over the (v4) paths: no v6 on them.
  const conv = validateClientFlags({
    tun: 'ptun0',
    intercept: ['fd71::/64'],
    path: ['eth0'],
    server: '10.99.0.1:5124',
  });
  assert.ok('config' in conv, JSON.stringify(conv));
  assert.deepEqual(conv.config.addresses, ['100.64.1.2']);
  const bad = (f: Parameters<typeof validateClientFlags>[0], re: RegExp) => {
    const x = validateClientFlags(f);
    assert.ok('error' in x, JSON.stringify(x));
    assert.match(x.error, re);
  };
  bad(
    { tun: 'ptun0', intercept: ['fd71::/64'], path: ['eth0', 'wwan0'], addr: ['fd00:a::2'] },
    /1 IPv6 --addr for 2 --path: give one IPv6 --addr per --path/,
  );
  bad(
    { tun: 'ptun0', intercept: ['fd71::/64'], path: ['eth0=fe80::1,fe80::2'] },
    /one IPv4 and one IPv6 gateway/,
  );
  bad(
    { tun: 'ptun0', intercept: ['fd71::/64'], path: ['eth0'], 'tun-addr6': '10.0.0.1' },
    /--tun-addr6 '10\.0\.0\.1': not an IPv6 address/,
  );
  bad(
    { tun: 'ptun0', intercept: ['fd64::/16'], path: ['eth0'] },
    /address fd64:1::2 lies inside --intercept fd64::\/16/,
  );
  bad(
    { tun: 'ptun0', intercept: ['fd71::/64'], path: ['eth0'], addr: ['fd00:a::2'], 'tun-addr6': 'fd00:a::2' },
    /--tun-addr6 fd00:a::2 is also a stack address/,
  );
});

before(async () => {
  t = twoPathTopology(lab, { tag: 'cli6' });
  // Path 1's IPv6 gateway is learnt from cli's default route; path 2's are given.
  lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
  lab.exec(t.cli, 'ip', '-6', 'route', 'add', 'default', 'via', t.paths[0].far.v6, 'dev', 'p1');
  lab.exec(t.srv, 'ip', '-6', 'addr', 'add', `${DST}/128`, 'dev', 'lo');
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
    `${DST}/128`,
    '--path',
    'p1',
    '--path',
    `p2=${t.paths[1].far.v4},${t.paths[1].far.v6}`,
    '--drain-timeout',
    '5',
  ]);
  await mptun.waitFor(/"msg":"client: intercepting"/, 60_000);
});

test('the v6 plumbing: TUN v6 address, ip6 tables and rules, ip6 NAT table, v6 interception route', () => {
  const addrs = lab.exec(t.cli, 'ip', '-o', '-6', 'addr', 'show', 'dev', TUN);
  assert.match(addrs, /inet6 fd64::1\/128/);
  const rules = lab.exec(t.cli, 'ip', '-6', 'rule', 'show');
  assert.match(rules, /^4201:\s+from fd64:1::2 lookup 4201/m);
  assert.match(rules, /^4202:\s+from fd64:2::2 lookup 4202/m);
  const routes = lab.exec(t.cli, 'ip', '-6', 'route', 'show', 'table', 'all');
  assert.match(routes, /^default via fd50:1::2 dev p1 table 4201/m);
  assert.match(routes, /^default via fd50:2::2 dev p2 table 4202/m);
  assert.match(routes, /^fd71::1 dev mpt-v6 .*src fd64::1/m);
  assert.match(routes, /^fd64:2::2 dev mpt-v6/m);
  const nft = lab.exec(t.cli, 'nft', 'list', 'ruleset');
  assert.match(nft, /table ip6 mptun_client_mpt_v6/);
  assert.match(nft, /oifname "p2" ip6 saddr fd64:2::2 masquerade/);
  assert.equal(lab.exec(t.cli, 'sysctl', '-n', 'net.ipv6.conf.all.forwarding').trim(), '1');
});

test('plain TCP app over IPv6 -> mptun client -> kernel MPTCP server on IPv6, two paths: SHA-256 both ways', async () => {
  const up = 12_000_000;
  const down = 6_000_000;
  const before = mptcpCounters(lab, t.srv);
  const server = await startServer(lab, t.srv, { host: DST, port: 5001, send: down, seed: 62 });
  const app = startClient(lab, t.cli, { host: DST, port: 5001, bytes: up, seed: 61, tcp: true, hold: true });
  await app.step('holding', 0, 30_000);
  const subflows = await eventually(
    'the kernel server sees both paths',
    () => tcpSockets(lab, t.srv, ['sport', '=', ':5001']).filter((s) => s.mptcp !== undefined),
    (s) => s.length === 2,
  );
  assert.deepEqual(
    subflows.map((s) => s.peer.addr).sort(),
    [t.paths[0].cli.v6, t.paths[1].cli.v6],
    JSON.stringify(subflows),
  );
  app.release();
  await app.done(60_000);
  await server.done(30_000);
  assert.deepEqual(server.connections()[0]?.received, { bytes: up, sha256: labSha256(61, up) });
  assert.deepEqual(app.connections()[0]?.received, { bytes: down, sha256: labSha256(62, down) });
  const d = counterDelta(before, mptcpCounters(lab, t.srv));
  assert.equal(d['MPCapableSYNRX'], 1, JSON.stringify(nonZero(d)));
  assert.equal(d['MPJoinAckRx'], 1, JSON.stringify(nonZero(d)));
  const closed = await mptun.waitFor(/^.*"conn":1,.*"msg":"connection closed".*$/m);
  assert.match(closed[0], /"subflows":2/);
  assert.match(closed[0], /fd64:2::2/);
});

test('SIGTERM: nothing v4 or v6 it created is left', async () => {
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  const out = mptun.stdout() + mptun.stderr();
  assert.match(out, /"msg":"client: stopped"/);
  assert.doesNotMatch(out, /undoFailed/);
  assert.equal(hostState(t.cli), hostBefore);
});

test('converter mode: an IPv6 destination over IPv4 paths through an mptun server, SHA-256 both ways', async (tc) => {
  const lab2 = new NetnsLab();
  tc.after(() => lab2.cleanup());
  const lb = loadBalancerTopology(lab2, { tag: 'cv6', servers: 1, serviceAddrs: false });
  const s = lb.servers[0];
  assert.ok(s);
  const dst = 'fd77::1';
  lab2.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  lab2.exec(s.ns, 'ip', '-6', 'addr', 'add', `${dst}/128`, 'dev', 'lo');
  const dest = await startServer(lab2, s.ns, { host: dst, port: 7001, tcp: true, send: 700_000, seed: 64 });
  const server = startMptun(lab2, s.ns, [
    'server',
    '--tun',
    'mpt-c6s',
    '--vip',
    lb.vip.v4,
    '--unique',
    s.unique.v4,
    '--converter',
    '5124',
    '--allow',
    `[${dst}/128]:7001`,
    '--drain-timeout',
    '2',
  ]);
  const client = startMptun(lab2, lb.cli, [
    'client',
    '--tun',
    'mpt-c6c',
    '--intercept',
    `${dst}/128`,
    '--path',
    `p1=${lb.paths[0].far.v4}`,
    '--path',
    `p2=${lb.paths[1].far.v4}`,
    '--server',
    `${lb.vip.v4}:5124`,
    '--drain-timeout',
    '2',
  ]);
  const [, ready] = await Promise.all([
    server.waitFor(/"msg":"server: listening"/, 60_000),
    client.waitFor(/^.*"msg":"client: intercepting".*$/m, 60_000),
  ]);
  assert.match(ready[0], /"addresses":\["100\.64\.1\.2","100\.64\.2\.2"\]/, 'IPv4 paths only');
  const app = startClient(lab2, lb.cli, { host: dst, port: 7001, bytes: 900_000, seed: 63, tcp: true });
  await app.done(60_000);
  await dest.done(30_000);
  assert.deepEqual(dest.connections()[0]?.received, { bytes: 900_000, sha256: labSha256(63, 900_000) });
  assert.deepEqual(app.connections()[0]?.received, { bytes: 700_000, sha256: labSha256(64, 700_000) });
  await client.waitFor(/"dst":"fd77::1:7001","msg":"converter connected"/);
  await server.waitFor(/"destination":"fd77::1:7001","msg":"converter: connected"/);
  client.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  assert.equal((await client.done(20_000)).code, 0, client.stderr());
  assert.equal((await server.done(20_000)).code, 0, server.stderr());
  assert.doesNotMatch(client.stderr(), /undoFailed/);
});
