/**
 * Single-flow TCP throughput and CPU cost, same run:
 *
 * - userspace TCP ↔ kernel TCP over a TUN with offload: mptun's stack in a child process per
 *   run (the `--stack user` code of `mptun perf`), its TUN in a namespace where a stock
 *   `iperf3 -s` listens; our iperf3 client sends (and, with -R, receives) one stream.
 * - kernel TCP over veth: stock iperf3 client and server in two namespaces joined by a veth pair
 *   (the baseline every row is compared with).
 * - a plain Node relay: iperf3 -c → a Node process doing `pipe()` both ways → iperf3 -s, over
 *   the same veth.
 *
 * Kernel TCP runs CUBIC (iperf3 -C cubic, and the congestion parameter our client sends), like
 * our engine, whatever the host's default (BBR here, which makes a different, on veth slower,
 * baseline); the relay's own Node sockets keep the host default.
 * CPU seconds per GB counts every process that moves the bytes (iperf3's own getrusage figures
 * from its results, our child's cpuUsage, the relay's /proc stat), not softirq work that the
 * kernel does outside them. Each figure is the better of alternating runs. Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { runClient } from '../src/proxy/perf/client.js';
import type { PerfStack } from '../src/proxy/perf/stack.js';
import { openUserStack } from '../src/proxy/perf/user-stack.js';
import type { BenchOptions, BenchRow } from './harness.js';
import { Env, exited, waitForOutput } from './netns-env.js';

const SUITE = 'tcp';
const KERNEL_ADDR = '10.220.0.1';
const STACK_ADDR = '10.220.0.2';
const VETH_A = '10.230.0.1';
const VETH_B = '10.230.0.2';
const CLK_TCK = 100;
/** argv[2] of the child process that runs one userspace measurement. */
const USER_CHILD = '--user-child';

interface Measured {
  gbps: number;
  /** CPU seconds spent per GB (1e9 bytes) moved, over the processes that moved them. */
  cpuPerGb: number;
  bytes: number;
  seconds: number;
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  if (process.getuid?.() !== 0) throw new Error('the TCP benchmarks need root (namespaces and TUN devices)');
  const seconds = opts.quick ? 1 : 3;
  const repeats = opts.quick ? 1 : 2;
  const env = new Env('bt');
  try {
    const u = env.netns('u');
    env.sh(u, `ip addr add ${KERNEL_ADDR}/32 dev lo`);
    const a = env.netns('a');
    const b = env.netns('b');
    execFileSync('ip', ['link', 'add', 'vt', 'netns', a, 'type', 'veth', 'peer', 'name', 'vtp', 'netns', b]);
    env.sh(a, `ip addr add ${VETH_A}/24 dev vt; ip link set vt up`);
    env.sh(b, `ip addr add ${VETH_B}/24 dev vtp; ip link set vtp up`);

    const runs: Record<string, Measured[]> = { send: [], recv: [], veth: [], relay: [] };
    for (let r = 0; r < repeats; r++) {
      runs.veth!.push(await vethRun(env, a, b, seconds));
      runs.send!.push(await userRun(env, u, seconds, false));
      runs.recv!.push(await userRun(env, u, seconds, true));
      runs.relay!.push(await relayRun(env, a, b, seconds));
    }
    const best = (k: string) => runs[k]!.reduce((x, y) => (y.gbps > x.gbps ? y : x));
    const list = (k: string) => runs[k]!.map((m) => m.gbps.toFixed(2)).join(' ');
    const veth = best('veth');
    const rows: BenchRow[] = [];
    const row = (key: string, name: string): void => {
      const m = best(key);
      rows.push({
        suite: SUITE,
        name: `${name}: throughput`,
        value: m.gbps,
        unit: 'Gbit/s',
        ...(key === 'veth' ? {} : { baseline: { name: 'kernel TCP over veth', value: veth.gbps } }),
        extra: { seconds, runsGbps: list(key), bytes: m.bytes },
      });
      rows.push({
        suite: SUITE,
        name: `${name}: CPU`,
        value: m.cpuPerGb,
        unit: 'CPU s/GB',
        ...(key === 'veth' ? {} : { baseline: { name: 'kernel TCP over veth', value: veth.cpuPerGb } }),
      });
    };
    row('send', 'userspace TCP → kernel, TUN with offload, 1 flow');
    row('recv', 'kernel → userspace TCP, TUN with offload, 1 flow');
    row('veth', 'kernel TCP over veth, 1 flow');
    row('relay', 'Node pipe() relay between kernel TCP flows, veth');
    return rows;
  } finally {
    await env.cleanup();
  }
}

/**
 * Our stack as iperf3 client against a stock iperf3 -s behind the TUN. Each run gets a fresh
 * Node process (as `mptun perf client --stack user` would): V8's GC and JIT state after one
 * direction's run must not weigh on the other's (measured: the receive direction run after the
 * send direction in one process gets a third of its throughput, all in extra mark-compacts).
 */
