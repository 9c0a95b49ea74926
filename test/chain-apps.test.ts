/**
 * Real, unmodified apps through the whole chain (issue 8, must-show 3), in the topology of
 * test/client-server.test.ts: app in `cli` → mptun client (two paths) → ECMP load balancer `lb`
 * → mptun server on s1 or s2 → a service on that server's 127.0.0.1.
 * 1. curl downloads a large file from nginx: its SHA-256 equals the file's.
 * 2. ab (apache2-utils) makes many short HTTP connections: all complete, 0 failed, 0 non-2xx.
 * 3. A python request/response echo: several round trips of assorted sizes, exact bytes back.
 * 4. Replies in two small writes: the proxies hold neither part back (no Nagle), so the app's
 *    kernel never waits for its delayed-ACK timer.
 * Every transfer is checked against the mptun client's own 'connection closed' lines, so none
 * of it can have bypassed the proxy.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startLbClient, startLbServer } from './support/lb-proxies.js';
import { type LbLab, loadBalancerTopology } from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, waitForListen } from './support/perf-lab.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-apps-'));
const running: Run[] = [];
after(async () => {
  for (const r of running)
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  await Promise.all(running.map((r) => r.done(10_000)));
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** 200 MiB: through the chain on this 2-core machine it takes well under the file's 60 s. */
const BIG = 200 * 1024 * 1024;
const SMALL = 10_000;
const NGINX_PORT = 8080;
const ECHO_PORT = 7007;
const SPLIT_PORT = 7008;
const SPLIT_ROUNDS = 30;
const HTTP = 80;
const AB_REQUESTS = 500;
const AB_CONCURRENCY = 10;

let t: LbLab;
let client: Run;
let bigSha = '';

/** Backend echo service: every byte of each connection back, until the client's FIN. */
const ECHO_SERVER = `
import socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d: break
            self.request.sendall(d)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;

/**
 * Backend whose every reply comes in two 1-byte writes 2 ms apart (TCP_NODELAY, so its own kernel
 * holds neither): for each request byte, "a" then "b". Through a relay with Nagle, "b" would wait
 * for the app's ACK of "a", which the app's kernel delays (nothing to send until the reply is
 * whole) until its delayed-ACK timer fires, 40 ms on Linux: every round counts a delayed ACK.
 */
const SPLIT_SERVER = `
import socket, socketserver, sys, time
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while self.request.recv(1):
            self.request.sendall(b"a")
            time.sleep(0.002)
            self.request.sendall(b"b")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;

/** Split-reply client: `rounds` requests of one byte, each reply read whole ("ab"); one JSON line. */
const SPLIT_CLIENT = `
import json, socket, sys
host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ok = 0
for _ in range(rounds):
    s.sendall(b"q")
    got = b""
    while len(got) < 2:
        d = s.recv(2 - len(got))
        if not d: break
        got += d
    if got == b"ab": ok += 1
s.close()
print(json.dumps({"rounds": ok}), flush=True)
`;

/**
 * Echo client: one connection, a request per size (seeded bytes), each reply read to its full
 * length and compared; then FIN and the server's EOF. Prints one JSON line.
 */
const ECHO_CLIENT = `
import json, random, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
sizes = [int(x) for x in sys.argv[3].split(",")]
rng = random.Random(8)
s = socket.create_connection((host, port), timeout=20)
t0 = time.monotonic()
ok = 0
total = 0
for n in sizes:
    msg = rng.randbytes(n)
    s.sendall(msg)
    got = bytearray()
    while len(got) < n:
        d = s.recv(min(65536, n - len(got)))
        if not d: break
        got += d
    if bytes(got) != msg:
        print(json.dumps({"error": "mismatch", "size": n, "got": len(got)}), flush=True)
        sys.exit(1)
    ok += 1
    total += n
s.shutdown(socket.SHUT_WR)
eof = s.recv(1) == b""
print(json.dumps({"rounds": ok, "bytes": total, "eof": eof, "seconds": time.monotonic() - t0}), flush=True)
`;

