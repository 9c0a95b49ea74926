/**
 * `mptun server` end to end in namespaces: kernel clients in `cli` (MPTCP, plain TCP) → over the
 * lab's two paths → mptun server in `srv` on its TUN (VIP = our path-1 address, unique address =
 * our path-2 address, C flag, ADD_ADDR) → backends in `srv` on 127.0.0.1 over kernel TCP. Every
 * transfer is checked by SHA-256; the kernel's MPTcpExt counters and its path-manager events say
 * that it joined the unique address; SIGTERM leaves none of the server's routes behind.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  configureMptcp,
  counterDelta,
  labSha256,
  mptcpCounters,
  nonZero,
  type Peer,
  startClient,
  startServer,
  type TwoPathLab,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { plumbUserServer, userServerAddr } from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const TUN = 'mpt-srv';
const VIP = userServerAddr(1, 'v4');
const UNIQUE = userServerAddr(2, 'v4');
const ECHO_PORT = 7001;
const SINK_PORT = 7002;
const REPLY = 20_000_000;
const REPLY_SEED = 31;

/** An echo service: every connection's bytes back, and its FIN passed on after them. */
const ECHO_SERVER = `
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
print("listening", flush=True)
def serve(c):
    while True:
        d = c.recv(1 << 18)
        if not d: break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    while c.recv(1 << 16): pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/**
 * A kernel MPTCP client that sends the lab's deterministic bytes and reads the echo at the same
 * time (mptcp-peer.py's client reads only after sending, which an echo of 50 MB would deadlock).
 * Prints one JSON line: proto, sent and received byte counts and SHA-256.
 */
const ECHO_CLIENT = `
import hashlib, json, socket, sys, threading
host, port, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.settimeout(60)
s.connect((host, port))
def mptcp_info():
    # struct mptcp_info: u8 subflows (besides the first) at 0, u32 flags at 8 (bit 0: fallback).
    try:
        raw = s.getsockopt(284, 1, 64)
    except OSError:
        return None
    return None if len(raw) < 16 or int.from_bytes(raw[8:12], "little") & 1 else raw[0]
proto = "fallback" if mptcp_info() is None else "mptcp"
sent = hashlib.sha256()
def send():
    k = 0; left = n
    while left > 0:
        c = hashlib.shake_128(f"mptun-lab:{seed}:{k}".encode()).digest(1 << 20)[:left]
        s.sendall(c); sent.update(c); left -= len(c); k += 1
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
got = hashlib.sha256(); m = 0; buf = bytearray(1 << 18); view = memoryview(buf)
while True:
    r = s.recv_into(view)
    if r == 0: break
    got.update(view[:r]); m += r