async function userRun(env: Env, ns: string, seconds: number, reverse: boolean): Promise<Measured> {
  const server = env.spawn(ns, 'iperf3', ['-s', '-1', '-B', KERNEL_ADDR, '-p', '5201', '--forceflush']);
  await waitForOutput(server, /Server listening/);
  const self = fileURLToPath(import.meta.url);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', self, USER_CHILD, ns, String(seconds), reverse ? 'reverse' : 'forward'],
    { cwd: dirname(dirname(self)), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const code = await exited(child, (seconds + 30) * 1000);
  if (code !== 0) throw new Error(`userspace run failed (${code}): ${out.slice(0, 500)}`);
  await exited(server);
  return measured(JSON.parse(out) as EndJson, seconds);
}

/** The child side of userRun: prints the iperf3 `end` object as JSON. */
async function userChild(ns: string, seconds: number, reverse: boolean): Promise<void> {
  const stack: PerfStack = await openUserStack(
    { tun: 'utcp', addresses: [STACK_ADDR], routes: true, offload: true, netns: ns },
    pino({ level: 'silent' }),
  );
  try {
    const report = await runClient({
      host: KERNEL_ADDR,
      port: 5201,
      time: seconds,
      bytes: 0,
      reverse,
      parallel: 1,
      blockSize: 128 * 1024,
      interval: 0,
      json: true,
      connectTimeoutMs: 5000,
      congestion: 'cubic',
      stack,
      log: pino({ level: 'silent' }),
      print: () => undefined,
    });
    process.stdout.write(`${JSON.stringify(report['end'])}\n`);
  } finally {
    await stack.close();
  }
}

/** Stock iperf3 at both ends of a veth pair. */
async function vethRun(env: Env, a: string, b: string, seconds: number): Promise<Measured> {
  const server = env.spawn(b, 'iperf3', ['-s', '-1', '-B', VETH_B, '-p', '5201', '--forceflush']);
  await waitForOutput(server, /Server listening/);
  const end = await iperfClient(env, a, VETH_B, 5201, seconds);
  await exited(server);
  return measured(end, seconds);
}

/** iperf3 -c (a) → Node relay (b, VETH_B:5202) → iperf3 -s (b, 127.0.0.1:5201). */
async function relayRun(env: Env, a: string, b: string, seconds: number): Promise<Measured> {
  const server = env.spawn(b, 'iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', '5201', '--forceflush']);
  await waitForOutput(server, /Server listening/);
  const relaySource = `
const net = require('node:net');
const srv = net.createServer((c) => {
  const u = net.connect(5201, '127.0.0.1');
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
});
srv.listen(5202, '${VETH_B}', () => console.log('relay listening'));`;
  const relay = env.spawn(b, process.execPath, ['-e', relaySource]);
  await waitForOutput(relay, /relay listening/);
  const before = procCpuSeconds(relay.pid!);
  const end = await iperfClient(env, a, VETH_B, 5202, seconds);
  const relayCpu = procCpuSeconds(relay.pid!) - before;
  await exited(server);
  relay.kill('SIGTERM');
  await exited(relay);
  const m = measured(end, seconds);
  const gb = m.bytes / 1e9;
  return { ...m, cpuPerGb: m.cpuPerGb + relayCpu / gb };
}

type EndJson = {
  sum_received: { bytes: number; seconds: number; bits_per_second: number };
  cpu_utilization_percent: { host_total: number; remote_total: number };
};

async function iperfClient(
  env: Env,
  ns: string,
  host: string,
  port: number,
  seconds: number,
): Promise<EndJson> {
  const client = env.spawn(ns, 'iperf3', [
    '-c',
    host,
    '-p',
    String(port),
    '-t',
    String(seconds),
    '-C',
    'cubic',
    '-J',
  ]);
  let out = '';
  client.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const code = await exited(client, (seconds + 20) * 1000);
  if (code !== 0) throw new Error(`iperf3 failed (${code}): ${out.slice(0, 500)}`);
  return (JSON.parse(out) as { end: EndJson }).end;
}

function measured(end: EndJson, seconds: number): Measured {
  const bytes = end.sum_received.bytes;
  const cpu =
    ((end.cpu_utilization_percent.host_total + end.cpu_utilization_percent.remote_total) / 100) * seconds;
  return { gbps: end.sum_received.bits_per_second / 1e9, cpuPerGb: cpu / (bytes / 1e9), bytes, seconds };
}

/** utime + stime of a process, seconds (fields 14 and 15 of /proc/PID/stat). */
function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

if (process.argv[2] === USER_CHILD && process.argv[1] === fileURLToPath(import.meta.url)) {
  const [ns = '', secs = '3', direction = 'forward'] = process.argv.slice(3);
  await userChild(ns, Number(secs), direction === 'reverse');
}
