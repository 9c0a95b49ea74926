/**
 * Issue 8, must-show 5: the anycast flip mid-transfer. The VIP is anycast: lb routes it to one
 * site at a time (s1 first), as a BGP-announced service address would be. Two kernel TCP
 * transfers of the lab's seeded stream run side by side to backends on s1's 127.0.0.1:
 *  - one carried by mptun (app in cli → mptun client → MPTCP: initial subflow to the VIP, joins
 *    to s1's unique address from both paths → mptun server on s1 → backend);
 *  - one plain TCP from cli's path-1 address (not intercepted) to the same mptun server, which
 *    serves it as plain TCP.
 * Each app writes its first MiB and holds; once both backends have received that MiB (their
 * `progress` line: an event) and both of the mptun connection's joins have been answered (their
 * SYN/ACKs on lb's link to s1), lb routes the VIP to s2 only, and the apps write the rest. The
 * plain connection's next segment reaches s2, which never saw it, and is reset; the mptun
 * connection's initial subflow is reset the same way once it sends anything, and the transfer
 * completes on the joins to s1's unique address: SHA-256 equal both ways. Checked from the apps, the backends, both proxies' logs and
 * captures on lb's links to s1 and s2 (split at a marker datagram sent right after the flip).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startLbClient, startLbServer } from './support/lb-proxies.js';
import {
  type Capture,
  type LbLab,
  labSha256,
  loadBalancerTopology,
  MARKER_PORT,
  startCapture,
  tsharkFields,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start } from './support/perf-lab.js';

const FLIP_PEER = fileURLToPath(new URL('./support/flip-peer.ts', import.meta.url));

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-flip-'));
after(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** mptun's listen port → backend port on the server's 127.0.0.1, for each transfer. */
const MPTUN = { listen: 5001, backend: 7003, seed: 81 };
const PLAIN = { listen: 5002, backend: 7004, seed: 82 };
const SIZE = 4 * 1024 * 1024;
const PAUSE_AT = 1024 * 1024;
const REPLY = 2 * 1024 * 1024;
const REPLY_SEED = 83;

let t: LbLab;
let client: Run;
const servers: Run[] = [];
let backend: Run;
const captures: Capture[] = [];

function flipPeer(ns: string, args: string[]): Run {
  return start(lab, ns, process.execPath, ['--import', 'tsx', FLIP_PEER, ...args]);
}

/** lb's VIP route: to one site only (anycast), replacing the ECMP route. */
function routeVipTo(j: number): void {
  const s = t.servers[j]!;
  lab.exec(t.lb, 'ip', 'route', 'replace', `${t.vip.v4}/32`, 'via', s.link.v4, 'dev', s.lbEnd.dev);
}

before(async () => {
  t = loadBalancerTopology(lab, { tag: 'flip', serviceAddrs: false });
  routeVipTo(0);
  for (const s of t.servers) {
    lab.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    servers.push(
      startLbServer(
        lab,
        t,
        s,
        [MPTUN, PLAIN].map((x) => [x.listen, x.backend] as const),
        1,
      ),
    );
  }
  // The backends (one process, a port each) on s1, where the VIP is routed first (nothing
  // reaches s2 as a connection).
  backend = flipPeer(t.servers[0]!.ns, [
    'server',
    '--host',
    '127.0.0.1',
    ...[MPTUN, PLAIN].flatMap((x) => ['--port', String(x.backend)]),
    '--progress',
    String(PAUSE_AT),
    '--send',
    String(REPLY),
    '--seed',
    String(REPLY_SEED),
  ]);
  client = startLbClient(lab, t, 1);
  // The captures start beside the proxies' start-up (nothing connects before the test).
  const [caps] = await Promise.all([
    Promise.all(
      t.servers.map((s) =>
        startCapture(lab, t.lb, {
          iface: s.lbEnd.dev,
          file: join(dir, `${s.name}.pcap`),
          filter: 'tcp',
          snaplen: 128,
          markerTo: s.link.v4,
        }),
      ),
    ),
    ...servers.map((s) => s.waitFor(/"msg":"server: listening"/, 30_000)),
    client.waitFor(/"msg":"client: intercepting"/, 30_000),
    ...[MPTUN, PLAIN].map((x) => backend.waitFor(new RegExp(`^listening \\S+ ${x.backend}$`, 'm'), 30_000)),
  ]);
  captures.push(...caps);
});

