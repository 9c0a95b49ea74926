/**
 * Issue 8, must-show 4 at scale: 100 proxied connections through the stateless ECMP load
 * balancer to two mptun servers (DESIGN.md §4). Unmodified plain-TCP apps in `cli` (the lab's
 * kernel peer, 10 at a time, 10 connections each one after the other) → mptun client (two plumbed
 * paths) → `lb` → mptun server on s1 or s2 → a kernel TCP backend on that server's 127.0.0.1.
 *
 * Four accounts of the same 100 connections, checked against each other:
 *  - the apps and the backends: every connection's bytes both ways, SHA-256 equal;
 *  - our client's log: each connection had 3 subflows, one to the VIP, the joins to one server's
 *    unique address only;
 *  - the servers' own logs: which server accepted each connection's initial subflow (by the
 *    client's address and port), with 3 subflows at close; the two servers' counts sum to 100,
 *    no connection failed, and their MPTCP MIB at SIGTERM has no MPJoinNoTokenFound;
 *  - captures on lb's two server links (SYNs and RSTs only): each MP_JOIN SYN carries the token
 *    of a connection whose MP_CAPABLE SYN/ACK came from the same link, no join goes to the VIP,
 *    and no RST crossed either link.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startLbClient, startLbServer } from './support/lb-proxies.js';
import {
  type Capture,
  type LbLab,
  labSha256,
  loadBalancerTopology,
  type Peer,
  startCapture,
  startClient,
  startServer,
  tsharkFields,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import type { Run } from './support/perf-lab.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-lb100-'));
after(async () => {
  // LB100_LOGS=DIR keeps each proxy's output (client, s1, s2) for a look after the run.
  const keep = process.env['LB100_LOGS'];
  if (keep !== undefined)
    for (const [name, r] of [
      ['client', client],
      ...servers.map((s, j) => [`s${j + 1}`, s] as const),
    ] as const)
      if (r !== undefined) writeFileSync(join(keep, `${name}.log`), r.stdout() + r.stderr());
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const BACKEND_PORT = 7002;
const LISTEN_PORT = 5001;
/** Apps running at once, and connections each makes one after the other: 10 x 10 = 100. */
const APPS = 10;
const PER_APP = 10;
const TOTAL = APPS * PER_APP;
const UP = 96 * 1024;
const REPLY = 64 * 1024;
const REPLY_SEED = 62;
const seedOf = (app: number) => 200 + app;

let t: LbLab;
let client: Run;
const servers: Run[] = [];
const backends: Peer[] = [];
const captures: Capture[] = [];

before(async () => {
  t = loadBalancerTopology(lab, { tag: 'lb100', serviceAddrs: false });
  // The proxies first (their start-up is the slowest part), then the captures and backends
  // beside them: none is needed before the first app connects.
  for (const s of t.servers) {
    lab.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    servers.push(startLbServer(lab, t, s, [[LISTEN_PORT, BACKEND_PORT]]));
  }
  client = startLbClient(lab, t);
  const [caps, peers] = await Promise.all([
    // Handshakes and resets only: what each server link carried of every connection's subflows.
    Promise.all(
      t.servers.map((s) =>
        startCapture(lab, t.lb, {
          iface: s.lbEnd.dev,
          file: join(dir, `${s.name}.pcap`),
          filter: 'tcp[tcpflags] & (tcp-syn|tcp-rst) != 0',
          snaplen: 200,
          markerTo: s.link.v4,
        }),
      ),
    ),
    Promise.all(
      t.servers.map((s) =>
        startServer(lab, s.ns, {
          host: '127.0.0.1',
          port: BACKEND_PORT,
          tcp: true,
          conns: 0,
          send: REPLY,
          seed: REPLY_SEED,
        }),
      ),
    ),
    ...servers.map((s) => s.waitFor(/"msg":"server: listening"/, 30_000)),
    client.waitFor(/"msg":"client: intercepting"/, 30_000),
  ]);
  captures.push(...caps);
  backends.push(...peers);
});

// biome-ignore lint/suspicious/noExplicitAny: pino's JSON lines, read field by field
type LogLine = Record<string, any>;

/** The JSON lines with message `msg` that a process logged. */
function logLines(run: Run, msg: string): LogLine[] {
  return (run.stdout() + run.stderr())
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as LogLine);
}

/**
 * Resolves once `run` has logged `n` 'connection closed' or 'connection failed' lines (each
 * proxy logs one per connection when its bridge ends, which may be a moment after the app saw
 * its last byte): re-checked on every chunk of output, rejected after `timeoutMs`.
 */
