/**
 * Benchmark plumbing shared by every bench/*.ts module. A module exports
 * `run(opts): Promise<BenchRow[]>`; bench/run.ts prints all rows as one table and, with --json,
 * as JSON. Every figure should stand next to a baseline measured in the same run: set
 * `baseline` to the baseline's value and the table shows the ratio.
 */
export interface BenchRow {
  /** Group, e.g. 'codec' or 'tun'. */
  suite: string;
  /** What was measured, e.g. 'forward 1500 B packets (mptun)'. */
  name: string;
  value: number;
  unit: string;
  /** The same quantity for the reference implementation, measured in the same run. */
  baseline?: { name: string; value: number };
  /** Anything else worth keeping in the JSON (packets, seconds, CPU time...). */
  extra?: Record<string, number | string>;
}

export interface BenchOptions {
  /** Shorter runs, for a smoke test of the benchmark code itself. */
  quick: boolean;
}

export type BenchModule = { run(opts: BenchOptions): Promise<BenchRow[]> };

/** Formats rows as an aligned text table. */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['suite', 'benchmark', 'value', 'unit', 'baseline', 'baseline value', 'ratio'];
  const body = rows.map((r) => [
    r.suite,
    r.name,
    formatNumber(r.value),
    r.unit,
    r.baseline?.name ?? '',
    r.baseline ? formatNumber(r.baseline.value) : '',
    r.baseline && r.baseline.value !== 0 ? `${(r.value / r.baseline.value).toFixed(2)}x` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function formatNumber(n: number): string {
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}