// biome-ignore lint/suspicious/noExplicitAny: pino's JSON lines, read field by field
type LogLine = Record<string, any>;

function logLines(run: Run, msg: string): LogLine[] {
  return (run.stdout() + run.stderr())
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as LogLine);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('anycast flip mid-transfer: mptun completes with SHA-256 equal, plain TCP beside it is reset', async () => {
  const s1 = t.servers[0]!;
  const p1 = t.paths[0].cli.v4;
  const app = (x: typeof MPTUN, bind?: string) =>
    flipPeer(t.cli, [
      'client',
      '--host',
      t.vip.v4,
      '--port',
      String(x.listen),
      ...(bind === undefined ? [] : ['--bind', bind]),
      '--bytes',
      String(SIZE),
      '--seed',
      String(x.seed),
      '--pause-at',
      String(PAUSE_AT),
      '--timeout',
      '40',
    ]);
  const viaMptun = app(MPTUN);
  const plain = app(PLAIN, p1);
  const plainPort = Number((await plain.waitFor(/^connected \S+ (\d+)$/m))[1]);

  // Mid-transfer: a MiB of each delivered to its backend, the apps holding the rest.
  for (const x of [MPTUN, PLAIN]) await backend.waitFor(new RegExp(`^progress ${x.backend} 0 `, 'm'), 30_000);
  // Both joins of the mptun connection answered by s1's unique address (their SYN/ACKs on lb's link).
  for (const p of t.paths) {
    const re = new RegExp(
      `${escapeRe(s1.unique.v4)}\\.${MPTUN.listen} > ${escapeRe(p.cli.v4)}\\.\\d+: Flags \\[S\\.\\]`,
    );
    await captures[0]!.run.waitFor(re, 20_000);
  }
  routeVipTo(1);
  // A marker on each link right after the flip: what the captures hold after it came later.
  for (const s of t.servers)
    lab.exec(t.lb, 'bash', '-c', `printf mptun-flip > /dev/udp/${s.link.v4}/${MARKER_PORT}`);
  for (const r of [viaMptun, plain]) r.child.stdin?.write('go\n');

  const [m, p] = await Promise.all([viaMptun.done(45_000), plain.done(45_000)]);
  // Plain TCP: reset by the site that now holds the VIP.
  assert.equal(p.code, 3, plain.stdout() + plain.stderr());
  assert.match(plain.stdout(), /^error (ECONNRESET|EPIPE) /m, plain.stdout());
  assert.doesNotMatch(backend.stdout(), new RegExp(`^received ${PLAIN.backend} `, 'm'));
  // mptun: every byte both ways.
  assert.equal(m.code, 0, viaMptun.stdout() + viaMptun.stderr());
  assert.match(viaMptun.stdout(), new RegExp(`^sent ${SIZE} ${labSha256(MPTUN.seed, SIZE)}$`, 'm'));
  assert.match(viaMptun.stdout(), new RegExp(`^received ${REPLY} ${labSha256(REPLY_SEED, REPLY)}$`, 'm'));
  await backend.waitFor(
    new RegExp(`^received ${MPTUN.backend} 0 ${SIZE} ${labSha256(MPTUN.seed, SIZE)}$`, 'm'),
    5_000,
  );

  // Our client: the connection closed cleanly, with a join to s1's unique address from each
  // path. Its initial subflow (to the VIP) is listed too when nothing it sent after the flip had
  // drawn s2's RST yet by the time the client looked (the wire check below covers it).
  await client.waitFor(/"msg":"connection (closed|failed)"/, 10_000);
  assert.deepEqual(logLines(client, 'connection failed'), []);
  const [closed] = logLines(client, 'connection closed');
  assert.ok(closed !== undefined);
  assert.equal(closed.up, SIZE, JSON.stringify(closed));
  assert.equal(closed.down, REPLY, JSON.stringify(closed));
  const joins = (closed.paths as string[]).filter((x) => !x.endsWith(`->${t.vip.v4}:${MPTUN.listen}`));
  assert.deepEqual(
    joins.map((x) => x.split('->')[1]),
    [`${s1.unique.v4}:${MPTUN.listen}`, `${s1.unique.v4}:${MPTUN.listen}`],
    JSON.stringify(closed),
  );
  const [opened] = logLines(client, 'MPTCP connection open');
  const initialPort = String(opened?.local).split(':')[1];
  const locals = new Set(joins.map((x) => x.split('->')[0]?.split(':')[0]));
  assert.equal(locals.size, 2, `one subflow from each path: ${JSON.stringify(closed)}`);
  // The servers: s1 carried the mptun connection to its end; s2 accepted nothing.
  // (s1 still counts the initial subflow: the reset went from s2 to cli, s1 never heard of it.)
  await servers[0]!.waitFor(/"msg":"connection (closed|failed)"/, 10_000);
  const s1Closed = logLines(servers[0]!, 'connection closed');
  assert.equal(s1Closed.length, 1, servers[0]!.stderr());
  assert.equal(s1Closed[0]?.up, SIZE);
  assert.equal(s1Closed[0]?.down, REPLY);
  assert.deepEqual(logLines(servers[1]!, 'connection accepted'), []);

  // The wire after the flip: s2 reset the plain connection; the mptun connection's bytes kept
  // flowing on lb's link to s1, to the unique address only.
  for (const c of captures) await c.stop();
  const fields = [
    'frame.number',
    'ip.src',
    'ip.dst',
    'udp.dstport',
    'tcp.srcport',
    'tcp.dstport',
    'tcp.len',
    'tcp.flags.reset',
  ] as const;
  const [onS1, onS2] = await Promise.all(captures.map((c) => tsharkFields(c.file, 'tcp or udp', fields)));
  const afterFlip = (rows: Record<(typeof fields)[number], string>[]) => {
    const at = rows.findIndex((r) => r['udp.dstport'] === String(MARKER_PORT));
    assert.ok(at >= 0, 'the flip marker is in the capture');
    return rows.slice(at + 1).filter((r) => r['tcp.srcport'] !== '');
  };
  const s1After = afterFlip(onS1!);
  const s2After = afterFlip(onS2!);
  const toS1 = s1After.filter((r) => r['ip.src'] !== s1.unique.v4 && r['ip.src'] !== t.vip.v4);
  assert.ok(
    toS1.every((r) => r['ip.dst'] === s1.unique.v4),
    'after the flip, cli reaches s1 only at its unique address',
  );
  const dataToS1 = toS1.filter((r) => Number(r['tcp.len']) > 0).reduce((n, r) => n + Number(r['tcp.len']), 0);
  assert.ok(dataToS1 >= SIZE - PAUSE_AT, `upload bytes to s1's unique address after the flip: ${dataToS1}`);
  const plainReset = s2After.filter(
    (r) =>
      r['ip.src'] === t.vip.v4 &&
      r['ip.dst'] === p1 &&
      r['tcp.dstport'] === String(plainPort) &&
      r['tcp.flags.reset'] === '1',
  );
  assert.ok(plainReset.length >= 1, `s2 reset the plain connection (${p1}:${plainPort})`);
  // s2 took nothing over: all it sent after the flip were resets.
  const fromS2 = s2After.filter((r) => r['ip.src'] === t.vip.v4 || r['ip.src'] === t.servers[1]!.unique.v4);
  assert.ok(
    fromS2.every((r) => r['tcp.flags.reset'] === '1'),
    `s2 answered only with RSTs: ${JSON.stringify(fromS2.filter((r) => r['tcp.flags.reset'] !== '1'))}`,
  );
  const resetsOnS2 = fromS2.length;
  const initialReset = fromS2.some((r) => r['ip.dst'] === p1 && r['tcp.dstport'] === initialPort);
  process.stdout.write(
    `# after the flip: ${dataToS1} upload bytes to ${s1.unique.v4} on lb's link to s1; ${resetsOnS2} RSTs from the VIP on the link to s2 (plain: ${plainReset.length}, mptun's initial subflow: ${initialReset ? 'reset' : 'sent nothing after the flip'}); mptun subflows at the end: ${JSON.stringify(closed.paths)}\n`,
  );
});

test('SIGTERM to the proxies: clean exits', async () => {
  for (const r of [client, ...servers]) r.child.kill('SIGTERM');
  for (const r of [client, ...servers]) {
    const { code } = await r.done(20_000);
    assert.equal(code, 0, r.stdout() + r.stderr());
  }
  const [stopped] = logLines(client, 'client: stopped');
  assert.equal(stopped?.failed, 0, JSON.stringify(stopped));
  process.stdout.write(`# client: ${JSON.stringify(stopped)}\n`);
  for (const [j, s] of servers.entries())
    process.stdout.write(`# ${t.servers[j]!.name}: ${JSON.stringify(logLines(s, 'server: stopped')[0])}\n`);
});
