/**
 * MPTCP throughput over two unshaped veth paths, same topology and same run:
 *
 *   a ─p1 10.240.1.0/24─ b
 *     ─p2 10.240.2.0/24─
 *
 * - ours: `mptun perf client --stack user --mptcp` in `a` (TUN 10.241.1.1 routed out of p1,
 *   10.241.2.1 out of p2) → `mptun perf server --stack user --mptcp` in `b` (TUN 10.242.1.1), each
 *   in its own process, as a user runs them. The server does not set C and announces nothing,
 *   so the client joins the server's address from its second address: one subflow per path,
 *   as in the kernel's run.
 * - kernel: `mptcpize run iperf3 -c` in `a` → `mptcpize run iperf3 -s` in `b` over the same
 *   veths, with a `signal` endpoint on b's p2 address: one subflow per path (the baseline).
 *
 * Both run CUBIC (iperf3 -C cubic for the kernel, our engine's own). Each figure is the better
 * of alternating runs; the JSON keeps every run and, for ours, the bytes each path carried.
 * Needs root.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchOptions, BenchRow } from './harness.js';
import { Env, exited, waitForOutput } from './netns-env.js';

const SUITE = 'mptcp';
const MPTUN = fileURLToPath(new URL('../bin/mptun.js', import.meta.url));
const PORT = 5301;
/** Our client's addresses (TUN in a), one per path, and our server's (TUN in b). */
const CLIENT = ['10.241.1.1', '10.241.2.1'] as const;
const SERVER = '10.242.1.1';

interface Measured {
  gbps: number;
  bytes: number;
  /** Bytes acknowledged on each path's subflows (ours only). */
  perPath?: [number, number];
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the MPTCP benchmarks need root (namespaces and TUN devices)');
  const seconds = opts.quick ? 1 : 4;
  const repeats = opts.quick ? 1 : 2;
  const env = new Env('bm');
  try {
    const a = env.netns('a');
    const b = env.netns('b');
    for (const k of [1, 2]) {
      execFileSync('ip', [
        'link',
        'add',
        `p${k}`,
        'netns',
        a,
        'type',
        'veth',
        'peer',
        'name',
        `p${k}`,
        'netns',
        b,
      ]);
      env.sh(a, `ip addr add 10.240.${k}.1/24 dev p${k}; ip link set p${k} up`);
      env.sh(b, `ip addr add 10.240.${k}.2/24 dev p${k}; ip link set p${k} up`);
      // Ours: path k's client address leaves on path k; b sends replies back the same way.
      env.sh(a, `ip route add default via 10.240.${k}.2 dev p${k} table ${100 + k}`);
      env.sh(a, `ip rule add from ${CLIENT[k - 1]} lookup ${100 + k} priority ${100 + k}`);
      env.sh(b, `ip route add 10.241.${k}.0/24 via 10.240.${k}.1 dev p${k}`);
    }
    env.sh(a, `ip route add ${SERVER}/32 via 10.240.1.2 dev p1`);
    for (const ns of [a, b]) env.sh(ns, 'sysctl -qw net.ipv4.ip_forward=1');
    // The kernel: one extra subflow, to the address b signals on path 2.
    env.sh(a, 'ip mptcp limits set subflows 2 add_addr_accepted 2; ip mptcp endpoint flush');
    env.sh(b, 'ip mptcp limits set subflows 2 add_addr_accepted 0; ip mptcp endpoint flush');
    env.sh(b, 'ip mptcp endpoint add 10.240.2.2 dev p2 signal');

    const runs: Record<'ours' | 'kernel', Measured[]> = { ours: [], kernel: [] };
    for (let r = 0; r < repeats; r++) {
      runs.kernel.push(await kernelRun(env, a, b, seconds));
      runs.ours.push(await ourRun(env, a, b, seconds, r));
    }
    const best = (k: 'ours' | 'kernel') => runs[k].reduce((x, y) => (y.gbps > x.gbps ? y : x));
    const list = (k: 'ours' | 'kernel') => runs[k].map((m) => m.gbps.toFixed(2)).join(' ');
    const kernel = best('kernel');
    const ours = best('ours');
    const share = ours.perPath ? ours.perPath[1] / Math.max(1, ours.perPath[0] + ours.perPath[1]) : 0;
    return [
      {
        suite: SUITE,
        name: 'userspace MPTCP → userspace MPTCP, TUNs, 2 veth paths, 1 flow',
        value: ours.gbps,
        unit: 'Gbit/s',
        baseline: { name: 'kernel MPTCP (mptcpize iperf3), same paths', value: kernel.gbps },
        extra: {
          seconds,
          runsGbps: list('ours'),
          bytes: ours.bytes,
          path1Bytes: ours.perPath?.[0] ?? 0,
          path2Bytes: ours.perPath?.[1] ?? 0,
          path2Share: Number(share.toFixed(3)),
        },
      },
      {
        suite: SUITE,
        name: 'kernel MPTCP (mptcpize iperf3), 2 veth paths, 1 flow',
        value: kernel.gbps,
        unit: 'Gbit/s',
        extra: { seconds, runsGbps: list('kernel'), bytes: kernel.bytes },
      },
    ];
  } finally {
    await env.cleanup();
  }
}

