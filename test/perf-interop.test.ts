/**
 * The Linux kernel as peer of mptun's userspace TCP (`mptun perf --stack user`), in private
 * namespaces, both directions:
 *
 *   peer (kernel: iperf3, python3)  ──veth 10.9.0.1 ↔ 10.9.0.2──  tun (forwarding; TUN owning 10.7.0.x)
 *
 * The peer routes 10.7.0.0/24 via the tun namespace, which forwards into the TUN of the mptun
 * process under test (its own route, added by the tool). Stock iperf3 at the kernel end, both as
 * client and server; a 200 MB transfer each way with SHA-256 compared.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { PerfConnection, PerfStack } from '../src/proxy/perf/stack.js';
import { openUserStack } from '../src/proxy/perf/user-stack.js';
import { NetnsLab } from './support/netns.js';
import { json, type Report, start, startMptun, waitForListen } from './support/perf-lab.js';

const MB = 1024 * 1024;
const PEER = '10.9.0.1';
const lab = new NetnsLab();
let peer = '';
let tun = '';
let next = 0;

before(() => {
  peer = lab.add('peer');
  tun = lab.add('tun');
  lab.veth(peer, `${PEER}/24`, tun, '10.9.0.2/24', 'vperf');
  lab.exec(tun, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  lab.exec(peer, 'ip', 'route', 'add', '10.7.0.0/24', 'via', '10.9.0.2');
});
after(() => lab.cleanup());

/** A fresh TUN name, stack address and port per test, so no test sees another's leftovers. */
function fresh() {
  next++;
  return { tunName: `ptun${next}`, addr: `10.7.0.${10 + next}`, port: 5400 + next };
}

async function userServer(t: ReturnType<typeof fresh>, ...extra: string[]) {
  const s = startMptun(lab, tun, [
    'perf',
    'server',
    '--one-off',
    '-p',
    String(t.port),
    '--stack',
    'user',
    '--tun',
    t.tunName,
    '--addr',
    t.addr,
    ...extra,
  ]);
  await s.waitFor(/perf server: listening/);
  return s;
}

function userClient(t: ReturnType<typeof fresh>, ...extra: string[]) {
  return startMptun(lab, tun, [
    'perf',
    'client',
    PEER,
    '-p',
    String(t.port),
    '--stack',
    'user',
    '--tun',
    t.tunName,
    '--addr',
    t.addr,
    ...extra,
  ]);
}

function assertNegotiated(report: Report) {
  const tcp = report.end.mptun.tcp as { options: string[] }[];
  assert.ok(tcp.length > 0);
  for (const s of tcp) {
    const opts = s.options.join(', ');
    assert.match(opts, /mss \d+/);
    assert.match(opts, /wscale \d+\/\d+/);
    assert.match(opts, /sack/);
    assert.match(opts, /timestamps/);
  }
  assert.match(report.end.mptun.stack, /^user \(mptun TCP on TUN/);
}

test('stock iperf3 client → mptun perf server --stack user: -n 64M, counts agree', async () => {
  const t = fresh();
  const server = await userServer(t, '-J');
  const client = start(lab, peer, 'iperf3', ['-c', t.addr, '-p', String(t.port), '-n', '64M', '-J']);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const theirs = json(client).end;
  const ours = json(server);
  // iperf3 checks -n between blocks: it may send one block (128 KB) more.
  assert.ok(theirs.sum_sent.bytes >= 64 * MB && theirs.sum_sent.bytes <= 64 * MB + 128 * 1024);
  assert.equal(ours.end.sum_sent.bytes, theirs.sum_sent.bytes);
  assert.equal(ours.end.sum_received.bytes, theirs.sum_received.bytes);
  assert.ok(theirs.sum_received.bytes > 0);
  assertNegotiated(ours);
});

test('stock iperf3 client -R -P 2 ← mptun perf server --stack user sending on two streams', async () => {
  const t = fresh();
  const server = await userServer(t, '-J');
  const client = start(lab, peer, 'iperf3', [
    '-c',
    t.addr,
    '-p',
    String(t.port),
    '-R',
    '-P',
    '2',
    '-t',
    '1',
    '-J',
  ]);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const theirs = json(client).end;
  const ours = json(server);
  assert.equal(theirs.streams.length, 2);
  assert.equal(ours.end.sum_sent.bytes, theirs.sum_sent.bytes);
  assert.equal(ours.end.sum_received.bytes, theirs.sum_received.bytes);
  assert.ok(theirs.sum_received.bytes > 0);
  assertNegotiated(ours);
});

test('stock iperf3 --get-server-output shows which stack ran and the options it negotiated', async () => {
  const t = fresh();
  const server = await userServer(t);
  const client = start(lab, peer, 'iperf3', [
    '-c',
    t.addr,
    '-p',
    String(t.port),
    '-n',
    '16M',
    '--get-server-output',
  ]);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const out = client.stdout();
  assert.match(out, /Server output:/);
  assert.match(out, new RegExp(`stack: user \\(mptun TCP on TUN ${t.tunName} with offload`));
  assert.match(
    out,
    /TCP options: mss \d+ \(peer \d+\), wscale \d+\/\d+, sack, timestamps; retransmissions \d+; rtt/,
  );
});

test('mptun perf client --stack user → stock iperf3 server: -n 64M, counts agree', async () => {
  const t = fresh();
  const server = start(lab, peer, 'iperf3', ['-s', '-1', '-J', '-p', String(t.port)]);
  await waitForListen(lab, peer, t.port);
  const client = userClient(t, '-J', '-n', '64M');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stdout());
  const ours = json(client);
  const theirs = json(server).end;
  assert.equal(ours.end.sum_sent.bytes, 64 * MB);
  assert.equal(ours.end.sum_received.bytes, theirs.sum_received.bytes);
  assert.ok(theirs.sum_received.bytes > 0);
  assert.equal(ours.start.connected[0].local_host, t.addr);
  assertNegotiated(ours);
});

