/**
 * `mptun client --path IFACE` follows its interfaces, in namespaces: a plain TCP app in `cli`
 * sends through the client (settings from a --config YAML file, --pcap on) over two paths to a
 * kernel MPTCP server in `srv`. Path 2's link goes down mid-connection: the client logs it, the
 * kernel gets REMOVE_ADDR (MPTcpExt RmAddr) and drops that path's subflow, and the bytes sent
 * meanwhile arrive over path 1. The link comes back: the client restores path 2's table route
 * (the kernel deleted it with the link) and joins again (MPJoinSynRx; ss shows a subflow from
 * path 2 again). The whole transfer, both ways, is SHA-256 equal. The same for path 1, the
 * initial subflow's (REMOVE_ADDR of address ID 0, the connection goes on over path 2, path 1
 * joins when it is back). The client's pcap holds the REMOVE_ADDRs it sent; SIGTERM leaves
 * nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '../src/log.js';
import { LinkWatch, monitorLineIface, type PathState, parseState } from '../src/proxy/client/link-watch.js';
import { APP } from './support/command-app.js';
import {
  type Counters,
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  mptcpCounters,
  nonZero,
  type Peer,
  startServer,
  type TwoPathLab,
  tcpSockets,
  tsharkFields,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-client-follow-'));
after(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const TUN = 'mpt-fol';
const DST = '10.71.0.1';
const PCAP = join(dir, 'client.pcap');
const CHUNK = 4_000_000;
const DOWN = 3_000_000;

let t: TwoPathLab;
let mptun: Run;
let server: Peer;
let app: Run;
let counters0: Counters;
let hostBefore: string;

/**
 * The host network state the client may touch, as one text (IPv4: the link going down flushes
 * p2's IPv6 addresses, which is the kernel's doing, not the client's).
 */
function hostState(ns: string): string {
  return [
    lab.exec(ns, 'ip', '-4', '-o', 'addr', 'show'),
    lab.exec(ns, 'ip', '-4', 'rule', 'show'),
    lab.exec(ns, 'ip', '-4', 'route', 'show', 'table', 'all'),
    lab.exec(ns, 'nft', 'list', 'ruleset'),
    lab.exec(ns, 'sysctl', '-n', 'net.ipv4.ip_forward'),
  ].join('\n');
}

/** The kernel server's subflows of our connection, by the client path they came from. */
function subflows(port = 5001): { path1: number; path2: number; p1Received: number; p2Received: number } {
  // Established only: a subflow the kernel closed lingers in FIN-WAIT-1 (its FIN went to the dead link).
  const s = tcpSockets(lab, t.srv, ['sport', '=', `:${port}`]).filter(
    (x) => x.mptcp !== undefined && x.state === 'ESTAB',
  );
  return {
    path1: s.filter((x) => x.peer.addr === t.paths[0].cli.v4).length,
    path2: s.filter((x) => x.peer.addr === t.paths[1].cli.v4).length,
    p1Received: s.find((x) => x.peer.addr === t.paths[0].cli.v4)?.bytesReceived ?? 0,
    p2Received: s.find((x) => x.peer.addr === t.paths[1].cli.v4)?.bytesReceived ?? 0,
  };
}

async function send(n: number, total: number, to: Run = app): Promise<void> {
  to.child.stdin?.write(`send ${n}\n`);
  await to.waitFor(new RegExp(`^sent ${total}$`, 'm'), 30_000);
}

before(async () => {
  t = twoPathTopology(lab, { tag: 'clfo' });
  lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
  lab.exec(t.srv, 'ip', 'addr', 'add', `${DST}/32`, 'dev', 'lo');
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true },
    limits: { subflows: 4, addAddrAccepted: 0 },
    flush: true,
  });
  hostBefore = hostState(t.cli);
  const config = join(dir, 'client.yaml');
  writeFileSync(
    config,
    [
      `tun: ${TUN}`,
      `intercept: [${DST}/32]`,
      'path:',
      '  - p1',
      `  - p2=${t.paths[1].far.v4}`,
      'drain-timeout: 5',
      '',
    ].join('\n'),
  );
  mptun = startMptun(lab, t.cli, ['client', '--config', config, '--pcap', PCAP]);
  await mptun.waitFor(/"msg":"client: intercepting"/);
  counters0 = mptcpCounters(lab, t.srv);
  server = await startServer(lab, t.srv, { host: DST, port: 5001, send: DOWN, seed: 71 });
  app = start(lab, t.cli, 'python3', ['-c', APP, DST, '5001']);
  await app.waitFor(/^connected$/m);
});

