/**
 * Our userspace MPTCP in the kernel-MPTCP lab (mptcp-lab.ts): the plumbing that puts our stack
 * on a TUN in one host of the two-path topology, and a handle on the peer process that runs it
 * (mptcp-user-peer.ts, see its docstring for the line protocol).
 *
 * Address plan (besides the lab's 10.50.k.0/24 and fd50:k::/64 on the veths):
 *   our client in `cli`: path k address 10.51.k.1, fd51:k::1 — the TUN's; `cli` forwards, and a
 *     policy rule per address (`from <addr> lookup 20k`) sends it out on path k only (a
 *     blackhole behind the route, so a dead path does not leak onto the other one);
 *     `srv` routes 10.51.k.0/24 and fd51:k::/64 back over path k.
 *   our server in `srv`: path k address 10.52.k.2, fd52:k::2 — the TUN's; `srv` forwards;
 *     `cli` routes 10.52.k.2 and fd52:k::2 over path k.
 */
import { fileURLToPath } from 'node:url';
import type { MptcpInfo } from '../../src/stack/mptcp/connection.js';
import type { TwoPathLab } from './mptcp-lab.js';
import type { NetnsLab } from './netns.js';
import { type Run, start } from './perf-lab.js';

export const USER_PEER = fileURLToPath(new URL('./mptcp-user-peer.ts', import.meta.url));

export type Family = 'v4' | 'v6';

/** Our client's address on path k (1 or 2). */
export function userClientAddr(k: number, fam: Family): string {
  return fam === 'v4' ? `10.51.${k}.1` : `fd51:${k}::1`;
}

/** Our server's address on path k (1 or 2). */
export function userServerAddr(k: number, fam: Family): string {
  return fam === 'v4' ? `10.52.${k}.2` : `fd52:${k}::2`;
}

function sysctl(lab: NetnsLab, ns: string, ...settings: string[]): void {
  lab.exec(ns, 'sysctl', '-qw', ...settings);
}

/**
 * Routes for our client in `cli` (both families): forwarding on, each of our addresses leaves on
 * its own path (policy table 200+k), and `srv` reaches them back over that path. The TUN's own
 * routes (address → TUN) are the peer process's.
 */
