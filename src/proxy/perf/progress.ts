/**
 * `mptun perf client` on a terminal: one status line rewritten in place at each interval
 * (elapsed time, bytes so far, the interval's rate, the subflows and their rates) instead of
 * iperf3's interval lines. Other lines (connect messages, the summary) still print normally:
 * the last status line stays above them.
 */
import { formatBytes, formatRate } from './format.js';

type Json = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** The status text for one interval report, given the bytes of every report so far. */
export function progressText(interval: Json, totalBytes: number): string {
  const sum = (interval['sum'] ?? {}) as Json;
  const parts = [
    `${num(sum['end']).toFixed(1).padStart(6)} s`,
    formatBytes(totalBytes).trim(),
    formatRate(num(sum['bits_per_second'])).trim(),
  ];
  const streams = Array.isArray(interval['streams']) ? (interval['streams'] as Json[]) : [];
  const subflows = streams.flatMap((s) => (s['mptcp'] as { subflows?: Json[] } | undefined)?.subflows ?? []);
  if (subflows.length > 0) {
    const each = subflows.map((sf) => `sf${num(sf['id'])} ${formatRate(num(sf['bits_per_second'])).trim()}`);
    parts.push(`${subflows.length} subflow${subflows.length === 1 ? '' : 's'}: ${each.join(', ')}`);
  }
  return parts.join('  ');
}

export class LiveProgress {
  private shown = false;
  private total = 0;

  /**
   * @param write raw output (no newline added), e.g. process.stdout.write
   * @param columns the terminal's width: the status line is cut to fit, so `\r` rewrites it whole
   */
  constructor(
    private readonly write: (text: string) => void,
    private readonly columns: () => number = () => 80,
  ) {}

  /** A normal line: the status line (if any) is kept and the line goes below it. */
  print(line: string): void {
    if (this.shown) this.write('\n');
    this.shown = false;
    this.write(`${line}\n`);
  }

  /** One interval report (the session's JSON object): rewrites the status line. */
  update(interval: Json): void {
    this.total += num(((interval['sum'] ?? {}) as Json)['bytes']);
    // A terminal that does not say its width (0 columns, as under `script`) gets 80.
    const columns = this.columns();
    const width = Math.max(20, (columns > 0 ? columns : 80) - 1);
    const text = progressText(interval, this.total);
    this.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    this.shown = true;
  }

  /** Ends the status line (a newline after it), e.g. before the process exits on an error. */
  finish(): void {
    if (this.shown) this.write('\n');
    this.shown = false;
  }
}