test('settings from the YAML file: both paths plumbed, pcap named', async () => {
  const m = await mptun.waitFor(/^.*"msg":"client: intercepting".*$/m);
  assert.match(m[0], /"pcap":"[^"]*client\.pcap"/);
  assert.match(m[0], /p1 via 10\.50\.1\.2 from 100\.64\.1\.2/);
  assert.match(m[0], /p2 via 10\.50\.2\.2 from 100\.64\.2\.2/);
});

test('path 2 down: REMOVE_ADDR to the kernel, its subflow goes, bytes keep flowing on path 1; up: it joins again', async () => {
  let sent = 0;
  sent += CHUNK;
  await send(CHUNK, sent);
  await eventually('the kernel sees a subflow on each path', subflows, (s) => s.path1 === 1 && s.path2 === 1);

  lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'down');
  await mptun.waitFor(/"iface":"p2","address":"100\.64\.2\.2".*"msg":"client: path down"/);
  await eventually(
    'the kernel got REMOVE_ADDR and dropped the subflow from path 2',
    () => ({ s: subflows(), d: counterDelta(counters0, mptcpCounters(lab, t.srv)) }),
    (v) => v.s.path2 === 0 && (v.d['RmAddr'] ?? 0) >= 1,
  );
  const p1Before = subflows().p1Received;
  sent += CHUNK;
  await send(CHUNK, sent);
  await eventually(
    'the bytes sent while path 2 is down arrive over path 1',
    subflows,
    (s) => s.p1Received >= p1Before + CHUNK,
  );

  lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'up');
  await mptun.waitFor(/"iface":"p2","address":"100\.64\.2\.2".*"msg":"client: path up"/);
  await mptun.waitFor(/"msg":"client: path route restored"/);
  assert.match(lab.exec(t.cli, 'ip', 'route', 'show', 'table', '4202'), /^default via 10\.50\.2\.2 dev p2/m);
  await eventually('a subflow from path 2 again', subflows, (s) => s.path1 === 1 && s.path2 === 1);
  sent += CHUNK;
  await send(CHUNK, sent);

  app.child.stdin?.write('fin\n');
  const done = await app.waitFor(/^done (\d+) ([0-9a-f]+) (\d+) ([0-9a-f]+)$/m, 60_000);
  await server.done(30_000);
  const got = server.connections()[0];
  assert.deepEqual(got?.received, { bytes: sent, sha256: done[2] }, 'upload SHA-256');
  assert.equal(Number(done[3]), DOWN);
  assert.equal(done[4], labSha256(71, DOWN), 'download SHA-256');
  const d = counterDelta(counters0, mptcpCounters(lab, t.srv));
  assert.equal(d['MPCapableSYNRX'], 1, JSON.stringify(nonZero(d)));
  assert.ok(
    (d['MPJoinSynRx'] ?? 0) >= 2,
    `a join before and after the outage: ${JSON.stringify(nonZero(d))}`,
  );
  assert.ok((d['RmAddr'] ?? 0) >= 1, JSON.stringify(nonZero(d)));
});

