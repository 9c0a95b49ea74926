/**
 * Per-scheduler figures over the deterministic two-path simulator (test/support/sched-sim.ts),
 * issue 7's must-shows 2 and 6 as bench rows:
 * - goodput (Mbit/s of simulated time) of each scheduler with 10 ms beside 200 ms RTT and a clean
 *   path beside a 2%-loss one, each beside the better path alone (RFC 6356 goal 1: ratio >= 1);
 * - the 99th-percentile latency of 200-byte echoes with 5% loss on both paths, each scheduler
 *   beside lowest-rtt (redundant's ratio below 1 is the point of it).
 * Simulated time: exact for a given commit. `--quick`: 2 MiB transfers and 300 messages.
 * Rows carry suite 'multipath'; bench/multipath.ts's run() can append `await schedulerRows(opts)`,
 * or bench/run.ts can list this module as a suite of its own (it exports `run`).
 */
import { type SchedulerFigure, schedulerFigures } from '../test/support/sched-sim.js';
import type { BenchOptions, BenchRow } from './harness.js';

export async function schedulerRows(opts: BenchOptions): Promise<BenchRow[]> {
  const figures = await schedulerFigures(
    opts.quick ? { size: 2 << 20, messages: 300 } : { size: 8 << 20, messages: 1000 },
  );
  for (const f of figures)
    if (!f.shaEqual) throw new Error(`multipath-sched bench: ${f.case}, ${f.scheduler}: SHA-256 differs`);
  const rows: BenchRow[] = [];
  const alone = new Map<string, SchedulerFigure>();
  for (const f of figures) if (f.scheduler === 'better path alone') alone.set(f.case, f);
  const lowestP99 = figures.find((f) => f.p99Ms !== undefined && f.scheduler === 'lowest-rtt')?.p99Ms;
  for (const f of figures) {
    if (f.goodputMbit !== undefined && f.scheduler !== 'better path alone') {
      const base = alone.get(f.case);
      rows.push({
        suite: 'multipath',
        name: `scheduler ${f.scheduler}: ${f.case} (goodput)`,
        value: Math.round(f.goodputMbit * 100) / 100,
        unit: 'Mbit/s sim',
        ...(base?.goodputMbit === undefined
          ? {}
          : { baseline: { name: 'better path alone', value: Math.round(base.goodputMbit * 100) / 100 } }),
        extra: { elapsedMs: Math.round(f.elapsedMs ?? 0) },
      });
    }
    if (f.p99Ms !== undefined) {
      rows.push({
        suite: 'multipath',
        name: `scheduler ${f.scheduler}: ${f.case} (p99 latency)`,
        value: Math.round(f.p99Ms * 10) / 10,
        unit: 'sim ms',
        ...(lowestP99 === undefined
          ? {}
          : { baseline: { name: 'lowest-rtt p99', value: Math.round(lowestP99 * 10) / 10 } }),
        extra: { p50Ms: Math.round((f.p50Ms ?? 0) * 10) / 10 },
      });
    }
  }
  return rows;
}

export const run = schedulerRows;