t.join(); extra = mptcp_info(); s.close()
print(json.dumps({"proto": proto, "subflows": extra, "sent": [n, sent.hexdigest()], "received": [m, got.hexdigest()]}), flush=True)
`;

let t: TwoPathLab;
let mptun: Run;
let sink: Peer;

before(async () => {
  t = twoPathTopology(lab, { tag: 'srvk' });
  plumbUserServer(lab, t);
  configureMptcp(lab, t.cli, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
  });
  const echo = start(lab, t.srv, 'python3', ['-c', ECHO_SERVER, String(ECHO_PORT)]);
  await echo.waitFor(/^listening/m);
  // Receives each connection to EOF, then sends REPLY bytes: only a half-close lets that happen.
  sink = await startServer(lab, t.srv, {
    host: '127.0.0.1',
    port: SINK_PORT,
    tcp: true,
    conns: 0,
    send: REPLY,
    seed: REPLY_SEED,
  });
  mptun = startMptun(lab, t.srv, [
    'server',
    '--tun',
    TUN,
    '--vip',
    VIP,
    '--unique',
    UNIQUE,
    '--listen',
    '5001',
    '--backend',
    `127.0.0.1:${ECHO_PORT}`,
    '--listen',
    '5002',
    '--backend',
    `127.0.0.1:${SINK_PORT}`,
    '--drain-timeout',
    '5',
  ]);
  await mptun.waitFor(/"msg":"server: listening"/);
});

test('routes for the VIP and the unique address point into the TUN', () => {
  const routes = lab.exec(t.srv, 'ip', 'route', 'show', 'dev', TUN);
  assert.match(routes, new RegExp(`^${VIP.replaceAll('.', '\\.')} `, 'm'));
  assert.match(routes, new RegExp(`^${UNIQUE.replaceAll('.', '\\.')} `, 'm'));
});

test('kernel MPTCP client, echo backend: 50 MB both ways, SHA-256 equal', async () => {
  const size = 50_000_000;
  const seed = 41;
  const client = start(lab, t.cli, 'python3', ['-c', ECHO_CLIENT, VIP, '5001', String(size), String(seed)]);
  const m = await client.waitFor(/^(\{.*\})$/m, 45_000);
  const r = JSON.parse(m[1]!) as {
    proto: string;
    subflows: number | null;
    sent: [number, string];
    received: [number, string];
  };
  const expected = [size, labSha256(seed, size)];
  assert.equal(r.proto, 'mptcp');
  assert.equal(r.subflows, 1, 'the kernel joined the announced unique address');
  assert.deepEqual(r.sent, expected);
  assert.deepEqual(r.received, expected, 'the echo came back whole');
  assert.equal((await client.done(10_000)).code, 0);
});

test('half-close: the client FIN reaches the backend, whose reply still flows back; the kernel joined the unique address', async () => {
  const size = 10_000_000;
  const seed = 42;
  const beforeMib = mptcpCounters(lab, t.cli);
  const client = startClient(lab, t.cli, {
    host: VIP,
    port: 5002,
    bytes: size,
    seed,
    subflows: 1,
    subflowsWhen: 'connected',
    timeout: 30,
  });
  await client.done(45_000);
  const c = client.connections()[0];
  assert.equal(c?.proto, 'mptcp');
  assert.deepEqual(c?.sent, { bytes: size, sha256: labSha256(seed, size) });
  assert.deepEqual(c?.received, { bytes: REPLY, sha256: labSha256(REPLY_SEED, REPLY) });
  // The backend saw the client's whole stream and then its end (it only replies after EOF).
  const atBackend = sink.connections().find((k) => k.received?.sha256 === labSha256(seed, size));
  assert.ok(atBackend, `backend did not receive the stream: ${JSON.stringify(sink.connections())}`);
  // The one extra subflow went to the unique address (the C flag kept it off the VIP).
  assert.equal(c?.subflows.length, 1);
  assert.equal(c?.subflows[0]?.kind, 'established');
  assert.equal(c?.subflows[0]?.dst.addr, UNIQUE);
  const mib = counterDelta(beforeMib, mptcpCounters(lab, t.cli));
  assert.ok((mib['AddAddr'] ?? 0) >= 1, `no ADD_ADDR seen: ${JSON.stringify(nonZero(mib))}`);
  assert.ok((mib['MPJoinSynAckRx'] ?? 0) >= 1, `no join answered: ${JSON.stringify(nonZero(mib))}`);
});

test('a plain TCP client is served the same (no MPTCP at all)', async () => {
  const size = 5_000_000;
  const seed = 43;
  const client = startClient(lab, t.cli, {
    host: VIP,
    port: 5002,
    bytes: size,
    seed,
    tcp: true,
    timeout: 30,
  });
  await client.done(45_000);
  const c = client.connections()[0];
  assert.equal(c?.proto, 'tcp');
  assert.deepEqual(c?.sent, { bytes: size, sha256: labSha256(seed, size) });
  assert.deepEqual(c?.received, { bytes: REPLY, sha256: labSha256(REPLY_SEED, REPLY) });
  assert.match(mptun.stderr(), /"proto":"(tcp|fallback)"/);
});

test('SIGTERM drains: no new connections, an open one finishes, one that never ends is cut at --drain-timeout; then no route or TUN is left', async () => {
  const size = 1_000_000;
  const held = (seed: number) =>
    startClient(lab, t.cli, { host: VIP, port: 5002, bytes: size, seed, hold: true, timeout: 30 });
  const finishing = held(44);
  const stuck = held(45);
  // The late client is started (python takes seconds on a loaded machine) before the drain's
  // 5 s run; it connects when told to on stdin.
  const late = start(lab, t.cli, 'python3', [
    '-c',
    'import socket,sys\nprint("ready", flush=True)\nsys.stdin.readline()\ntry:\n  socket.create_connection((sys.argv[1], 5002), 5)\nexcept ConnectionRefusedError:\n  print("refused")',
    VIP,
  ]);
  await late.waitFor(/^ready$/m);
  await finishing.step('holding', 0);
  await stuck.step('holding', 0);
  mptun.child.kill('SIGTERM');
  await mptun.waitFor(/"open":2,"drainMs":5000,"msg":"server: draining"/);
  // The listeners are closed: a new connection is refused.
  late.child.stdin?.write('go\n');
  await late.waitFor(/^refused$/m);
  finishing.release();
  await finishing.done(20_000);
  assert.deepEqual(finishing.connections()[0]?.received, {
    bytes: REPLY,
    sha256: labSha256(REPLY_SEED, REPLY),
  });
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  assert.match(mptun.stderr(), /"aborted":1,.*"msg":"server: stopped"/);
  stuck.release();
  await assert.rejects(stuck.done(20_000), 'the cut connection fails at the client');
  const routes = lab.exec(t.srv, 'ip', 'route', 'show');
  assert.doesNotMatch(routes, new RegExp(TUN));
  assert.doesNotMatch(routes, new RegExp(`^(${VIP}|${UNIQUE})\\b`.replaceAll('.', '\\.'), 'm'));
  assert.doesNotMatch(lab.exec(t.srv, 'ip', 'link', 'show'), new RegExp(TUN));
});
