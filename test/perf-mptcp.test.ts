/**
 * `mptun perf --stack user --mptcp` over two paths, in private namespaces (twoPathTopology):
 *
 *   cli ─p1 10.50.1.0/24─ srv        our stacks own addresses on TUNs behind the kernels:
 *       ─p2 10.50.2.0/24─            cli TUN: 10.70.1.1 (path 1), 10.70.2.1 (path 2)
 *                                    srv TUN: 10.71.1.x (initial, path 1), 10.71.2.x (unique, path 2)
 *
 * cli forwards by source (10.70.k.1 leaves on path k) and reaches 10.71.k.0/24 over path k; srv
 * routes 10.70.k.0/24 back over path k. Three pairings: our client ↔ our server (C flag and
 * ADD_ADDR of the unique address, subflows on both paths carrying data); stock
 * `mptcpize run iperf3 -c` → our server (the kernel joins our announced address); our client →
 * `mptcpize run iperf3 -s` on a kernel that sets C and signals its path-2 address (our joins to
 * it are established). Kernel MPTcpExt counters and our MIB (end.mptun.stack_counters.mptcp)
 * agree with what each side saw.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  configureMptcp,
  counterDelta,
  eventually,
  mptcpCounters,
  nonZero,
  type TwoPathLab,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { json, type Report, start, startMptun, waitForListen } from './support/perf-lab.js';

const MB = 1024 * 1024;
const CLIENT_ADDRS = ['10.70.1.1', '10.70.2.1'] as const;
const lab = new NetnsLab();
let t: TwoPathLab;

before(() => {
  t = twoPathTopology(lab, { tag: 'pm' });
  const [p1, p2] = t.paths;
  for (const ns of [t.cli, t.srv]) lab.exec(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  for (const p of [p1, p2]) {
    const k = p.index;
    // cli: our client's path-k address leaves on path k; the server's 10.71.k.0/24 is there too.
    lab.exec(
      t.cli,
      'ip',
      'route',
      'add',
      'default',
      'via',
      p.far.v4,
      'dev',
      p.cli.dev,
      'table',
      `${100 + k}`,
    );
    lab.exec(
      t.cli,
      'ip',
      'rule',
      'add',
      'from',
      CLIENT_ADDRS[k - 1]!,
      'lookup',
      `${100 + k}`,
      'priority',
      `${100 + k}`,
    );
    lab.exec(t.cli, 'ip', 'route', 'add', `10.71.${k}.0/24`, 'via', p.far.v4, 'dev', p.cli.dev);
    // srv: replies to the client's path-k address go back over path k.
    lab.exec(t.srv, 'ip', 'route', 'add', `10.70.${k}.0/24`, 'via', p.cli.v4, 'dev', p.far.dev);
  }
});
after(() => lab.cleanup());

let next = 0;
function fresh() {
  next++;
  return { port: 5600 + next, serverTun: `smp${next}`, clientTun: `cmp${next}` };
}

/** Our perf server in srv: initial address 10.71.1.<n>, unique 10.71.2.<n> announced, C flag on. */
async function ourServer(f: ReturnType<typeof fresh>, ...extra: string[]) {
  const initial = `10.71.1.${next}`;
  const unique = `10.71.2.${next}`;
  const s = startMptun(lab, t.srv, [
    'perf',
    'server',
    '--one-off',
    '-J',
    '-p',
    String(f.port),
    '--stack',
    'user',
    '--tun',
    f.serverTun,
    '--addr',
    initial,
    '--addr',
    unique,
    '--mptcp',
    '--announce',
    unique,
    ...extra,
  ]);
  await s.waitFor(/perf server: listening/);
  return { run: s, initial, unique };
}

function ourClient(f: ReturnType<typeof fresh>, host: string, ...extra: string[]) {
  return startMptun(lab, t.cli, [
    'perf',
    'client',
    host,
    '-p',
    String(f.port),
    '--stack',
    'user',
    '--tun',
    f.clientTun,
    '--addr',
    CLIENT_ADDRS[0],
    '--addr',
    CLIENT_ADDRS[1],
    '--mptcp',
    ...extra,
  ]);
}

interface SubflowJson {
  id: number;
  role: 'initial' | 'join';
  local: string;
  remote: string;
  fully_established: boolean;
  bytes_acked: number;
  bytes_received: number;
}

function mptcpOf(report: Report, side: string): { subflows: SubflowJson[] } & Record<string, unknown> {
  const list = report.end?.mptun?.mptcp as ({ subflows: SubflowJson[] } & Record<string, unknown>)[];
  assert.ok(Array.isArray(list) && list.length === 1, `${side}: end.mptun.mptcp: ${JSON.stringify(list)}`);
  return list[0]!;
}

const host = (endpoint: string) => endpoint.slice(0, endpoint.lastIndexOf(':'));