type Report = {
  end: {
    sum_received: { bytes: number; bits_per_second: number };
    mptun?: { mptcp?: { subflows: { local: string; bytes_acked: number }[] }[] };
  };
};

async function kernelRun(env: Env, a: string, b: string, seconds: number): Promise<Measured> {
  const server = env.spawn(b, 'mptcpize', [
    'run',
    'iperf3',
    '-s',
    '-1',
    // Not bound (-B) to one address: the kernel answers a join only where a listener takes it,
    // and a bound one left the baseline on one subflow.
    '-p',
    String(PORT),
    '--forceflush',
  ]);
  await waitForOutput(server, /Server listening/);
  const client = env.spawn(a, 'mptcpize', [
    'run',
    'iperf3',
    '-c',
    '10.240.1.2',
    '-p',
    String(PORT),
    '-t',
    String(seconds),
    '-C',
    'cubic',
    '-J',
  ]);
  const report = await jsonOf(client, seconds, 'kernel iperf3 client');
  await exited(server);
  const r = report.end.sum_received;
  return { gbps: r.bits_per_second / 1e9, bytes: r.bytes };
}

async function ourRun(env: Env, a: string, b: string, seconds: number, n: number): Promise<Measured> {
  const server = env.spawn(b, process.execPath, [
    MPTUN,
    '--log-level',
    'info',
    'perf',
    'server',
    '-1',
    '-p',
    String(PORT),
    '--stack',
    'user',
    '--tun',
    `bms${n}`,
    '--addr',
    SERVER,
    '--mptcp',
    '--no-c-flag',
  ]);
  await waitForOutput(server, /perf server: listening/);
  const client = env.spawn(a, process.execPath, [
    MPTUN,
    '--log-level',
    'warn',
    'perf',
    'client',
    SERVER,
    '-p',
    String(PORT),
    '-t',
    String(seconds),
    '-i',
    '0',
    '-J',
    '--stack',
    'user',
    '--tun',
    `bmc${n}`,
    '--addr',
    CLIENT[0],
    '--addr',
    CLIENT[1],
    '--mptcp',
  ]);
  const report = await jsonOf(client, seconds, 'mptun perf client');
  await exited(server);
  const r = report.end.sum_received;
  const perPath: [number, number] = [0, 0];
  for (const sf of report.end.mptun?.mptcp?.[0]?.subflows ?? []) {
    const k = CLIENT.findIndex((addr) => sf.local.startsWith(`${addr}:`));
    if (k >= 0) perPath[k] = perPath[k]! + sf.bytes_acked;
  }
  return { gbps: r.bits_per_second / 1e9, bytes: r.bytes, perPath };
}

async function jsonOf(child: ChildProcess, seconds: number, what: string): Promise<Report> {
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const code = await exited(child, (seconds + 30) * 1000);
  if (code !== 0) throw new Error(`${what} failed (${code}): ${out.slice(0, 500)}`);
  return JSON.parse(out) as Report;
}

/** Resolves once `re` appears on the child's stdout or stderr (mptun logs to stderr). */
