/**
 * What the demo measured, read from its processes' output (stock iperf3's -J documents, the
 * mptun servers' JSON log lines), and the table and chart it shows. Pure: checked without root.
 */
import { formatBytes, formatRate } from '../perf/format.js';
import { escapeXml, type PlotData, type PlotSeries, renderSvg } from '../perf/plot.js';

type Json = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export interface IperfInterval {
  start: number;
  end: number;
  bitsPerSecond: number;
}

/** One stock `iperf3 -c -J` run. */
export interface IperfResult {
  /** Exit code 0 and no `error` in the document. */
  ok: boolean;
  error?: string;
  /** What the receiver got (end.sum_received), or the intervals' total when it never ended. */
  bytes: number;
  seconds: number;
  bitsPerSecond: number;
  intervals: IperfInterval[];
  /** When the demo started the iperf3 process (epoch ms): lines the client's stats up with it. */
  startedAtMs?: number;
}

/** One 'connection stats' line of `mptun client --stats-interval`: bytes per subflow. */
export interface ClientStatsSample {
  timeMs: number;
  conn: number;
  subflows: { id: number; path: string; acked: number; received: number }[];
}

/** The client's 'connection stats' lines (pino JSON on stderr); other lines are skipped. */
export function parseClientStats(stderr: string): ClientStatsSample[] {
  const out: ClientStatsSample[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.includes('"connection stats"')) continue;
    let rec: Json;
    try {
      rec = JSON.parse(line) as Json;
    } catch {
      continue; // a line cut short when the process was stopped: nothing to plot from it
    }
    if (rec['msg'] !== 'connection stats' || !Array.isArray(rec['subflows'])) continue;
    out.push({
      timeMs: num(rec['time']),
      conn: num(rec['conn']),
      subflows: (rec['subflows'] as Json[]).map((f) => ({
        id: num(f['id']),
        path: String(f['path'] ?? '?'),
        acked: num(f['acked']),
        received: num(f['received']),
      })),
    });
  }
  return out;
}

/**
 * Upload throughput per subflow during `run` (its seconds from `run.startedAtMs`), from the
 * client's samples: the connections that carried at least 1% of the run's bytes (not iperf3's
 * control connection). Chart time is the run's own.
 */
export function subflowSeries(samples: readonly ClientStatsSample[], run: IperfResult): PlotSeries[] {
  if (run.startedAtMs === undefined) return [];
  const from = run.startedAtMs;
  const to = from + (run.seconds + 2) * 1000;
  const bySubflow = new Map<
    string,
    { label: string; last?: { t: number; bytes: number }; series: PlotSeries; bytes: number }
  >();
  for (const s of samples) {
    if (s.timeMs < from || s.timeMs > to) continue;
    for (const f of s.subflows) {
      const key = `${s.conn}/${f.id}`;
      let e = bySubflow.get(key);
      if (e === undefined) {
        const label = `subflow ${f.path}`;
        e = { label, series: { kind: 'subflow', label, points: [] }, bytes: 0 };
        bySubflow.set(key, e);
      }
      const t = (s.timeMs - from) / 1000;
      if (e.last !== undefined && t > e.last.t) {
        const sent = Math.max(0, f.acked - e.last.bytes);
        e.series.points.push({ start: e.last.t, end: t, bitsPerSecond: (sent * 8) / (t - e.last.t) });
        e.bytes += sent;
      }
      e.last = { t, bytes: f.acked };
    }
  }
  const floor = run.bytes / 100;
  return [...bySubflow.values()]
    .filter((e) => e.bytes > floor && e.series.points.length > 0)
    .map((e) => e.series);
}

