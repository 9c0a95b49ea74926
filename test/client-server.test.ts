/**
 * The whole chain in namespaces (DESIGN.md §4): an unmodified plain-TCP app in `cli` → mptun
 * client (two plumbed paths) → the stateless ECMP load balancer `lb` → mptun server on s1 or s2
 * (VIP + unique address, C flag, ADD_ADDR of the unique address) → a kernel TCP backend on that
 * server's 127.0.0.1. Checked: SHA-256 both ways per connection, every connection's subflows on
 * one server (the initial one through the VIP, a join to that server's unique address from each
 * path), no join to the VIP, and both servers used by some connection of the run.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startLbClient, startLbServer } from './support/lb-proxies.js';
import {
  type LbLab,
  labSha256,
  loadBalancerTopology,
  type Peer,
  startClient,
  startServer,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import type { Run } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const BACKEND_PORT = 7001;
const REPLY = 1_000_000;
const REPLY_SEED = 61;

let t: LbLab;
let client: Run;
const servers: Run[] = [];
const backends: Peer[] = [];

before(async () => {
  t = loadBalancerTopology(lab, { tag: 'clis', serviceAddrs: false });
  for (const s of t.servers) {
    lab.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    backends.push(
      await startServer(lab, s.ns, {
        host: '127.0.0.1',
        port: BACKEND_PORT,
        tcp: true,
        conns: 0,
        send: REPLY,
        seed: REPLY_SEED,
      }),
    );
    const run = startLbServer(lab, t, s, [[5001, BACKEND_PORT]]);
    servers.push(run);
  }
  client = startLbClient(lab, t);
  await Promise.all([
    ...servers.map((s) => s.waitFor(/"msg":"server: listening"/)),
    client.waitFor(/"msg":"client: intercepting"/),
  ]);
});

/** The 'connection closed' lines a process logged, parsed. */
function closedLines(
  run: Run,
): { conn: number; subflows?: number; paths?: string[]; up: number; down: number }[] {
  return (run.stdout() + run.stderr())
    .split('\n')
    .filter((l) => l.includes('"msg":"connection closed"'))
    .map((l) => JSON.parse(l));
}

test('app -> mptun client -> ECMP lb -> mptun server -> backend: SHA-256 both ways, each connection on one server', async () => {
  const count = 8;
  const size = 1_000_000;
  // All at once: different source ports, so the balancer spreads them over both servers.
  const apps = Array.from({ length: count }, (_, i) =>
    startClient(lab, t.cli, {
      host: t.vip.v4,
      port: 5001,
      bytes: size,
      seed: 70 + i,
      tcp: true,
      timeout: 40,
    }),
  );
  await Promise.all(apps.map((a) => a.done(45_000)));
  apps.forEach((app, i) => {
    const c = app.connections()[0];
    assert.deepEqual(c?.sent, { bytes: size, sha256: labSha256(70 + i, size) });
    assert.deepEqual(c?.received, { bytes: REPLY, sha256: labSha256(REPLY_SEED, REPLY) });
  });
  // Every backend connection got the app's bytes.
  const received = backends.flatMap((b) => b.connections().map((c) => c.received?.sha256));
  assert.equal(received.length, count);
  // Our client: each connection used 3 subflows (VIP from path 1, the unique address from both paths).
  const mine = await waitForLines(client, count);
  const uniques = t.servers.map((s) => s.unique.v4);
  const reached: Record<string, number> = {};
  for (const line of mine) {
    assert.equal(line.subflows, 3, JSON.stringify(line));
    const remotes = (line.paths ?? []).map((p) => p.split('->')[1]?.split(':')[0]);
    assert.equal(remotes.filter((r) => r === t.vip.v4).length, 1, JSON.stringify(line));
    const joined = remotes.filter((r) => r !== t.vip.v4);
    assert.equal(new Set(joined).size, 1, `joins to one server only: ${JSON.stringify(line)}`);
    assert.ok(uniques.includes(joined[0]!), JSON.stringify(line));
    reached[joined[0]!] = (reached[joined[0]!] ?? 0) + 1;
  }
  // The servers agree: each counted its connections with all subflows there, none failed.
  let total = 0;
  for (const s of servers) {
    const lines = closedLines(s);
    total += lines.length;
    for (const l of lines) assert.equal(l.subflows, 3, JSON.stringify(l));
    assert.doesNotMatch(s.stdout() + s.stderr(), /"msg":"connection failed"/);
  }
  assert.equal(total, count);
  // Per server, from the servers' own logs: the same split as our joins say.
  assert.deepEqual(
    Object.fromEntries(
      t.servers.map((s, j) => [s.unique.v4, closedLines(servers[j]!).length]).filter(([, n]) => n !== 0),
    ),
    reached,
  );
  process.stdout.write(
    `# connections per server (joined unique address: count): ${JSON.stringify(reached)}\n`,
  );
});

async function waitForLines(run: Run, n: number) {
  await run.waitFor(new RegExp(`"conn":${n},[^\\n]*"msg":"connection closed"`), 15_000);
  return closedLines(run);
}

test('SIGTERM to all three: clean exits', async () => {
  for (const r of [client, ...servers]) r.child.kill('SIGTERM');
  for (const r of [client, ...servers]) {
    const { code } = await r.done(20_000);
    assert.equal(code, 0, r.stdout() + r.stderr());
  }
});