function settle(run: Run, n: number, timeoutMs = 15_000): Promise<void> {
  const count = () => logLines(run, 'connection closed').length + logLines(run, 'connection failed').length;
  if (count() >= n) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (count() < n) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`only ${count()} of ${n} connections ended within ${timeoutMs} ms:\n${run.stderr()}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      run.child.stdout?.off('data', check);
      run.child.stderr?.off('data', check);
    };
    run.child.stdout?.on('data', check);
    run.child.stderr?.on('data', check);
  });
}

/** The token (RFC 8684 §3.1: the most significant 32 bits of SHA-256 of the key) of a decimal key. */
function tokenOf(key: string): number {
  const k = Buffer.alloc(8);
  k.writeBigUInt64BE(BigInt(key));
  return createHash('sha256').update(k).digest().readUInt32BE(0);
}

test('100 connections through the ECMP lb to two mptun servers: SHA-256 both ways, each on one server, none reset', async () => {
  const apps = Array.from({ length: APPS }, (_, i) =>
    startClient(lab, t.cli, {
      host: t.vip.v4,
      port: LISTEN_PORT,
      bytes: UP,
      seed: seedOf(i),
      count: PER_APP,
      tcp: true,
      timeout: 60,
    }),
  );
  const t0 = performance.now();
  await Promise.all(apps.map((a) => a.done(120_000)));
  const appsMs = performance.now() - t0;

  // The apps: every connection's bytes, both ways.
  apps.forEach((app, i) => {
    const conns = app.connections();
    assert.equal(conns.length, PER_APP);
    for (const c of conns) {
      assert.deepEqual(c.sent, { bytes: UP, sha256: labSha256(seedOf(i), UP) }, `app ${i}`);
      assert.deepEqual(c.received, { bytes: REPLY, sha256: labSha256(REPLY_SEED, REPLY) }, `app ${i}`);
      assert.ok(c.closed, `app ${i} connection ${c.index}`);
    }
  });
  // The backends: 100 connections between them, each with one app's bytes.
  const got = backends.flatMap((b) => b.connections().map((c) => c.received?.sha256 ?? 'none')).sort();
  const want = apps.flatMap((_, i) => Array(PER_APP).fill(labSha256(seedOf(i), UP)) as string[]).sort();
  assert.deepEqual(got, want);

  // Our client: each connection's 3 subflows, the joins to one unique address.
  await settle(client, TOTAL);
  assert.deepEqual(logLines(client, 'connection failed'), []);
  const mine = logLines(client, 'connection closed');
  assert.equal(mine.length, TOTAL);
  const uniques = t.servers.map((s) => s.unique.v4);
  /** Client connection id -> the unique address its joins went to. */
  const joinedBy = new Map<number, string>();
  for (const line of mine) {
    assert.equal(line.subflows, 3, JSON.stringify(line));
    assert.equal(line.up, UP, JSON.stringify(line));
    assert.equal(line.down, REPLY, JSON.stringify(line));
    const remotes = (line.paths as string[]).map((p) => p.split('->')[1]?.split(':')[0]);
    assert.equal(remotes.filter((r) => r === t.vip.v4).length, 1, JSON.stringify(line));
    const joined = new Set(remotes.filter((r) => r !== t.vip.v4));
    assert.equal(joined.size, 1, `joins to one server only: ${JSON.stringify(line)}`);
    const u = [...joined][0]!;
    assert.ok(uniques.includes(u), JSON.stringify(line));
    joinedBy.set(line.conn, u);
  }
  // The client masquerades each path: its stack address (100.64.k.2) leaves as cli's address on
  // that path, the port kept (conntrack keeps it unless the tuple is taken, and nothing else in
  // cli uses those addresses).
  const [intercepting] = logLines(client, 'client: intercepting');
  const natOf = new Map(
    ((intercepting?.paths ?? []) as string[]).map((p) => {
      const [dev, , , , addr] = p.split(' ');
      return [addr, t.paths.find((x) => x.cli.dev === dev)?.cli.v4];
    }),
  );
  /** The initial subflow's client address:port as the servers see it -> client connection id. */
  const initialOf = new Map<string, number>();
  for (const l of logLines(client, 'MPTCP connection open')) {
    assert.equal(l.proto, 'mptcp', JSON.stringify(l));
    const [addr, port] = (l.local as string).split(':');
    initialOf.set(`${natOf.get(addr)}:${port}`, l.conn);
  }
  assert.equal(initialOf.size, TOTAL);

  // The servers' own accounts: which one accepted each initial subflow, and all 3 subflows there.
  const perServer: Record<string, number> = {};
  const seen = new Set<number>();
  for (const [j, s] of servers.entries()) {
    await settle(s, logLines(s, 'connection accepted').length);
    assert.deepEqual(logLines(s, 'connection failed'), [], t.servers[j]!.name);
    const accepted = logLines(s, 'connection accepted');
    const closed = logLines(s, 'connection closed');
    assert.equal(closed.length, accepted.length, t.servers[j]!.name);
    for (const l of closed) {
      assert.equal(l.subflows, 3, JSON.stringify(l));
      assert.equal(l.up, UP, JSON.stringify(l));
      assert.equal(l.down, REPLY, JSON.stringify(l));
    }
    for (const a of accepted) {
      assert.equal(a.proto, 'mptcp', JSON.stringify(a));
      assert.equal(a.local, `${t.vip.v4}:${LISTEN_PORT}`, JSON.stringify(a));
      const conn = initialOf.get(a.client);
      assert.ok(conn !== undefined, `server ${t.servers[j]!.name} accepted an unknown client ${a.client}`);
      assert.ok(!seen.has(conn), `client connection ${conn} accepted twice`);
      seen.add(conn);
      // Its joins went to this server's unique address: where its initial subflow landed.
      assert.equal(joinedBy.get(conn), uniques[j], `client connection ${conn} (${a.client})`);
    }
    perServer[t.servers[j]!.name] = accepted.length;
  }
  assert.equal(seen.size, TOTAL);
  assert.equal(
    Object.values(perServer).reduce((a, b) => a + b, 0),
    TOTAL,
  );
  assert.ok(
    Object.values(perServer).every((n) => n > 0),
    `both servers used: ${JSON.stringify(perServer)}`,
  );

  // The wire, on lb's two server links: joins only where their connection's handshake was.
  for (const c of captures) await c.stop();
  const fields = [
    'ip.src',
    'ip.dst',
    'tcp.srcport',
    'tcp.flags.syn',
    'tcp.flags.ack',
    'tcp.flags.reset',
    'tcp.options.mptcp.subtype',
    'tcp.options.mptcp.sendkey',
    'tcp.options.mptcp.recvtok',
  ] as const;
  const rows = await Promise.all(captures.map((c) => tsharkFields(c.file, 'tcp', fields)));
  const wire: Record<string, { capable: number; joins: number; rst: number }> = {};
  for (const [j, r] of rows.entries()) {
    const name = t.servers[j]!.name;
    const resets = r.filter((x) => x['tcp.flags.reset'] === '1');
    assert.deepEqual(resets, [], `RSTs on lb's link to ${name}`);
    const synAcks = r.filter(
      (x) =>
        x['tcp.flags.syn'] === '1' && x['tcp.flags.ack'] === '1' && x['tcp.options.mptcp.subtype'] === '0',
    );
    const tokens = new Set(synAcks.map((x) => tokenOf(x['tcp.options.mptcp.sendkey'])));
    const capableSyns = new Set(
      r
        .filter(
          (x) =>
            x['tcp.flags.syn'] === '1' &&
            x['tcp.flags.ack'] === '0' &&
            x['tcp.options.mptcp.subtype'] === '0',
        )
        .map((x) => `${x['ip.src']}:${x['tcp.srcport']}`),
    );
    const joinSyns = r.filter(
      (x) =>
        x['tcp.flags.syn'] === '1' && x['tcp.flags.ack'] === '0' && x['tcp.options.mptcp.subtype'] === '1',
    );
    for (const x of joinSyns) {
      assert.equal(
        x['ip.dst'],
        uniques[j],
        `a join on ${name} not to its unique address: ${JSON.stringify(x)}`,
      );
      assert.ok(
        tokens.has(Number(x['tcp.options.mptcp.recvtok'])),
        `a join on ${name} for a connection whose handshake was not there: ${JSON.stringify(x)}`,
      );
    }
    const joinTuples = new Set(joinSyns.map((x) => `${x['ip.src']}:${x['tcp.srcport']}`));
    assert.equal(capableSyns.size, perServer[name], name);
    assert.equal(tokens.size, perServer[name], name);
    assert.equal(joinTuples.size, 2 * perServer[name]!, name);
    wire[name] = { capable: capableSyns.size, joins: joinTuples.size, rst: resets.length };
  }
  process.stdout.write(
    `# ${TOTAL} connections (${APPS} apps x ${PER_APP}) in ${(appsMs / 1000).toFixed(1)} s; per server (servers' logs): ${JSON.stringify(perServer)}; on lb's links: ${JSON.stringify(wire)}\n`,
  );
});