export function plumbUserClient(lab: NetnsLab, t: TwoPathLab): void {
  sysctl(lab, t.cli, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
  for (const p of t.paths) {
    const table = String(200 + p.index);
    for (const fam of ['v4', 'v6'] as const) {
      const f = fam === 'v4' ? '-4' : '-6';
      const self = userClientAddr(p.index, fam);
      lab.exec(
        t.cli,
        'ip',
        f,
        'route',
        'add',
        'default',
        'via',
        p.far[fam],
        'dev',
        p.cli.dev,
        'table',
        table,
      );
      lab.exec(t.cli, 'ip', f, 'route', 'add', 'blackhole', 'default', 'metric', '4000', 'table', table);
      lab.exec(t.cli, 'ip', f, 'rule', 'add', 'from', self, 'lookup', table, 'priority', table);
      const net = fam === 'v4' ? `10.51.${p.index}.0/24` : `fd51:${p.index}::/64`;
      lab.exec(t.srv, 'ip', f, 'route', 'add', net, 'via', p.cli[fam], 'dev', p.far.dev);
    }
  }
}

/** Routes for our server in `srv`: forwarding on, `cli` reaches our path-k address over path k. */
export function plumbUserServer(lab: NetnsLab, t: TwoPathLab): void {
  sysctl(lab, t.srv, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
  for (const p of t.paths) {
    for (const fam of ['v4', 'v6'] as const) {
      const f = fam === 'v4' ? '-4' : '-6';
      lab.exec(
        t.cli,
        'ip',
        f,
        'route',
        'add',
        userServerAddr(p.index, fam),
        'via',
        p.far[fam],
        'dev',
        p.cli.dev,
      );
    }
  }
}

export interface UserPeerOptions {
  tun: string;
  addrs: string[];
  port: number;
  /** Client: where to connect and what to send. */
  host?: string;
  local?: string;
  bytes?: number;
  /** Server: bytes to send back, ADD_ADDR, C flag (on unless false), connections. */
  send?: number;
  announce?: string[];
  cFlag?: boolean;
  conns?: number;
  seed?: number;
  tcp?: boolean;
  checksum?: boolean;
  offload?: boolean;
  timeoutSec?: number;
  /** A `progress` line every so many bytes written or read (8 MiB by default). */
  progressEvery?: number;
}

export interface UserResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
  ms: number;
  /** The largest gap between two arrivals of new bytes (ms), and Date.now() when it ended. */
  maxGapMs: number;
  gapEndAt: number;
  atEof: MptcpInfo | undefined;
  atClose: MptcpInfo | undefined;
  state: string;
}

export interface UserDone {
  mptcp: Record<string, number> | undefined;
  stack: Record<string, number>;
  tcp: Record<string, number>;
  parseErrors: Record<string, number>;
}

export interface UserPeer {
  run: Run;
  /** Waits for the line `<step> [<index>] ...`; returns its words. */
  step(step: string, index?: number, timeoutMs?: number): Promise<string[]>;
  /** The `result` line of connection i (waits for it). */
  result(i: number, timeoutMs?: number): Promise<UserResult>;
  /** Waits for a clean exit and returns the `done` report; throws with the output otherwise. */
  done(timeoutMs?: number): Promise<UserDone>;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Starts our stack as a client or server in `ns` (resolves once a server listens). */
export async function startUserPeer(
  lab: NetnsLab,
  ns: string,
  role: 'client' | 'server',
  o: UserPeerOptions,
): Promise<UserPeer> {
  const args = ['--tun', o.tun, '--port', String(o.port), '--seed', String(o.seed ?? 0)];
  for (const a of o.addrs) args.push('--addr', a);
  if (o.host !== undefined) args.push('--host', o.host);
  if (o.local !== undefined) args.push('--local', o.local);
  if (o.bytes !== undefined) args.push('--bytes', String(o.bytes));
  if (o.send !== undefined) args.push('--send', String(o.send));
  for (const a of o.announce ?? []) args.push('--announce', a);
  if (o.cFlag === false) args.push('--no-cflag');
  if (o.conns !== undefined) args.push('--conns', String(o.conns));
  if (o.tcp) args.push('--tcp');
  if (o.checksum) args.push('--checksum');
  if (o.offload) args.push('--offload');
  args.push('--timeout', String(o.timeoutSec ?? 60));
  if (o.progressEvery !== undefined) args.push('--progress', String(o.progressEvery));
  const run = start(lab, ns, process.execPath, ['--import', 'tsx', USER_PEER, role, ...args]);
  const step = async (s: string, index?: number, timeoutMs = 30_000) => {
    const re = new RegExp(`^${escapeRe(s)}${index === undefined ? '' : ` ${index}`}(?: .*)?$`, 'm');
    const m = await run.waitFor(re, timeoutMs);
    return m[0].split(' ');
  };
  const peer: UserPeer = {
    run,
    step,
    async result(i, timeoutMs = 120_000) {
      const m = await run.waitFor(new RegExp(`^result ${i} (.*)$`, 'm'), timeoutMs);
      return JSON.parse(m[1]!) as UserResult;
    },
    async done(timeoutMs = 120_000) {
      const { code, signal } = await run.done(timeoutMs);
      if (code !== 0) {
        throw new Error(`our ${role} ended with ${code ?? signal}:\n${run.stdout()}\n${run.stderr()}`);
      }
      const m = /^done (.*)$/m.exec(run.stdout());
      if (!m) throw new Error(`our ${role} printed no done line:\n${run.stdout()}\n${run.stderr()}`);
      return JSON.parse(m[1]!) as UserDone;
    },
  };
  await step('up', undefined, 20_000);
  if (role === 'server') await step('listening');
  return peer;
}