test("path 1 down (the initial subflow's): REMOVE_ADDR of address ID 0, the connection goes on over path 2; up: path 1 joins", async () => {
  const c0 = mptcpCounters(lab, t.srv);
  const srv2 = await startServer(lab, t.srv, { host: DST, port: 5002, send: DOWN, seed: 72 });
  const app2 = start(lab, t.cli, 'python3', ['-c', APP, DST, '5002']);
  await app2.waitFor(/^connected$/m);
  let sent = CHUNK;
  await send(CHUNK, sent, app2);
  await eventually(
    'a subflow on each path',
    () => subflows(5002),
    (s) => s.path1 === 1 && s.path2 === 1,
  );

  lab.exec(t.cli, 'ip', 'link', 'set', 'p1', 'down');
  await mptun.waitFor(/"iface":"p1","address":"100\.64\.1\.2".*"msg":"client: path down"/);
  await eventually(
    'the kernel got REMOVE_ADDR and dropped the initial subflow',
    () => ({ s: subflows(5002), d: counterDelta(c0, mptcpCounters(lab, t.srv)) }),
    (v) => v.s.path1 === 0 && v.s.path2 === 1 && (v.d['RmAddr'] ?? 0) >= 1,
  );
  const p2Before = subflows(5002).p2Received;
  sent += CHUNK;
  await send(CHUNK, sent, app2);
  await eventually(
    'the bytes sent while path 1 is down arrive over path 2',
    () => subflows(5002),
    (s) => s.p2Received >= p2Before + CHUNK,
  );

  lab.exec(t.cli, 'ip', 'link', 'set', 'p1', 'up');
  // The test's own default route (not the client's) went with the link: put it back.
  lab.exec(t.cli, 'ip', 'route', 'replace', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
  await mptun.waitFor(/"iface":"p1","address":"100\.64\.1\.2".*"msg":"client: path up"/);
  await eventually(
    'a subflow from path 1 again',
    () => subflows(5002),
    (s) => s.path1 === 1 && s.path2 === 1,
  );
  sent += CHUNK;
  await send(CHUNK, sent, app2);
  app2.child.stdin?.write('fin\n');
  const done = await app2.waitFor(/^done (\d+) ([0-9a-f]+) (\d+) ([0-9a-f]+)$/m, 60_000);
  await srv2.done(30_000);
  assert.deepEqual(srv2.connections()[0]?.received, { bytes: sent, sha256: done[2] }, 'upload SHA-256');
  assert.equal(Number(done[3]), DOWN);
  assert.equal(done[4], labSha256(72, DOWN), 'download SHA-256');
});

test('--pcap: the capture holds the REMOVE_ADDRs our stack sent; SIGTERM leaves nothing', async () => {
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  const out = mptun.stdout() + mptun.stderr();
  assert.match(out, /"msg":"client: stopped"/);
  assert.doesNotMatch(out, /undoFailed/);
  assert.match(out, /"pathEvents":4/);
  assert.deepEqual(hostState(t.cli), hostBefore, 'SIGTERM left nothing behind');
  assert.ok(statSync(PCAP).size > 0);
  // REMOVE_ADDR is MPTCP subtype 4; it goes out on path 1's subflow (from 100.64.1.2).
  const rm = await tsharkFields(PCAP, 'tcp.options.mptcp.subtype == 4', [
    'ip.src',
    'ip.dst',
    'tcp.options.mptcp.addrid',
  ]);
  assert.ok(rm.length >= 1, 'a REMOVE_ADDR in the pcap');
  assert.equal(rm[0]?.['ip.src'], '100.64.1.2');
  assert.equal(rm[0]?.['ip.dst'], DST);
  assert.notEqual(rm[0]?.['tcp.options.mptcp.addrid'], '0', "path 2's is its join's address ID");
  // Path 1's (address ID 0, the initial subflow's) went out on path 2.
  assert.ok(
    rm.some((r) => r['ip.src'] === '100.64.2.2' && r['tcp.options.mptcp.addrid'] === '0'),
    `a REMOVE_ADDR on path 2: ${JSON.stringify(rm)}`,
  );
  const syns = await tsharkFields(PCAP, 'tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.src == 100.64.2.2', [
    'tcp.srcport',
  ]);
  assert.ok(syns.length >= 2, `path 2 joined twice: ${JSON.stringify(syns)}`);
});

test('link-watch: what ip prints, read as path states', () => {
  const up = '3: p2@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT';
  const noCarrier = '3: p2@if4: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state LOWERLAYERDOWN';
  const v4 = '3: p2    inet 10.50.2.1/24 brd 10.50.2.255 scope global p2\\       valid_lft forever';
  const v6 = '3: p2    inet6 fd50:2::1/64 scope global \\       valid_lft forever';
  const ll = '3: p2    inet6 fe80::1/64 scope link \\       valid_lft forever';
  assert.deepEqual(parseState(up, `${v4}\n${v6}\n`), { link: true, v4: true, v6: true });
  assert.deepEqual(parseState(up, `${ll}\n`), { link: true, v4: false, v6: false });
  assert.deepEqual(parseState(noCarrier, `${v4}\n`), { link: false, v4: false, v6: false });
  assert.equal(monitorLineIface(up), 'p2');
  assert.equal(monitorLineIface('Deleted 3: p2    inet 10.50.2.1/24 scope global p2'), 'p2');
  assert.equal(monitorLineIface('[LINK]3: p2'), undefined);
});

test('link-watch: a monitor line for a path looks again; a change reaches onChange once', async () => {
  let current: PathState = { link: true, v4: true, v6: false };
  const changes: [string, PathState, PathState][] = [];
  const watch = new LinkWatch({
    ifaces: ['p1', 'p2'],
    log: createLogger('silent'),
    probe: () => current,
    onChange: (iface, now, before) => changes.push([iface, now, before]),
  });
  const tick = () => new Promise((r) => setImmediate(r));
  watch.onLine('7: other: <BROADCAST,MULTICAST> mtu 1500 state DOWN');
  await tick();
  assert.equal(changes.length, 0, 'another interface is ignored');
  current = { link: false, v4: false, v6: false };
  watch.onLine('3: p2: <BROADCAST,MULTICAST> mtu 1500 state DOWN');
  watch.onLine('Deleted 3: p2    inet 10.50.2.1/24 scope global p2');
  await tick();
  assert.deepEqual(changes, [['p2', current, { link: true, v4: true, v6: true }]]);
  watch.onLine('3: p2: <BROADCAST,MULTICAST> mtu 1500 state DOWN');
  await tick();
  assert.equal(changes.length, 1, 'no change, no call');
  assert.deepEqual(watch.state('p2'), current);
  watch.stop();
});