function writeBigFile(path: string, size: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    const chunk = 1 << 20;
    for (let done = 0; done < size; done += chunk) {
      const b = randomBytes(Math.min(chunk, size - done));
      h.update(b);
      writeSync(fd, b);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function nginxConf(name: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log info;
events { worker_connections 1024; }
http {
  access_log ${dir}/${name}-access.log;
  client_body_temp_path ${dir}/${name}-body;
  proxy_temp_path ${dir}/${name}-proxy;
  fastcgi_temp_path ${dir}/${name}-fastcgi;
  uwsgi_temp_path ${dir}/${name}-uwsgi;
  scgi_temp_path ${dir}/${name}-scgi;
  sendfile on;
  server {
    listen 127.0.0.1:${NGINX_PORT};
    root ${dir}/www;
  }
}
`;
}

before(async () => {
  const www = join(dir, 'www');
  mkdirSync(www);
  bigSha = writeBigFile(join(www, 'big.bin'), BIG);
  writeFileSync(join(www, 'small.txt'), randomBytes(SMALL / 2).toString('hex'));

  t = loadBalancerTopology(lab, { tag: 'apps', serviceAddrs: false });
  for (const s of t.servers) {
    lab.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    const conf = join(dir, `${s.name}.conf`);
    writeFileSync(conf, nginxConf(s.name));
    running.push(start(lab, s.ns, 'nginx', ['-p', dir, '-c', conf, '-e', `${dir}/${s.name}-error.log`]));
    running.push(start(lab, s.ns, 'python3', ['-c', ECHO_SERVER, String(ECHO_PORT)]));
    running.push(start(lab, s.ns, 'python3', ['-c', SPLIT_SERVER, String(SPLIT_PORT)]));
    await waitForListen(lab, s.ns, NGINX_PORT);
    await waitForListen(lab, s.ns, ECHO_PORT);
    await waitForListen(lab, s.ns, SPLIT_PORT);
    const run = startLbServer(lab, t, s, [
      [HTTP, NGINX_PORT],
      [ECHO_PORT, ECHO_PORT],
      [SPLIT_PORT, SPLIT_PORT],
    ]);
    running.push(run);
    await run.waitFor(/"msg":"server: listening"/);
  }
  client = startLbClient(lab, t);
  running.push(client);
  await client.waitFor(/"msg":"client: intercepting"/);
});

interface Closed {
  conn: number;
  subflows?: number;
  up: number;
  down: number;
}

function closedLines(run: Run): Closed[] {
  return (run.stdout() + run.stderr())
    .split('\n')
    .filter((l) => l.includes('"msg":"connection closed"'))
    .map((l) => JSON.parse(l) as Closed);
}

/** Waits until the client has logged `n` closed connections in all. */
async function closedCount(n: number): Promise<Closed[]> {
  await client.waitFor(new RegExp(`"conn":${n},[^\\n]*"msg":"connection closed"`), 20_000);
  return closedLines(client);
}

/**
 * The client's log line for the close of the connection it intercepted last (the app that just
 * ran: matching by id, not by taking the last close, since an earlier app's straggler, such as
 * the connection ab opens and never uses, may close after it).
 */
async function lastConnectionClosed(): Promise<Closed | undefined> {
  const ids = (client.stdout() + client.stderr())
    .split('\n')
    .filter((l) => l.includes('"msg":"connection intercepted"'))
    .map((l) => (JSON.parse(l) as { conn: number }).conn);
  const id = Math.max(...ids);
  await client.waitFor(new RegExp(`"conn":${id},[^\\n]*"msg":"connection closed"`), 20_000);
  return closedLines(client).find((c) => c.conn === id);
}

async function sh(ns: string, script: string, timeoutMs: number): Promise<Run> {
  const r = start(lab, ns, 'sh', ['-c', script]);
  const { code } = await r.done(timeoutMs);
  assert.equal(code, 0, `${script}\n${r.stdout()}\n${r.stderr()}`);
  return r;
}

test(`curl downloads ${BIG / 1024 / 1024} MiB from nginx through the chain: SHA-256 equal`, async (ctx) => {
  const t0 = performance.now();
  const r = await sh(
    t.cli,
    `curl -sS --fail -o - -w '%{stderr}%{size_download} %{time_total} %{http_code}\\n' http://${t.vip.v4}:${HTTP}/big.bin | sha256sum`,
    60_000,
  );
  const exited = performance.now();
  const [bytes, seconds, status] = r.stderr().trim().split(/\s+/);
  const sha = r.stdout().trim().split(/\s+/)[0];
  ctx.diagnostic(
    `curl: ${bytes} bytes in ${seconds} s (${((Number(bytes) * 8) / Number(seconds) / 1e6).toFixed(0)} Mbit/s), HTTP ${status}; curl | sha256sum wall ${((exited - t0) / 1000).toFixed(1)} s`,
  );
  assert.equal(status, '200');
  assert.equal(Number(bytes), BIG);
  assert.equal(sha, bigSha);
  const mine = await lastConnectionClosed();
  ctx.diagnostic(
    `mptun client, ${((performance.now() - exited) / 1000).toFixed(1)} s after curl exited: ${JSON.stringify(mine)}`,
  );
  assert.ok(mine !== undefined && mine.down > BIG, JSON.stringify(mine));
  assert.equal(mine.subflows, 3, JSON.stringify(mine));
});

