/**
 * `mptun perf client --plot FILE`: a self-contained chart (SVG, or HTML holding the SVG and a
 * table) of throughput over time, one series per MPTCP subflow plus the total, built from the
 * interval reports the session records (the same objects `-J` prints under `intervals`). No
 * script, font or style is fetched from anywhere.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { InvalidArgumentError } from '../../errors.js';
import { formatRate } from './format.js';

/** One step of a series: the rate over [start, end] seconds of the test. */
export interface PlotPoint {
  start: number;
  end: number;
  bitsPerSecond: number;
}

export interface PlotSeries {
  /** 'total' for the sum over every stream; 'subflow' for one MPTCP subflow. */
  kind: 'total' | 'subflow';
  label: string;
  points: PlotPoint[];
}

export interface PlotData {
  title: string;
  series: PlotSeries[];
}

export type PlotFormat = 'svg' | 'html';

/** The format a file name asks for, or undefined for an extension we do not write. */
export function plotFormat(file: string): PlotFormat | undefined {
  const ext = extname(file).toLowerCase();
  if (ext === '.svg') return 'svg';
  if (ext === '.html' || ext === '.htm') return 'html';
  return undefined;
}

/** Why `--plot FILE` cannot be written, or undefined when it can. */
export function checkPlotFile(file: string): string | undefined {
  if (plotFormat(file) === undefined)
    return `--plot ${file}: the file name must end in .svg or .html (that picks the format)`;
  return undefined;
}

type Json = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Series from interval reports: the total from each interval's `sum`, and one series per
 * (stream, subflow id) from `streams[].mptcp.subflows` (a subflow's series starts in the first
 * interval that lists it and ends with the last). Plain TCP has the total only.
 */
export function seriesFromIntervals(intervals: readonly Json[]): PlotSeries[] {
  const total: PlotSeries = { kind: 'total', label: 'total', points: [] };
  const subflows = new Map<string, PlotSeries>();
  const manyStreams = intervals.some((iv) => Array.isArray(iv['streams']) && iv['streams'].length > 1);
  for (const iv of intervals) {
    const sum = (iv['sum'] ?? {}) as Json;
    const start = num(sum['start']);
    const end = num(sum['end']);
    total.points.push({ start, end, bitsPerSecond: num(sum['bits_per_second']) });
    const streams = Array.isArray(iv['streams']) ? (iv['streams'] as Json[]) : [];
    for (const s of streams) {
      const mp = s['mptcp'] as { subflows?: Json[] } | undefined;
      for (const sf of mp?.subflows ?? []) {
        const key = `${num(s['socket'])}/${num(sf['id'])}`;
        let series = subflows.get(key);
        if (series === undefined) {
          const stream = manyStreams ? `[${num(s['socket'])}] ` : '';
          series = {
            kind: 'subflow',
            label: `${stream}sf${num(sf['id'])} ${String(sf['role'] ?? '')} ${String(sf['local'] ?? '')} > ${String(sf['remote'] ?? '')}`,
            points: [],
          };
          subflows.set(key, series);
        }
        series.points.push({ start, end, bitsPerSecond: num(sf['bits_per_second']) });
      }
    }
  }
  return [total, ...subflows.values()];
}

/** Distinct colours for subflows (the total is drawn in black, thicker). */
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A "nice" axis step (1, 2 or 5 times a power of ten) giving about `ticks` divisions of `max`. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const W = 900;
const H = 460;
const M = { left: 80, right: 20, top: 40, bottom: 50 };

