/**
 * What the namespace failover tests share (mptcp-failover.test.ts, mptcp-backup-netns.test.ts,
 * mptcp-failover-kernel.test.ts): starting our stack's peer (mptcp-user-peer.ts with its failover
 * options, see its docstring for the lines it prints), reading its `tick`, `gap`, `result` and
 * `done` lines for connection 0, tbf on both ends of both paths, and taking a path's link down
 * and up again.
 */
import { fileURLToPath } from 'node:url';
import type { TwoPathLab } from './mptcp-lab.js';
import type { UserDone, UserResult } from './mptcp-user-lab.js';
import type { NetnsLab } from './netns.js';
import { type Run, start } from './perf-lab.js';

export const USER_PEER = fileURLToPath(new URL('./mptcp-user-peer.ts', import.meta.url));

export interface TickSubflow {
  id: number;
  local: string;
  remote: string;
  est: boolean;
  backup: boolean;
  sent: number;
  acked: number;
  rx: number;
}

export interface Tick {
  at: number;
  subflows: TickSubflow[];
  pm: Record<string, number>;
}

/**
 * Our stack as a peer in `ns` with the failover options: stdin control, a tick every 100 ms, and
 * the gaps a server sees. A server runs without C flag.
 */
export function failoverPeer(lab: NetnsLab, ns: string, role: 'client' | 'server', args: string[]): Run {
  return start(lab, ns, process.execPath, [
    '--import',
    'tsx',
    USER_PEER,
    role,
    '--control',
    ...['--tick', '100'],
    ...(role === 'server' ? ['--gaps', '--no-cflag'] : []),
    ...args,
  ]);
}

export function ticks(run: Run): Tick[] {
  return [...run.stdout().matchAll(/^tick 0 (\d+) (.*)$/gm)].map((m) => ({
    at: Number(m[1]),
    ...(JSON.parse(m[2]!) as Omit<Tick, 'at'>),
  }));
}

/** The last tick before `t` (wall clock), if any. */
export function tickBefore(run: Run, t: number): Tick | undefined {
  return ticks(run)
    .filter((k) => k.at < t)
    .at(-1);
}

/**
 * The first tick at or after `from` that satisfies `ok`. The peer prints a tick every 100 ms and
 * no event says when the one we want comes, so its output is looked at every 50 ms.
 */
export async function tickWhere(
  run: Run,
  from: number,
  ok: (t: Tick) => boolean,
  timeoutMs: number,
): Promise<Tick> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const t = ticks(run).find((k) => k.at >= from && ok(k));
    if (t !== undefined) return t;
    if (Date.now() > until || run.child.exitCode !== null) {
      throw new Error(`no such tick within ${timeoutMs} ms:\n${run.stdout().slice(-3000)}\n${run.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Each `gap 0 MS END` line (a gap of 50 ms or more in delivered bytes, END = Date.now()). */
export function gaps(run: Run): { ms: number; end: number }[] {
  return [...run.stdout().matchAll(/^gap 0 (\d+) (\d+)$/gm)].map((g) => ({
    ms: Number(g[1]),
    end: Number(g[2]),
  }));
}

/** Connection 0's `result` line: what it received, and the largest gap (waits for it). */
export async function result0(
  run: Run,
  timeoutMs: number,
): Promise<{ bytes: number; sha256: string; maxGapMs: number; gapEndAt: number }> {
  const m = await run.waitFor(/^result 0 (.*)\n/m, timeoutMs);
  const r = JSON.parse(m[1]!) as UserResult;
  return { ...r.received, maxGapMs: r.maxGapMs, gapEndAt: r.gapEndAt };
}

/** The largest gap that ended in [from, to]: the stall a failure caused. */
export function stallBetween(run: Run, from: number, to: number): number {
  return Math.max(
    0,
    ...gaps(run)
      .filter((g) => g.end >= from && g.end <= to)
      .map((g) => g.ms),
  );
}

/** `done {JSON}`: the stack's non-zero MPTCP counters. */
export function doneCounters(run: Run): Record<string, number> {
  const m = /^done (.*)$/m.exec(run.stdout());
  return m === null ? {} : ((JSON.parse(m[1]!) as UserDone).mptcp ?? {});
}

/** tbf on both ends of both paths (qdiscs go with the namespaces). */
export function shapePaths(lab: NetnsLab, t: TwoPathLab, rate: string): void {
  for (const ns of [t.cli, t.srv]) {
    for (const p of t.paths) {
      lab.exec(
        ns,
        'tc',
        'qdisc',
        'add',
        'dev',
        p.cli.dev,
        'root',
        'tbf',
        'rate',
        rate,
        'burst',
        '32kb',
        'latency',
        '20ms',
      );
    }
  }
}

/** Words of `ip route` to put back after a link's `up` (down removed every route over it). */
export type RouteArgs = string[];

/** Path k's link in `ns` down; returns Date.now() right after. */
export function linkDown(lab: NetnsLab, ns: string, dev: string): number {
  lab.exec(ns, 'ip', 'link', 'set', dev, 'down');
  return Date.now();
}

/** The link up again and the routes over it restored; returns Date.now() right after. */
export function linkUp(lab: NetnsLab, ns: string, dev: string, routes: RouteArgs[]): number {
  lab.exec(ns, 'ip', 'link', 'set', dev, 'up');
  for (const r of routes) lab.exec(ns, 'ip', 'route', 'replace', ...r);
  return Date.now();
}
