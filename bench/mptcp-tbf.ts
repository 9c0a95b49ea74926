/**
 * Issue 7's namespace bar: two tbf-shaped paths (test/support/shaped-paths.ts), all CUBIC, same
 * run: one plain kernel TCP flow over one path (the unit), kernel MPTCP over both (mptcpize
 * iperf3), our client → our server and our client → the kernel's MPTCP server. The issue asks
 * ours ≥ 1.95x the plain flow and ≥ kernel MPTCP. Each figure is the better of `repeats` runs.
 * Needs root.
 */
import { NetnsLab } from '../test/support/netns.js';
import { type Goodput, kernelGoodput, oursGoodput, shapedPaths } from '../test/support/shaped-paths.js';
import type { BenchOptions, BenchRow } from './harness.js';

const SUITE = 'mptcp-tbf';
const RATE_MBIT = 50;

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the shaped MPTCP benchmark needs root (namespaces and TUNs)');
  const seconds = opts.quick ? 2 : 8;
  const repeats = opts.quick ? 1 : 2;
  const lab = new NetnsLab();
  try {
    const t = shapedPaths(lab, `${RATE_MBIT}mbit`);
    const runs: Record<'plain' | 'kernel' | 'ours' | 'oursKernel', Goodput[]> = {
      plain: [],
      kernel: [],
      ours: [],
      oursKernel: [],
    };
    for (let r = 0; r < repeats; r++) {
      runs.plain.push(await kernelGoodput(lab, t, seconds, false));
      runs.kernel.push(await kernelGoodput(lab, t, seconds, true));
      runs.ours.push(await oursGoodput(lab, t, seconds, 'ours'));
      runs.oursKernel.push(await oursGoodput(lab, t, seconds, 'kernel'));
    }
    const best = (k: keyof typeof runs) => Math.max(...runs[k].map((g) => g.mbps));
    const list = (k: keyof typeof runs) => runs[k].map((g) => g.mbps.toFixed(1)).join(' ');
    const plain = best('plain');
    const kernel = best('kernel');
    const row = (name: string, k: keyof typeof runs): BenchRow => ({
      suite: SUITE,
      name,
      value: best(k),
      unit: 'Mbit/s',
      baseline: { name: 'kernel MPTCP (mptcpize iperf3), same paths', value: kernel },
      extra: {
        seconds,
        runsMbps: list(k),
        timesPlainTcp: Number((best(k) / plain).toFixed(3)),
        // The table rounds the ratio to 1.00x; the bar is ≥ 1 on the third decimal.
        timesKernel: Number((best(k) / kernel).toFixed(4)),
      },
    });
    return [
      {
        suite: SUITE,
        name: `plain kernel TCP, one ${RATE_MBIT} Mbit/s path`,
        value: plain,
        unit: 'Mbit/s',
        extra: { seconds, runsMbps: list('plain') },
      },
      {
        suite: SUITE,
        name: `kernel MPTCP, two ${RATE_MBIT} Mbit/s paths`,
        value: kernel,
        unit: 'Mbit/s',
        baseline: { name: 'plain kernel TCP, one path', value: plain },
        extra: { seconds, runsMbps: list('kernel'), timesPlainTcp: Number((kernel / plain).toFixed(3)) },
      },
      row(`ours → ours, two ${RATE_MBIT} Mbit/s paths`, 'ours'),
      row(`ours → kernel MPTCP server, two ${RATE_MBIT} Mbit/s paths`, 'oursKernel'),
    ];
  } finally {
    await lab.cleanup();
  }
}