/** The chart as an SVG document (with the XML declaration when `standalone`). */
export function renderSvg(data: PlotData, standalone = true): string {
  const all = data.series.flatMap((s) => s.points);
  const tMax = Math.max(1e-3, ...all.map((p) => p.end));
  const yMaxRaw = Math.max(1, ...all.map((p) => p.bitsPerSecond));
  const yStep = niceStep(yMaxRaw, 5);
  const yMax = Math.ceil(yMaxRaw / yStep) * yStep;
  const tStep = niceStep(tMax, 8);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (t: number) => (M.left + (t / tMax) * pw).toFixed(1);
  const y = (v: number) => (M.top + ph - (v / yMax) * ph).toFixed(1);
  const out: string[] = [];
  if (standalone) out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(data.title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(data.title)}</text>`,
    '<g class="axes" stroke="#888888" stroke-width="1">',
  );
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    out.push(
      `<line x1="${M.left}" y1="${y(v)}" x2="${W - M.right}" y2="${y(v)}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${(Number(y(v)) + 4).toFixed(1)}" text-anchor="end" stroke="none" fill="#333333">${escapeXml(formatRate(v).trim())}</text>`,
    );
  }
  for (let t = 0; t <= tMax + tStep / 1000; t += tStep) {
    out.push(
      `<line x1="${x(t)}" y1="${M.top + ph}" x2="${x(t)}" y2="${M.top + ph + 5}"/>`,
      `<text x="${x(t)}" y="${M.top + ph + 18}" text-anchor="middle" stroke="none" fill="#333333">${Number(t.toFixed(3))}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}"/>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${W - M.right}" y2="${M.top + ph}"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 12}" text-anchor="middle" stroke="none" fill="#333333">seconds</text>`,
    '</g>',
  );
  let colour = 0;
  const legend: string[] = [];
  for (const [i, s] of data.series.entries()) {
    const stroke = s.kind === 'total' ? '#000000' : COLOURS[colour++ % COLOURS.length]!;
    const width = s.kind === 'total' ? 2.5 : 1.5;
    // Steps: each interval's rate held over the interval.
    const pts = s.points.flatMap((p) => [
      `${x(p.start)},${y(p.bitsPerSecond)}`,
      `${x(p.end)},${y(p.bitsPerSecond)}`,
    ]);
    out.push(
      `<g class="series" data-kind="${s.kind}" data-label="${escapeXml(s.label)}">`,
      `<polyline fill="none" stroke="${stroke}" stroke-width="${width}" points="${pts.join(' ')}"/>`,
      '</g>',
    );
    const ly = M.top + 14 + i * 16;
    legend.push(
      `<line x1="${M.left + 12}" y1="${ly - 4}" x2="${M.left + 32}" y2="${ly - 4}" stroke="${stroke}" stroke-width="${width}"/>`,
      `<text x="${M.left + 38}" y="${ly}" fill="#000000">${escapeXml(s.label)}</text>`,
    );
  }
  out.push('<g class="legend">', ...legend, '</g>', '</svg>');
  return `${out.join('\n')}\n`;
}

/** The chart in an HTML page, with a table of every series' mean rate. */
export function renderHtml(data: PlotData): string {
  const rows = data.series.map((s) => {
    const seconds = s.points.reduce((n, p) => n + (p.end - p.start), 0);
    const bits = s.points.reduce((n, p) => n + p.bitsPerSecond * (p.end - p.start), 0);
    const mean = seconds > 0 ? bits / seconds : 0;
    return `<tr><td>${escapeXml(s.label)}</td><td>${s.points.length}</td><td>${escapeXml(formatRate(mean).trim())}</td></tr>`;
  });
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escapeXml(data.title)}</title>`,
    '<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>',
    '</head>',
    '<body>',
    renderSvg(data, false),
    '<table>',
    '<tr><th>series</th><th>intervals</th><th>mean rate</th></tr>',
    ...rows,
    '</table>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Writes the chart for a finished test's interval reports; the format follows the extension. */
export async function writePlot(file: string, title: string, intervals: readonly Json[]): Promise<PlotData> {
  const format = plotFormat(file);
  if (format === undefined) throw new InvalidArgumentError(checkPlotFile(file)!);
  const data: PlotData = { title, series: seriesFromIntervals(intervals) };
  await writeFile(file, format === 'svg' ? renderSvg(data) : renderHtml(data));
  return data;
}
