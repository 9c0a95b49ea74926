/**
 * Coupled congestion control figures for the multipath suite (bench/multipath.ts appends them):
 * - RFC 6356 goal 2 (issue 7 must-show 3): one 50 Mbit/s bottleneck shared by an MPTCP
 *   connection with two subflows and one plain TCP flow (test/support/shared-bottleneck.ts:
 *   20 ms RTT, one BDP of drop-tail queue, 0.1% seeded loss); the MPTCP connection's share of the
 *   goodput for each congestion control, against a NewReno and a CUBIC flow. A coupled
 *   controller should take about half (0.4-0.6); uncoupled subflows take about two thirds.
 * - RFC 6356 goal 1 (must-show 2): the heterogeneous cases of test/support/sched-sim.ts (10 ms
 *   vs 200 ms RTT; 2% loss vs clean), bulk goodput with each congestion control (lowest-RTT
 *   scheduler) beside the better path alone.
 * Simulated time: the figures are exact for a given commit. `--quick`: shorter runs.
 */
import { bulkGoodput, HETEROGENEOUS_CASES } from '../test/support/sched-sim.js';
import { sharedBottleneckFigures } from '../test/support/shared-bottleneck.js';
import type { BenchOptions, BenchRow } from './harness.js';

const CONTROLLERS = ['lia', 'olia', 'balia', 'cubic', 'newreno'] as const;

export async function coupledCcRows(opts: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const r of await sharedBottleneckFigures({ quick: opts.quick })) {
    rows.push({
      suite: 'multipath',
      name: `shared 50 Mbit/s bottleneck: MPTCP ${r.congestion} (2 subflows) vs one ${r.plainCongestion} flow, MPTCP share`,
      value: Math.round(r.share * 1000) / 1000,
      unit: 'share',
      baseline: { name: 'fair share', value: 0.5 },
      extra: {
        mptcpMbit: Math.round(r.mptcpMbit * 100) / 100,
        plainMbit: Math.round(r.plainMbit * 100) / 100,
        utilisation: Math.round(r.utilisation * 1000) / 1000,
        queueDropped: r.queueDropped,
      },
    });
  }
  const size = opts.quick ? 2 << 20 : 16 << 20;
  for (const c of HETEROGENEOUS_CASES) {
    const alone = await bulkGoodput({ paths: c.paths, scheduler: 'lowest-rtt', size, maxSubflows: 1 });
    for (const congestion of CONTROLLERS) {
      const r = await bulkGoodput({ paths: c.paths, scheduler: 'lowest-rtt', size, mptcp: { congestion } });
      if (!r.shaEqual) throw new Error(`multipath bench: ${c.name} ${congestion}: SHA-256 differs`);
      rows.push({
        suite: 'multipath',
        name: `${c.name}: goodput, congestion ${congestion} (lowest-rtt)`,
        value: Math.round(r.goodputMbit * 100) / 100,
        unit: 'Mbit/s',
        baseline: { name: 'better path alone', value: Math.round(alone.goodputMbit * 100) / 100 },
        extra: { path0Bytes: r.sentByPath[0], path1Bytes: r.sentByPath[1] },
      });
    }
  }
  return rows;
}