test('our perf client ↔ our perf server --mptcp: joins to the announced address from both paths, data on every subflow', async () => {
  const f = fresh();
  const server = await ourServer(f);
  const client = ourClient(f, server.initial, '-J', '-n', '64M', '-i', '0.5');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.run.done()).code, 0, server.run.stderr());
  const ours = json(client);
  const theirs = json(server.run);
  // Both ends' iperf3 counts agree (each reports the other's in the exchanged results).
  assert.equal(ours.end.sum_sent.bytes, 64 * MB);
  assert.equal(theirs.end.sum_sent.bytes, ours.end.sum_sent.bytes);
  assert.equal(theirs.end.sum_received.bytes, ours.end.sum_received.bytes);
  assert.ok(ours.end.sum_received.bytes > 0);

  const c = mptcpOf(ours, 'client');
  const s = mptcpOf(theirs, 'server');
  assert.equal(c.fallback, false);
  assert.equal(c.peer_c_flag, true, 'the server set C');
  assert.equal(c.remote_token, s.local_token);
  assert.equal(c.local_token, s.remote_token);
  // C flag: no join to the initial address; the unique address joined from both client addresses.
  const sf = c.subflows;
  assert.equal(sf.length, 3, JSON.stringify(sf));
  const initial = sf.filter((x) => x.role === 'initial');
  const joins = sf.filter((x) => x.role === 'join');
  assert.equal(initial.length, 1);
  assert.equal(host(initial[0]!.local), CLIENT_ADDRS[0]);
  assert.equal(host(initial[0]!.remote), server.initial);
  assert.deepEqual(
    joins.map((x) => host(x.remote)),
    [server.unique, server.unique],
  );
  assert.deepEqual(joins.map((x) => host(x.local)).sort(), [...CLIENT_ADDRS]);
  for (const x of sf) {
    assert.ok(x.fully_established, JSON.stringify(x));
    assert.ok(x.bytes_acked > 0, `subflow ${x.local} > ${x.remote} carried data: ${JSON.stringify(x)}`);
  }
  // Path 2 (the client's second address) carried a real share.
  const path2 = sf.filter((x) => host(x.local) === CLIENT_ADDRS[1]).reduce((n, x) => n + x.bytes_acked, 0);
  assert.ok(path2 > 4 * MB, `path 2 carried ${path2} bytes`);
  // The server saw the same subflows, and received on each.
  assert.equal(s.subflows.length, 3);
  for (const x of s.subflows) assert.ok(x.bytes_received > 0, JSON.stringify(x));
  // Interval reports list the subflows.
  const iv = ours.intervals as { streams: { mptcp?: { subflows: unknown[] } }[] }[];
  assert.ok(iv.length > 0 && iv.every((i) => Array.isArray(i.streams[0]?.mptcp?.subflows)));

  // The MIBs: the server announced, the client took it and joined twice, both joins acknowledged.
  const cm = ours.end.mptun.stack_counters.mptcp as Record<string, number>;
  const sm = theirs.end.mptun.stack_counters.mptcp as Record<string, number>;
  assert.ok(cm !== undefined && sm !== undefined);
  // Control and data connections: two MPTCP connections, each with two joins.
  assert.equal(sm.MPCapableACKRX, 2, JSON.stringify(sm));
  assert.equal(cm.MPCapableSYNACKRX, 2, JSON.stringify(cm));
  assert.equal(cm.AddAddr, 2, JSON.stringify(cm));
  assert.equal(sm.MPJoinAckRx, 4, JSON.stringify(sm));
  assert.equal(sm.MPJoinNoTokenFound, undefined, JSON.stringify(sm));
  assert.equal(cm.MPJoinSynAckRx, 4, JSON.stringify(cm));
});

test('text output: subflow lines in intervals and summary, the MPTCP MIB beside the stack counters', async () => {
  const f = fresh();
  const server = await ourServer(f, '--checksum');
  const client = ourClient(f, server.initial, '-n', '16M', '-i', '0.2', '--checksum');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.run.done()).code, 0, server.run.stderr());
  const out = client.stdout();
  assert.match(
    out,
    /^\[ {2}\d\] {3}sf\d+ initial 10\.70\.1\.1:\d+ > 10\.71\.1\.\d+:\d+ .*bits\/sec {2}rtt [\d.]+ ms {2}cwnd /m,
  );
  assert.match(
    out,
    /^\[ {2}\d\] MPTCP: tokens local [0-9a-f]{8} remote [0-9a-f]{8}; peer C flag set; DSS checksums on; 3 subflows/m,
  );
  assert.match(
    out,
    /^\[ {2}\d\] {3}sf\d+ join 10\.70\.2\.1:\d+ > 10\.71\.2\.\d+:\d+: sent .*; rtt [\d.]+ ms; cwnd /m,
  );
  assert.match(out, /^ {2}mptcp: +.*MPCapableSYNACKRX 2/m);
  assert.match(out, /^stack: user \(mptun MPTCP on TUN/m);
});