/** Reads iperf3's -J output; an unreadable document is a failed run that says why. */
export function parseIperf(stdout: string, exitCode: number | null): IperfResult {
  let doc: Json;
  try {
    doc = JSON.parse(stdout) as Json;
  } catch {
    // Not JSON at all (iperf3 died early): the run failed, with its text as the reason.
    const text = stdout.trim().split('\n').slice(-2).join(' ').slice(0, 200);
    return {
      ok: false,
      error: `iperf3 printed no JSON report (exit ${exitCode})${text ? `: ${text}` : ''}`,
      bytes: 0,
      seconds: 0,
      bitsPerSecond: 0,
      intervals: [],
    };
  }
  const intervals = (Array.isArray(doc['intervals']) ? (doc['intervals'] as Json[]) : []).map((iv) => {
    const sum = (iv['sum'] ?? {}) as Json;
    return { start: num(sum['start']), end: num(sum['end']), bitsPerSecond: num(sum['bits_per_second']) };
  });
  const end = (doc['end'] ?? {}) as Json;
  const recv = (end['sum_received'] ?? {}) as Json;
  const error = typeof doc['error'] === 'string' ? doc['error'] : undefined;
  const seconds = num(recv['seconds']);
  const fromIntervals = intervals.reduce((n, iv) => n + (iv.bitsPerSecond * (iv.end - iv.start)) / 8, 0);
  const bytes = num(recv['bytes']) || fromIntervals;
  const lastEnd = intervals.at(-1)?.end ?? 0;
  return {
    ok: exitCode === 0 && error === undefined,
    ...(error === undefined ? {} : { error }),
    bytes,
    seconds: seconds || lastEnd,
    bitsPerSecond: num(recv['bits_per_second']) || (lastEnd > 0 ? (fromIntervals * 8) / lastEnd : 0),
    intervals,
  };
}

/** One connection as an mptun server logged it. */
export interface ServerConnection {
  conn: number;
  client: string;
  proto: string;
  up?: number;
  down?: number;
  /** Set once it closed: 'ok' or the error. */
  result?: string;
  /** Each subflow's `local > remote` (from the debug 'subflow' lines at close). */
  subflows: string[];
}

export interface ServerLog {
  connections: ServerConnection[];
  /** The MPTCP MIB from 'server: stopped' (non-zero counters). */
  mib?: Record<string, number>;
}

/** Reads an mptun server's JSON log lines (stderr); other lines are ignored. */
export function parseServerLog(text: string): ServerLog {
  const byConn = new Map<number, ServerConnection>();
  let mib: Record<string, number> | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec: Json;
    try {
      rec = JSON.parse(line) as Json;
    } catch {
      // A log line cut by the process's end: nothing to learn from it.
      continue;
    }
    const msg = rec['msg'];
    if (msg === 'server: stopped') {
      mib = rec['mptcpMib'] as Record<string, number> | undefined;
      continue;
    }
    if (typeof rec['conn'] !== 'number') continue;
    const id = rec['conn'];
    let c = byConn.get(id);
    if (c === undefined) {
      c = { conn: id, client: '', proto: '', subflows: [] };
      byConn.set(id, c);
    }
    if (msg === 'connection accepted') {
      c.client = String(rec['client'] ?? '');
      c.proto = String(rec['proto'] ?? '');
    } else if (msg === 'subflow') {
      c.subflows.push(`${String(rec['remote'] ?? '?')} > ${String(rec['local'] ?? '?')}`);
    } else if (msg === 'connection closed' || msg === 'connection failed') {
      c.up = num(rec['up']);
      c.down = num(rec['down']);
      c.result = msg === 'connection closed' ? 'ok' : String(rec['err'] ?? 'failed');
    }
  }
  return { connections: [...byConn.values()], ...(mib === undefined ? {} : { mib }) };
}

export interface FlipResult {
  /** The site the VIP was routed to. */
  site: string;
  /** Seconds into the transfers when the route flipped. */
  atSec: number;
  plain: IperfResult;
  mptun: IperfResult;
  /** Where the plain TCP data connection was before the flip. */
  plainSite: string | undefined;
}

export interface DemoResult {
  prefix: string;
  rates: [string, string];
  seconds: number;
  baseline: IperfResult;
  /** The mptun run, or why it could not run. */
  mptun: IperfResult | { unavailable: string };
  servers: { name: string; log: ServerLog }[];
  flip?: FlipResult | { unavailable: string };
  /** `mptun client --stats-interval` samples: the chart's line per subflow. */
  clientStats?: ClientStatsSample[];
  plot?: string;
}

function rate(r: IperfResult): string {
  return formatRate(r.bitsPerSecond).trim();
}

function outcome(r: IperfResult): string {
  return r.ok
    ? `completed, ${formatBytes(r.bytes).trim()} in ${r.seconds.toFixed(1)} s (${rate(r)})`
    : `FAILED after ${r.seconds.toFixed(1)} s, ${formatBytes(r.bytes).trim()} carried: ${r.error ?? 'no report'}`;
}