test("mptun perf client --stack user: interval lines carry iperf3's Retr and Cwnd columns", async () => {
  const t = fresh();
  const server = start(lab, peer, 'iperf3', ['-s', '-1', '-p', String(t.port)]);
  await waitForListen(lab, peer, t.port);
  const client = userClient(t, '-t', '1', '-i', '0.5');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stdout());
  const out = client.stdout();
  assert.match(out, /^\[ ID\] Interval +Transfer +Bitrate +Retr +Cwnd$/m);
  const lines = out.match(
    /^\[ {2}1\] +\d+\.\d\d-\d+\.\d\d +sec +[\d.]+ \w?Bytes +[\d.]+ \w?bits\/sec +\d+ +[\d.]+ \w?Bytes$/gm,
  );
  assert.ok((lines?.length ?? 0) >= 2, out);
});

test('mptun perf client --stack user -R ← stock iperf3 server sending', async () => {
  const t = fresh();
  const server = start(lab, peer, 'iperf3', ['-s', '-1', '-J', '-p', String(t.port)]);
  await waitForListen(lab, peer, t.port);
  const client = userClient(t, '-J', '-R', '-n', '64M');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stdout());
  const ours = json(client);
  const theirs = json(server).end;
  assert.ok(ours.end.sum_received.bytes >= 64 * MB);
  assert.equal(ours.end.sum_sent.bytes, theirs.sum_sent.bytes);
  assertNegotiated(ours);
});

// ---------------------------------------------------------------- 200 MB with SHA-256, both ways

const TRANSFER = 200 * MB;
const silent = pino({ level: 'silent' });

/** The userspace stack in this process, its TUN in the tun namespace (the same code as --stack user). */
async function inProcessStack(t: ReturnType<typeof fresh>): Promise<PerfStack> {
  return openUserStack(
    { tun: t.tunName, addresses: [t.addr], routes: true, offload: true, netns: tun },
    silent,
  );
}

/** Python's kernel socket sends `size` seeded pseudo-random bytes and prints their SHA-256. */
const PY_SENDER = `
import hashlib, random, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(7); h = hashlib.sha256(); sent = 0
c = socket.create_connection((host, port))
while sent < size:
    b = r.randbytes(min(1 << 20, size - sent)); h.update(b); c.sendall(b); sent += len(b)
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass
print(sent, h.hexdigest(), flush=True)
`;

/** Python's kernel socket receives until FIN and prints the byte count and SHA-256. */
const PY_RECEIVER = `
import hashlib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(1)
print('listening', flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0; buf = bytearray(1 << 20); mv = memoryview(buf)
while True:
    k = c.recv_into(buf)
    if not k: break
    h.update(mv[:k]); n += k
c.close()
print(n, h.hexdigest(), flush=True)
`;