test('stock mptcpize run iperf3 -c → our perf server --mptcp --announce: the kernel joins our unique address', async () => {
  const f = fresh();
  configureMptcp(lab, t.cli, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
  });
  const server = await ourServer(f);
  const before = mptcpCounters(lab, t.cli);
  const client = start(lab, t.cli, 'mptcpize', [
    'run',
    'iperf3',
    '-c',
    server.initial,
    '-p',
    String(f.port),
    '-n',
    '32M',
    '-J',
  ]);
  assert.equal((await client.done()).code, 0, client.stdout() + client.stderr());
  assert.equal((await server.run.done()).code, 0, server.run.stderr());
  const theirs = json(client).end;
  const ours = json(server.run);
  assert.equal(ours.end.sum_sent.bytes, theirs.sum_sent.bytes);
  assert.equal(ours.end.sum_received.bytes, theirs.sum_received.bytes);
  const d = counterDelta(before, mptcpCounters(lab, t.cli));
  const report = JSON.stringify(nonZero(d));
  // Control and data connection: both MPTCP, our ADD_ADDR taken on each, a join to it each.
  assert.equal(d['MPCapableSYNACKRX'], 2, report);
  assert.equal(d['AddAddr'], 2, report);
  assert.equal(d['MPJoinSynTx'], 2, report);
  assert.equal(d['MPJoinSynAckRx'], 2, report);
  assert.equal(d['MPJoinSynAckHMacFailure'] ?? 0, 0, report);
  const s = mptcpOf(ours, 'server');
  assert.equal(s.fallback, false);
  const joins = s.subflows.filter((x) => x.role === 'join');
  assert.equal(joins.length, 1, JSON.stringify(s.subflows));
  assert.equal(host(joins[0]!.local), server.unique);
  assert.equal(host(joins[0]!.remote), t.paths[1].cli.v4, 'the kernel joined over path 2');
  assert.ok(joins[0]!.fully_established);
  assert.ok(joins[0]!.bytes_received > 0, JSON.stringify(joins[0]));
  const sm = ours.end.mptun.stack_counters.mptcp as Record<string, number>;
  assert.equal(sm.MPJoinAckRx, 2, JSON.stringify(sm));
  assert.equal(sm.EchoAdd, 2, JSON.stringify(sm));
});

test('our perf client --mptcp → mptcpize run iperf3 -s (C flag, signal endpoint): our joins to the announced address are established', async () => {
  const f = fresh();
  const [p1, p2] = t.paths;
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true, allow_join_initial_addr_port: false },
    limits: { subflows: 2, addAddrAccepted: 0 },
    flush: true,
    endpoints: [{ addr: p2.far.v4, dev: p2.far.dev, flags: ['signal'] }],
  });
  const before = mptcpCounters(lab, t.srv);
  const server = start(lab, t.srv, 'mptcpize', ['run', 'iperf3', '-s', '-1', '-p', String(f.port), '-J']);
  await waitForListen(lab, t.srv, f.port);
  const client = ourClient(f, p1.far.v4, '-J', '-n', '32M');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const ours = json(client);
  const theirs = json(server).end;
  assert.equal(ours.end.sum_sent.bytes, 32 * MB);
  assert.equal(theirs.sum_received.bytes, ours.end.sum_received.bytes);
  const c = mptcpOf(ours, 'client');
  assert.equal(c.fallback, false);
  assert.equal(c.peer_c_flag, true, 'allow_join_initial_addr_port=0 sets C');
  const joins = c.subflows.filter((x) => x.role === 'join');
  // From each of our addresses to the signalled one, none to the initial address.
  assert.equal(joins.length, 2, JSON.stringify(c.subflows));
  for (const j of joins) {
    assert.equal(host(j.remote), p2.far.v4);
    assert.ok(j.fully_established, JSON.stringify(j));
  }
  assert.ok(
    joins.some((j) => j.bytes_acked > 0),
    JSON.stringify(joins),
  );
  const d = await eventually(
    'the kernel counted our joins',
    () => counterDelta(before, mptcpCounters(lab, t.srv)),
    (x) => (x['MPJoinAckRx'] ?? 0) >= 4,
  );
  const report = JSON.stringify(nonZero(d));
  assert.equal(d['MPJoinAckRx'], 4, report);
  assert.equal(d['MPJoinAckHMacFailure'] ?? 0, 0, report);
  assert.equal(d['MPJoinNoTokenFound'] ?? 0, 0, report);
  assert.ok((d['AddAddrTx'] ?? 0) >= 2, report);
  const cm = ours.end.mptun.stack_counters.mptcp as Record<string, number>;
  assert.equal(cm.MPJoinSynAckRx, 4, JSON.stringify(cm));
  assert.equal(cm.joinsSkippedCFlag ?? 0, 2, JSON.stringify(cm));
});