test('SIGTERM to all three: clean exits, no MPJoinNoTokenFound, nothing failed', async () => {
  for (const r of [client, ...servers]) r.child.kill('SIGTERM');
  for (const r of [client, ...servers]) {
    const { code } = await r.done(20_000);
    assert.equal(code, 0, r.stdout() + r.stderr());
  }
  for (const [j, s] of servers.entries()) {
    const [stopped] = logLines(s, 'server: stopped');
    assert.ok(stopped !== undefined, s.stderr());
    assert.equal(stopped.failed, 0, JSON.stringify(stopped));
    assert.equal(stopped.aborted, 0, JSON.stringify(stopped));
    assert.equal(stopped.mptcpMib?.MPJoinNoTokenFound ?? 0, 0, JSON.stringify(stopped));
    process.stdout.write(`# ${t.servers[j]!.name}: ${JSON.stringify(stopped)}\n`);
  }
  const [stopped] = logLines(client, 'client: stopped');
  assert.ok(stopped !== undefined, client.stderr());
  assert.equal(stopped.intercepted, TOTAL, JSON.stringify(stopped));
  assert.equal(stopped.mptcp, TOTAL, JSON.stringify(stopped));
  assert.equal(stopped.failed, 0, JSON.stringify(stopped));
  process.stdout.write(`# client: ${JSON.stringify(stopped)}\n`);
});