test('200 MB kernel → userspace TCP, SHA-256 equal', async () => {
  const t = fresh();
  const stack = await inProcessStack(t);
  try {
    const received = new Promise<{ bytes: number; sha: string }>((resolve, reject) => {
      stack
        .listen(t.port, undefined, (c: PerfConnection) => {
          const h = createHash('sha256');
          let bytes = 0;
          c.stream.on('data', (d: Buffer) => {
            h.update(d);
            bytes += d.length;
          });
          c.stream.once('end', () => {
            c.stream.end();
            resolve({ bytes, sha: h.digest('hex') });
          });
          c.stream.once('error', reject);
        })
        .catch(reject);
    });
    const sender = start(lab, peer, 'python3', ['-c', PY_SENDER, t.addr, String(t.port), String(TRANSFER)]);
    const got = await received;
    assert.equal((await sender.done()).code, 0, sender.stderr());
    const [sentBytes, sentSha] = sender.stdout().trim().split(' ');
    assert.equal(Number(sentBytes), TRANSFER);
    assert.equal(got.bytes, TRANSFER);
    assert.equal(got.sha, sentSha);
  } finally {
    await stack.close();
  }
});

test('200 MB userspace TCP → kernel, SHA-256 equal', async () => {
  const t = fresh();
  const receiver = start(lab, peer, 'python3', ['-c', PY_RECEIVER, PEER, String(t.port)]);
  await receiver.waitFor(/listening/);
  const stack = await inProcessStack(t);
  try {
    const conn = await stack.connect(PEER, t.port, { timeoutMs: 5000 });
    const h = createHash('sha256');
    const chunk = randomBytes(MB);
    for (let sent = 0; sent < TRANSFER; sent += MB) {
      // Fresh bytes per MB (a rotating key changes every chunk) so a misplaced block would show.
      chunk.writeUInt32BE(sent / MB, 0);
      const copy = Buffer.from(chunk);
      h.update(copy);
      if (!conn.stream.write(copy)) await once(conn.stream, 'drain');
    }
    conn.stream.end();
    assert.equal((await receiver.done()).code, 0, receiver.stderr());
    const [bytes, sha] = receiver.stdout().trim().split('\n').at(-1)!.split(' ');
    assert.equal(Number(bytes), TRANSFER);
    assert.equal(sha, h.digest('hex'));
  } finally {
    await stack.close();
  }
});

// ---------------------------------------------------------------- host routes

/** The namespace's IPv4 routes, without the carrier flag (a TUN nobody holds is 'linkdown'). */
function routes(): string {
  return lab.exec(tun, 'ip', '-4', 'route', 'show').replaceAll(' linkdown', '');
}

test('by default the tool routes --addr into the TUN, and removes the route from a TUN it did not create', async () => {
  const t = fresh();
  // A persistent TUN: it outlives the tool, so only an explicit delete removes the route.
  lab.exec(tun, 'ip', 'tuntap', 'add', t.tunName, 'mode', 'tun', 'vnet_hdr');
  const server = await userServer(t);
  assert.match(routes(), new RegExp(`^${t.addr.replaceAll('.', '\\.')} dev ${t.tunName}`, 'm'));
  const client = start(lab, peer, 'iperf3', ['-c', t.addr, '-p', String(t.port), '-n', '8M']);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  assert.doesNotMatch(routes(), new RegExp(`dev ${t.tunName}`));
  lab.exec(tun, 'ip', 'tuntap', 'del', t.tunName, 'mode', 'tun');
});

test('--no-routes leaves host routing alone; a route wired by someone else carries the test', async () => {
  const t = fresh();
  lab.exec(tun, 'ip', 'tuntap', 'add', t.tunName, 'mode', 'tun', 'vnet_hdr');
  lab.exec(tun, 'ip', 'link', 'set', t.tunName, 'up');
  lab.exec(tun, 'ip', 'route', 'add', `${t.addr}/32`, 'dev', t.tunName);
  const before = routes();
  // With a prefix the tool would otherwise route all of 10.7.0.0/24 into its TUN.
  const server = await userServer(t, '--no-routes', '--addr', '10.7.0.250/24');
  assert.equal(routes(), before);
  const client = start(lab, peer, 'iperf3', ['-c', t.addr, '-p', String(t.port), '-n', '8M']);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  assert.equal(routes(), before);
  lab.exec(tun, 'ip', 'tuntap', 'del', t.tunName, 'mode', 'tun');
});
