/**
 * `mptun perf --stack user` shows the userspace stack's counters: `end.mptun.stack_counters` in
 * -J output (iface counters, parse errors, the summed TCP engine counters; non-zero only), and a
 * block of text lines at the end, on the client, on the server and in what a stock
 * `iperf3 --get-server-output` receives. In private namespaces:
 *
 *   peer (kernel: iperf3, python3) ──veth 10.9.0.1 ↔ 10.9.0.2── tun (forwarding)
 *                                                               ├─ TUN pcs1: perf server, 10.7.1.2/24
 *                                                               └─ TUN pcc1: perf client, 10.7.2.2/24
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NetnsLab } from './support/netns.js';
import { json, type Report, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
let peer = '';
let tun = '';
let next = 0;

before(() => {
  peer = lab.add('peer');
  tun = lab.add('tun');
  lab.veth(peer, '10.9.0.1/24', tun, '10.9.0.2/24', 'vpc');
  lab.exec(tun, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  lab.exec(peer, 'ip', 'route', 'add', '10.7.0.0/16', 'via', '10.9.0.2');
});
after(() => lab.cleanup());

/** Fresh TUN names, subnets and port per test: the server owns 10.7.N.2/24, the client 10.7.N+1.2/24. */
function fresh() {
  next++;
  const net = 2 * next - 1;
  return {
    serverTun: `pcs${next}`,
    clientTun: `pcc${next}`,
    serverNet: `10.7.${net}`,
    server: `10.7.${net}.2`,
    client: `10.7.${net + 1}.2`,
    port: 5500 + next,
  };
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
    t.serverTun,
    '--addr',
    `${t.server}/24`,
    ...extra,
  ]);
  await s.waitFor(/perf server: listening/);
  return s;
}

function userClient(t: ReturnType<typeof fresh>, ...extra: string[]) {
  return startMptun(lab, tun, [
    'perf',
    'client',
    t.server,
    '-p',
    String(t.port),
    '--stack',
    'user',
    '--tun',
    t.clientTun,
    '--addr',
    `${t.client}/24`,
    ...extra,
  ]);
}

/** One SYN from the peer's kernel (a non-blocking connect, then exit: no retransmission). */
function sendOneSyn(host: string, port: number): void {
  lab.exec(
    peer,
    'python3',
    '-c',
    `import socket; s = socket.socket(); s.setblocking(False); s.connect_ex((${JSON.stringify(host)}, ${port}))`,
  );
}

function assertPlausible(report: Report, side: string) {
  const sc = report.end.mptun.stack_counters;
  assert.ok(sc !== undefined, `${side}: no end.mptun.stack_counters`);
  assert.match(sc.note, /non-zero/);
  const { counters, tcp, parseErrors } = sc as Record<string, Record<string, number>>;
  assert.ok(counters !== undefined && tcp !== undefined && parseErrors !== undefined, side);
  assert.ok(counters.framesIn! > 0 && counters.framesOut! > 0, `${side}: ${JSON.stringify(counters)}`);
  assert.ok(counters.bytesIn! >= counters.framesIn! * 40, side);
  assert.ok(tcp.segmentsIn! > 0 && tcp.segmentsOut! > 0, `${side}: ${JSON.stringify(tcp)}`);
  // A segment is at least one frame's worth; super-packets carry several.
  assert.ok(tcp.segmentsIn! <= counters.framesIn!, side);
  // Control and data connections: two opens of one kind, none of the other.
  assert.equal((counters.activeOpens ?? 0) + (counters.passiveOpens ?? 0), 2, side);
  for (const group of [counters, tcp, parseErrors])
    for (const [name, n] of Object.entries(group)) assert.notEqual(n, 0, `${side}: ${name} is listed as 0`);
  return sc as Record<string, Record<string, number>>;
}

test('-J: client and server report end.mptun.stack_counters; a SYN to the server subnet broadcast is counted', async () => {
  const t = fresh();
  const server = await userServer(t, '-J');
  // The tun namespace has no address in 10.7.1.0/24, so its kernel forwards this as unicast;
  // the stack, which owns 10.7.1.2/24, knows it is the broadcast and drops it.
  sendOneSyn(`${t.serverNet}.255`, t.port);
  const client = userClient(t, '-J', '-n', '8M');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const ours = json(client);
  const theirs = json(server);
  assert.equal(ours.end.sum_sent.bytes, 8 * 1024 * 1024);
  assert.equal(theirs.end.sum_received.bytes, ours.end.sum_received.bytes);
  const c = assertPlausible(ours, 'client');
  const s = assertPlausible(theirs, 'server');
  assert.equal(c.counters!.activeOpens, 2);
  assert.equal(s.counters!.passiveOpens, 2);
  assert.equal(s.counters!.dropBroadcastAddress, 1, JSON.stringify(s.counters));
  assert.equal(c.counters!.dropBroadcastAddress, undefined);
  // What the server counted as received came in through its device, headers and all.
  assert.ok(s.counters!.bytesIn! > theirs.end.sum_received.bytes, JSON.stringify(s.counters));
  assert.ok(c.counters!.bytesOut! > theirs.end.sum_received.bytes, JSON.stringify(c.counters));
});

/** The block's lines as printed: `  iface: framesIn 123, ...` (wrapped lines indented further). */
function counterBlock(out: string, side: string): string {
  const m = /^stack counters \(non-zero only, totals since the stack started\):\n((?: {2}.*\n)+)/m.exec(out);
  assert.ok(m, `${side}: no counter block in\n${out}`);
  return m[1]!;
}

function assertTextBlock(out: string, side: string) {
  const block = counterBlock(out, side);
  assert.match(block, /^ {2}iface: +framesIn [1-9]\d*, bytesIn [1-9]\d*,/m, side);
  assert.match(block, /^ {2}tcp: +segmentsIn [1-9]\d*, segmentsOut [1-9]\d*/m, side);
  assert.doesNotMatch(block, / 0(,|$)/m, `${side}: a zero counter is listed`);
  for (const line of block.split('\n')) assert.ok(line.length <= 100, `${side}: long line ${line}`);
}

test('text: client and server print the counter block at the end', async () => {
  const t = fresh();
  const server = await userServer(t);
  const client = userClient(t, '-t', '1', '-i', '0');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  assertTextBlock(client.stdout(), 'client');
  assertTextBlock(server.stdout(), 'server');
  // At the end of the report, before iperf3's closing line.
  assert.match(client.stdout(), /stack counters [^\n]*\n(?: {2}.*\n)+\niperf Done\.\n$/);
});

test('stock iperf3 --get-server-output shows the server stack counters', async () => {
  const t = fresh();
  const server = await userServer(t);
  const client = start(lab, peer, 'iperf3', [
    '-c',
    t.server,
    '-p',
    String(t.port),
    '-n',
    '8M',
    '--get-server-output',
  ]);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const out = client.stdout();
  const serverPart = out.slice(out.indexOf('Server output:'));
  assert.ok(serverPart.length > 0, out);
  assertTextBlock(serverPart, 'server output');
});