test(`ab: ${AB_REQUESTS} short connections (${AB_CONCURRENCY} at a time), 0 errors`, async (ctx) => {
  const before = closedLines(client).length;
  const r = await sh(
    t.cli,
    `ab -q -n ${AB_REQUESTS} -c ${AB_CONCURRENCY} -s 20 http://${t.vip.v4}:${HTTP}/small.txt`,
    60_000,
  );
  const out = r.stdout();
  const field = (name: string) => new RegExp(`^${name}:\\s+([\\d.]+)`, 'm').exec(out)?.[1];
  ctx.diagnostic(
    `ab: complete ${field('Complete requests')}, failed ${field('Failed requests')}, ${field('Time taken for tests')} s, ${field('Requests per second')} req/s`,
  );
  assert.equal(field('Complete requests'), String(AB_REQUESTS), out);
  assert.equal(field('Failed requests'), '0', out);
  assert.doesNotMatch(out, /Non-2xx responses/, out);
  assert.equal(field('Document Length'), String(SMALL), out);
  // Each request was its own connection through the proxy (ab may open one more than it uses).
  const lines = await closedCount(before + AB_REQUESTS);
  const proxied = lines.length - before;
  assert.ok(proxied >= AB_REQUESTS && proxied <= AB_REQUESTS + AB_CONCURRENCY, `${proxied} connections`);
});

test('python echo: several round trips, exact bytes', async (ctx) => {
  const sizes = [1, 7, 100, 1460, 1461, 16_384, 65_536, 100_003, 1_000_000, 3];
  const r = await sh(
    t.cli,
    `python3 -c '${ECHO_CLIENT.replaceAll("'", "'\\''")}' ${t.vip.v4} ${ECHO_PORT} ${sizes.join(',')}`,
    30_000,
  );
  const res = JSON.parse(r.stdout().trim()) as {
    rounds: number;
    bytes: number;
    eof: boolean;
    seconds: number;
  };
  ctx.diagnostic(
    `echo: ${res.rounds} round trips, ${res.bytes} bytes each way in ${res.seconds.toFixed(3)} s`,
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.deepEqual(
    { rounds: res.rounds, bytes: res.bytes, eof: res.eof },
    { rounds: sizes.length, bytes: total, eof: true },
  );
  const mine = await lastConnectionClosed();
  assert.ok(mine !== undefined && mine.up >= total && mine.down >= total, JSON.stringify(mine));
});

/** The kernel's count of delayed ACKs sent in `ns` (TcpExtDelayedACKs: the timer fired). */
function delayedAcks(ns: string): number {
  const out = lab.exec(ns, 'nstat', '-saz', 'TcpExtDelayedACKs');
  const m = out.match(/^TcpExtDelayedACKs\s+(\d+)/m);
  assert.ok(m, `nstat printed no TcpExtDelayedACKs:\n${out}`);
  return Number(m[1]);
}

test('replies in two small writes reach the app whole without a delayed-ACK wait (no Nagle)', async (ctx) => {
  const before = delayedAcks(t.cli);
  const r = await sh(
    t.cli,
    `python3 -c '${SPLIT_CLIENT.replaceAll("'", "'\\''")}' ${t.vip.v4} ${SPLIT_PORT} ${SPLIT_ROUNDS}`,
    30_000,
  );
  const waits = delayedAcks(t.cli) - before;
  ctx.diagnostic(`${SPLIT_ROUNDS} split replies; the app's kernel sent ${waits} delayed ACKs`);
  assert.deepEqual(JSON.parse(r.stdout().trim()), { rounds: SPLIT_ROUNDS });
  // With Nagle in either proxy most rounds wait for the app's delayed-ACK timer; without it the
  // app's next request carries the ACK. A few timer ACKs are the connection's close and slack.
  assert.ok(waits <= SPLIT_ROUNDS / 6, `${waits} delayed ACKs in ${SPLIT_ROUNDS} rounds`);
  const mine = await lastConnectionClosed();
  assert.ok(
    mine !== undefined && mine.up >= SPLIT_ROUNDS && mine.down >= 2 * SPLIT_ROUNDS,
    JSON.stringify(mine),
  );
});

test('SIGTERM to the proxies: clean exits', async () => {
  const proxies = running.filter((r) => r.child.spawnargs.includes(process.execPath));
  assert.equal(proxies.length, 3);
  for (const r of proxies) r.child.kill('SIGTERM');
  for (const r of proxies) {
    const { code } = await r.done(20_000);
    assert.equal(code, 0, r.stdout() + r.stderr());
  }
});