/** The demo's table, as lines. */
export function formatDemo(d: DemoResult): string[] {
  const lines: string[] = [];
  lines.push(
    '',
    `mptun demo: testbed '${d.prefix}', paths p1 ${d.rates[0]} and p2 ${d.rates[1]}, stateless ECMP load balancer, mptun servers s1 and s2, iperf3 -s on app`,
    '',
    `  transfer (stock iperf3 -c VIP, ${d.seconds} s)                      paths  throughput        vs TCP`,
  );
  const base = d.baseline.bitsPerSecond;
  const row = (name: string, paths: number, r: IperfResult) => {
    const ratio = base > 0 ? `${(r.bitsPerSecond / base).toFixed(2)}x` : '-';
    const shown = r.ok ? rate(r) : `failed: ${r.error ?? 'no report'}`;
    lines.push(
      `  ${name.padEnd(57)} ${String(paths).padStart(5)}  ${shown.padEnd(16)}  ${ratio.padStart(6)}`,
    );
  };
  row('single-path TCP (bound to p1, no mptun client)', 1, d.baseline);
  if ('unavailable' in d.mptun)
    lines.push(`  mptun client over p1 + p2: not available: ${d.mptun.unavailable}`);
  else row('mptun client -> lb -> mptun server (MPTCP over p1 + p2)', 2, d.mptun);
  lines.push('', '  server  connection  proto     client                 result  subflows (client > server)');
  for (const s of d.servers) {
    if (s.log.connections.length === 0) lines.push(`  ${s.name.padEnd(6)}  (no connections)`);
    for (const c of s.log.connections) {
      const sfs = c.subflows.length > 0 ? c.subflows.join(', ') : '-';
      lines.push(
        `  ${s.name.padEnd(6)}  ${String(c.conn).padStart(10)}  ${c.proto.padEnd(8)}  ${c.client.padEnd(21)}  ${(c.result === 'ok' ? 'ok' : c.result === undefined ? 'open' : 'failed').padEnd(6)}  ${sfs}${c.result !== undefined && c.result !== 'ok' ? ` (${c.result})` : ''}`,
      );
    }
  }
  const joins = d.servers.map(
    (s) =>
      `${s.name}: ${num(s.log.mib?.['MPJoinAckRx'])} joins accepted, ${num(s.log.mib?.['MPJoinNoTokenFound'])} joins for unknown tokens`,
  );
  lines.push(`  MPTCP MIB: ${joins.join('; ')}`);
  if (d.flip !== undefined) {
    lines.push('');
    if ('unavailable' in d.flip) lines.push(`  anycast flip: not available: ${d.flip.unavailable}`);
    else {
      const f = d.flip;
      lines.push(
        `  anycast flip at ${f.atSec.toFixed(1)} s: the VIP routed to ${f.site} only (plain TCP's data connection was on ${f.plainSite ?? 'an unknown site'})`,
        `    plain TCP (p1):        ${outcome(f.plain)}`,
        `    mptun (p1 + p2):       ${outcome(f.mptun)}`,
      );
    }
  }
  if (d.plot !== undefined) lines.push('', `  plot: ${d.plot}`);
  lines.push('');
  return lines;
}

function series(label: string, r: IperfResult, offset = 0): PlotSeries {
  return {
    kind: 'subflow',
    label,
    points: r.intervals.map((iv) => ({
      start: iv.start + offset,
      end: iv.end + offset,
      bitsPerSecond: iv.bitsPerSecond,
    })),
  };
}

/** The demo's chart page: throughput over time of each run, and of both transfers across the flip. */
export function demoHtml(d: DemoResult): string {
  const charts: PlotData[] = [];
  const stats = d.clientStats ?? [];
  const measure: PlotSeries[] = [series('single-path TCP (p1)', d.baseline)];
  if (!('unavailable' in d.mptun))
    measure.push(series('mptun (p1 + p2)', d.mptun), ...subflowSeries(stats, d.mptun));
  charts.push({ title: `iperf3 through the testbed: ${d.rates[0]} + ${d.rates[1]}`, series: measure });
  if (d.flip !== undefined && !('unavailable' in d.flip)) {
    charts.push({
      title: `anycast flip to ${d.flip.site} at ${d.flip.atSec.toFixed(1)} s`,
      series: [
        series('plain TCP (p1)', d.flip.plain),
        series('mptun (p1 + p2)', d.flip.mptun),
        ...subflowSeries(stats, d.flip.mptun),
      ],
    });
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<title>mptun demo</title>',
    '<style>body{font-family:sans-serif;margin:1em}pre{background:#f6f6f6;padding:0.5em}</style>',
    '</head>',
    '<body>',
    '<h1>mptun demo</h1>',
    `<pre>${escapeXml(formatDemo({ ...d, plot: undefined } as DemoResult).join('\n'))}</pre>`,
    ...charts.map((c) => renderSvg(c, false)),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
