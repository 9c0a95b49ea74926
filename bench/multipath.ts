/**
 * The kernel's simult_flows.sh matrix over the deterministic two-path simulator
 * (test/support/multipath-sim.ts): our client and server stacks, our default (lowest-RTT
 * scheduler, coupled OLIA), 16 MiB one way and 80 KiB the other at once, SHA-256 checked.
 * Each figure is simulated ms until both ends hold everything, beside simult_flows.sh's pass
 * limit (size·8·10/(9·(r1+r2)) ms + 450 ms); the ratio below 1.00x is a pass. Simulated time
 * does not depend on the machine: the figures are exact for a given commit.
 * 'direct' is the script's topology (one subflow per path); 'lb' the load-balancer one (C flag
 * on the VIP, joins to the announced unique address: two subflows on path 0, one on path 1).
 * Paths queue 1000 packets as netem does by default; the last rows use 100-packet queues.
 * `--quick` runs 2 MiB transfers (the limit scales with the size).
 */
import {
  runSimultCase,
  SIMULT_FLOWS_CASES,
  SIMULT_LARGE,
  type SimultCaseResult,
} from '../test/support/multipath-sim.js';
import type { BenchOptions, BenchRow } from './harness.js';
import { coupledCcRows } from './multipath-cc.js';
import { schedulerRows } from './multipath-sched.js';

function row(r: SimultCaseResult): BenchRow {
  const sender = r.direction === 'upload' ? 'client' : 'server';
  const extra: Record<string, number | string> = {
    pass: r.elapsedMs <= r.limitMs ? 'yes' : 'no',
    shaEqual: r.shaEqual ? 'yes' : 'no',
    reinjectedBytes: r.result.reinjectedBytes[sender],
  };
  for (const s of r.result.subflows) {
    if (s.side !== sender) continue;
    const key = `path${s.path}.${s.role}.${s.remote.split(':')[0]}`;
    extra[`${key}.bytesSent`] = s.bytesSent;
    extra[`${key}.bytesRetransmitted`] = s.bytesRetransmitted;
    if (s.srttMs !== undefined) extra[`${key}.srttMs`] = Math.round(s.srttMs * 10) / 10;
  }
  const receiverMib = r.result.mib[sender === 'client' ? 'server' : 'client'];
  extra.receiverOFOQueue = receiverMib.OFOQueue ?? 0;
  extra.receiverOFOQueueTail = receiverMib.OFOQueueTail ?? 0;
  for (const p of r.result.paths) extra[`path${p.path}.${p.dir}.queueDropped`] = p.queueDropped;
  return {
    suite: 'multipath',
    name: `${r.mode}${r.queuePackets === 1000 ? '' : ` q${r.queuePackets}`} ${r.case} (${r.direction})`,
    value: Math.round(r.elapsedMs),
    unit: 'sim ms',
    baseline: { name: 'simult_flows limit', value: r.limitMs },
    extra,
  };
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const size = opts.quick ? SIMULT_LARGE / 8 : SIMULT_LARGE;
  const rows: BenchRow[] = [];
  for (const mode of ['direct', 'lb'] as const) {
    for (const c of SIMULT_FLOWS_CASES) {
      for (const direction of ['upload', 'download'] as const) {
        const r = await runSimultCase(c, direction, { mode, size });
        if (!r.shaEqual) throw new Error(`multipath bench: ${c.name} ${direction}: SHA-256 differs`);
        rows.push(row(r));
      }
    }
  }
  // The same upload matrix with 100-packet queues: what netem's 1000-packet queue costs us
  // (slow start overshooting into a queue of seconds, then recovery and data-level HoL).
  for (const c of SIMULT_FLOWS_CASES) {
    const r = await runSimultCase(c, 'upload', { size, queuePackets: 100 });
    if (!r.shaEqual) throw new Error(`multipath bench: ${c.name} q100: SHA-256 differs`);
    rows.push(row(r));
  }
  // Coupled congestion control: the shared bottleneck's shares, heterogeneous paths' goodput.
  rows.push(...(await coupledCcRows(opts)));
  rows.push(...(await schedulerRows(opts)));
  return rows;
}
