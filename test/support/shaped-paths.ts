/**
 * Two tbf-shaped paths between namespaces `a` and `b`, and the four goodput runs issue 7 compares
 * on them (all CUBIC, each a separate process as a user runs it):
 *
 *   a ─p1 10.240.1.0/24, tbf RATE each way─ b
 *     ─p2 10.240.2.0/24, tbf RATE each way─
 *
 * - plain TCP over path 1: kernel iperf3 -C cubic a → b (what one path gives one flow);
 * - kernel MPTCP: mptcpize iperf3, b signals its path-2 address: one subflow per path;
 * - ours → ours: `mptun perf client --stack user --mptcp` (TUN addresses 10.241.k.1, each routed
 *   out of path k) → `mptun perf server --stack user --mptcp --no-c-flag` (TUN 10.242.1.1);
 * - ours → kernel: the same client → mptcpize iperf3 -s on b's path-1 address.
 * Goodput is the receiver's bits per second as the client's -J report gives it.
 */
import { execFileSync } from 'node:child_process';
import type { NetnsLab } from './netns.js';
import { json, type Run, start, startMptun } from './perf-lab.js';

/** Our client's addresses (TUN in a), one per path, and our server's (TUN in b). */
export const SHAPED_CLIENT = ['10.241.1.1', '10.241.2.1'] as const;
export const SHAPED_SERVER = '10.242.1.1';
/** b's address on path k. */
const kernelServer = (k: number) => `10.240.${k}.2`;

export interface ShapedPaths {
  a: string;
  b: string;
}

/** Builds the topology in `lab`; `rate` as tc takes it ('50mbit'). */
export function shapedPaths(lab: NetnsLab, rate: string): ShapedPaths {
  const a = lab.add('a');
  const b = lab.add('b');
  const sh = (ns: string, script: string) => execFileSync('ip', ['netns', 'exec', ns, 'sh', '-ec', script]);
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
    sh(a, `ip addr add 10.240.${k}.1/24 dev p${k}; ip link set p${k} up`);
    sh(b, `ip addr add 10.240.${k}.2/24 dev p${k}; ip link set p${k} up`);
    // ~20 ms of queue at the rate, like a modest access link; both directions shaped.
    for (const ns of [a, b]) sh(ns, `tc qdisc add dev p${k} root tbf rate ${rate} burst 32kb latency 20ms`);
    sh(a, `ip route add default via 10.240.${k}.2 dev p${k} table ${100 + k}`);
    sh(a, `ip rule add from ${SHAPED_CLIENT[k - 1]} lookup ${100 + k} priority ${100 + k}`);
    sh(b, `ip route add 10.241.${k}.0/24 via 10.240.${k}.1 dev p${k}`);
  }
  sh(a, `ip route add ${SHAPED_SERVER}/32 via 10.240.1.2 dev p1`);
  for (const ns of [a, b]) sh(ns, 'sysctl -qw net.ipv4.ip_forward=1');
  sh(a, 'ip mptcp limits set subflows 2 add_addr_accepted 2; ip mptcp endpoint flush');
  sh(b, 'ip mptcp limits set subflows 2 add_addr_accepted 0; ip mptcp endpoint flush');
  sh(b, `ip mptcp endpoint add ${kernelServer(2)} dev p2 signal`);
  return { a, b };
}

export interface Goodput {
  mbps: number;
  /** Bytes acknowledged on each path's subflows (our client only). */
  perPath?: [number, number];
}

let nextPort = 5700;

async function finish(client: Run, server: Run, seconds: number, what: string): Promise<Goodput> {
  const { code } = await client.done((seconds + 30) * 1000);
  if (code !== 0) throw new Error(`${what} client failed (${code}):\n${client.stdout()}\n${client.stderr()}`);
  await server.done(10_000);
  const report = json(client);
  const mbps = Number(report.end.sum_received.bits_per_second) / 1e6;
  const subflows: { local: string; bytes_acked: number }[] = report.end.mptun?.mptcp?.[0]?.subflows ?? [];
  if (subflows.length === 0) return { mbps };
  const perPath: [number, number] = [0, 0];
  for (const sf of subflows) {
    const k = SHAPED_CLIENT.findIndex((addr) => sf.local.startsWith(`${addr}:`));
    if (k >= 0) perPath[k] = (perPath[k] ?? 0) + sf.bytes_acked;
  }
  return { mbps, perPath };
}

function kernelServerRun(lab: NetnsLab, t: ShapedPaths, port: number, mptcp: boolean): Run {
  // Not bound to one address (-B): the kernel answers a join only where a listener takes it.
  const args = ['-s', '-1', '-p', String(port), '--forceflush'];
  return mptcp ? start(lab, t.b, 'mptcpize', ['run', 'iperf3', ...args]) : start(lab, t.b, 'iperf3', args);
}

/** Kernel iperf3 a → b over path 1, plain TCP (`mptcp` false) or MPTCP over both paths. */
export async function kernelGoodput(
  lab: NetnsLab,
  t: ShapedPaths,
  seconds: number,
  mptcp: boolean,
): Promise<Goodput> {
  const port = nextPort++;
  const server = kernelServerRun(lab, t, port, mptcp);
  await server.waitFor(/Server listening/);
  const args = ['-c', kernelServer(1), '-p', String(port), '-t', String(seconds), '-C', 'cubic', '-J'];
  const client = mptcp
    ? start(lab, t.a, 'mptcpize', ['run', 'iperf3', ...args])
    : start(lab, t.a, 'iperf3', args);
  return finish(client, server, seconds, mptcp ? 'kernel MPTCP' : 'plain TCP');
}

/** Our MPTCP client (both paths) → our server, or → the kernel's MPTCP iperf3 server. */
export async function oursGoodput(
  lab: NetnsLab,
  t: ShapedPaths,
  seconds: number,
  peer: 'ours' | 'kernel',
  extra: readonly string[] = [],
): Promise<Goodput> {
  const port = nextPort++;
  const n = port % 100;
  const server =
    peer === 'kernel'
      ? kernelServerRun(lab, t, port, true)
      : startMptun(lab, t.b, [
          'perf',
          'server',
          '-1',
          '-p',
          String(port),
          '--stack',
          'user',
          '--tun',
          `shs${n}`,
          '--addr',
          SHAPED_SERVER,
          '--mptcp',
          '--no-c-flag',
        ]);
  await server.waitFor(peer === 'kernel' ? /Server listening/ : /perf server: listening/);
  const target = peer === 'kernel' ? kernelServer(1) : SHAPED_SERVER;
  const client = startMptun(lab, t.a, [
    'perf',
    'client',
    target,
    '-p',
    String(port),
    '-t',
    String(seconds),
    '-i',
    '0',
    '-J',
    '--stack',
    'user',
    '--tun',
    `shc${n}`,
    '--addr',
    SHAPED_CLIENT[0],
    '--addr',
    SHAPED_CLIENT[1],
    '--mptcp',
    ...extra,
  ]);
  return finish(client, server, seconds, `ours → ${peer}`);
}
