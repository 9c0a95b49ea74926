/** iperf3's text output: adaptive units, interval lines, the summary's sender/receiver lines. */

/** Bytes with binary prefixes, iperf3 style: "634 MBytes", "1.85 GBytes". */
export function formatBytes(n: number): string {
  return adaptive(n, 1024, ['Bytes', 'KBytes', 'MBytes', 'GBytes', 'TBytes']);
}

/** Bits per second with decimal prefixes: "5.32 Gbits/sec". */
export function formatRate(bitsPerSecond: number): string {
  return adaptive(bitsPerSecond, 1000, ['bits/sec', 'Kbits/sec', 'Mbits/sec', 'Gbits/sec', 'Tbits/sec']);
}

function adaptive(n: number, base: number, units: readonly string[]): string {
  let v = n;
  let i = 0;
  while (v >= base && i < units.length - 1) {
    v /= base;
    i++;
  }
  // iperf3's precision: two decimals under 10, one under 100, none above.
  const text = v < 9.995 ? v.toFixed(2) : v < 99.95 ? v.toFixed(1) : v.toFixed(0);
  return `${text.padStart(4)} ${units[i]}`;
}

export const SEPARATOR = '- - - - - - - - - - - - - - - - - - - - - - - - -';

export function streamLabel(id: number | 'SUM'): string {
  return id === 'SUM' ? '[SUM]' : `[${String(id).padStart(3)}]`;
}

export interface LineFields {
  id: number | 'SUM';
  start: number;
  end: number;
  bytes: number;
  seconds: number;
  /** Shown in the Retr column when defined. */
  retransmits?: number;
  /** 'sender' / 'receiver' on summary lines. */
  role?: string;
  /** Congestion window (bytes) on a sender's interval line. */
  cwnd?: number;
}

/** One line like iperf3's: `[  5]   0.00-1.00   sec   634 MBytes  5.32 Gbits/sec    0   sender`. */
export function formatLine(f: LineFields): string {
  const interval = `${f.start.toFixed(2).padStart(6)}-${f.end.toFixed(2).padEnd(6)}`;
  const rate = f.seconds > 0 ? (f.bytes * 8) / f.seconds : 0;
  const retr = f.retransmits === undefined ? ''.padStart(5) : String(f.retransmits).padStart(5);
  const base = `${streamLabel(f.id)} ${interval} sec  ${formatBytes(f.bytes).padStart(11)}  ${formatRate(rate).padStart(15)}`;
  if (f.role !== undefined) return `${base} ${retr}             ${f.role}`;
  if (f.cwnd !== undefined) return `${base} ${retr}  ${formatBytes(f.cwnd).padStart(11)}`;
  if (f.retransmits !== undefined) return `${base} ${retr}`;
  return base;
}

/** iperf3's interval header for a sender that knows its TCP state. */
export function senderIntervalHeader(): string {
  return '[ ID] Interval           Transfer     Bitrate         Retr  Cwnd';
}

export function intervalHeader(): string {
  return '[ ID] Interval           Transfer     Bitrate';
}

export function summaryHeader(): string {
  return '[ ID] Interval           Transfer     Bitrate         Retr';
}

/** Lines no longer than this in the counter block (continuations are indented under the first). */
const COUNTER_LINE_WIDTH = 100;

/**
 * A compact block of named counters, one group a line (wrapped), e.g.
 * `  tcp: segmentsIn 41234, segmentsOut 20617, delayedAcks 3`; groups with nothing are left out.
 */
export function formatCounterBlock(
  title: string,
  groups: readonly (readonly [label: string, counters: Readonly<Record<string, number>>])[],
): string[] {
  const lines = [title];
  const shown = groups.filter(([, counters]) => Object.keys(counters).length > 0);
  const labelWidth = Math.max(0, ...shown.map(([label]) => label.length)) + 1;
  for (const [label, counters] of shown) {
    const items = Object.entries(counters).map(([name, n]) => `${name} ${n}`);
    const indent = ' '.repeat(2 + labelWidth + 1);
    let line = `  ${`${label}:`.padEnd(labelWidth)} `;
    let first = true;
    for (const [i, item] of items.entries()) {
      const piece = i < items.length - 1 ? `${item},` : item;
      if (!first && line.length + 1 + piece.length > COUNTER_LINE_WIDTH) {
        lines.push(line);
        line = indent + piece;
      } else {
        line += first ? piece : ` ${piece}`;
      }
      first = false;
    }
    lines.push(line);
  }
  return lines;
}
