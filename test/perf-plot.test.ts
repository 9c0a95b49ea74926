/**
 * `mptun perf client --plot FILE` and the live status line: the chart's series and their
 * values from interval reports (pure), the SVG well-formed, and end to end over two paths in
 * namespaces: our client ↔ our server with MPTCP (one series per subflow plus the total), and
 * the kernel stack against a stock iperf3 server (the total only).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../src/proxy/cli.js';
import { checkPlotFile, renderHtml, renderSvg, seriesFromIntervals } from '../src/proxy/perf/plot.js';
import { LiveProgress, progressText } from '../src/proxy/perf/progress.js';
import { type TwoPathLab, twoPathTopology } from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { json, start, startMptun, waitForListen } from './support/perf-lab.js';

/**
 * A small well-formedness check: every tag closes in order, attributes are quoted, no stray
 * `<` or `&` in text. Returns the element names in document order.
 */
function checkXml(text: string): string[] {
  const names: string[] = [];
  const open: string[] = [];
  let body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  body = body.replace(/^<!DOCTYPE html>\s*/i, '');
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/y;
  // HTML void elements written without a slash.
  const voids = new Set(['meta', 'br', 'hr', 'img', 'link', 'input']);
  let pos = 0;
  while (pos < body.length) {
    token.lastIndex = pos;
    const m = token.exec(body);
    assert.ok(m, `not well-formed near: ${body.slice(pos, pos + 80)}`);
    pos = token.lastIndex;
    const [, close, name, , selfClose, textPart] = m;
    if (textPart !== undefined) {
      assert.doesNotMatch(textPart, /&(?!(amp|lt|gt|quot|apos);)/, `bare & in ${textPart}`);
      continue;
    }
    if (close) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
    } else {
      names.push(name!);
      if (!selfClose && !voids.has(name!)) open.push(name!);
    }
  }
  assert.deepEqual(open, [], 'unclosed elements');
  return names;
}

interface SvgSeries {
  kind: string;
  label: string;
  /** Polyline points as SVG coordinates. */
  points: [number, number][];
}

function svgSeries(svg: string): SvgSeries[] {
  const re = /<g class="series" data-kind="(\w+)" data-label="([^"]*)">\s*<polyline [^>]*points="([^"]*)"/g;
  return [...svg.matchAll(re)].map((m) => ({
    kind: m[1]!,
    label: m[2]!
      .replace(/&gt;/g, '>')
      .replace(/&lt;/g, '<')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&'),
    points: m[3]!
      .split(' ')
      .filter((p) => p !== '')
      .map((p) => p.split(',').map(Number) as [number, number]),
  }));
}

/** Interval reports shaped like the session's: two subflows, the second joining later. */
function sampleIntervals() {
  const iv = (start: number, sf: [number, number][]) => {
    const total = sf.reduce((n, [, bps]) => n + bps, 0);
    return {
      streams: [
        {
          socket: 5,
          start,
          end: start + 1,
          bits_per_second: total,
          mptcp: {
            fallback: false,
            subflows: sf.map(([id, bps]) => ({
              id,
              role: id === 1 ? 'initial' : 'join',
              local: `10.0.${id}.1:4000${id}`,
              remote: '10.9.0.1:5201',
              bits_per_second: bps,
            })),
          },
        },
      ],
      sum: { start, end: start + 1, seconds: 1, bytes: total / 8, bits_per_second: total },
    };
  };
  return [
    iv(0, [[1, 40e6]]),
    iv(1, [
      [1, 45e6],
      [2, 30e6],
    ]),
    iv(2, [
      [1, 48e6],
      [2, 47e6],
    ]),
  ];
}

test('series from interval reports: the total from each sum, one series per subflow from the interval it appears in', () => {
  const series = seriesFromIntervals(sampleIntervals());
  assert.equal(series.length, 3);
  const [total, sf1, sf2] = series;
  assert.equal(total!.kind, 'total');
  assert.deepEqual(
    total!.points.map((p) => p.bitsPerSecond),
    [40e6, 75e6, 95e6],
  );
  assert.equal(sf1!.label, 'sf1 initial 10.0.1.1:40001 > 10.9.0.1:5201');
  assert.deepEqual(
    sf1!.points.map((p) => [p.start, p.end, p.bitsPerSecond]),
    [
      [0, 1, 40e6],
      [1, 2, 45e6],
      [2, 3, 48e6],
    ],
  );
  assert.deepEqual(
    sf2!.points.map((p) => p.start),
    [1, 2],
  );
  // Plain TCP (no mptcp objects): the total only.
  const plain = sampleIntervals().map((i) => ({ ...i, streams: [{ socket: 5 }] }));
  assert.deepEqual(
    seriesFromIntervals(plain).map((s) => s.kind),
    ['total'],
  );
});

test('SVG and HTML: well-formed, self-contained, one polyline per series with steps at the right height', () => {
  const data = { title: 'a <test> & "quotes"', series: seriesFromIntervals(sampleIntervals()) };
  const svg = renderSvg(data);
  const names = checkXml(svg);
  assert.equal(names[0], 'svg');
  assert.doesNotMatch(svg, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'no external references');
  assert.doesNotMatch(svg, /<script|<image|href=/);
  const series = svgSeries(svg);
  assert.deepEqual(
    series.map((s) => s.kind),
    ['total', 'subflow', 'subflow'],
  );
  // Two points per interval; the total's last step (95 Mbit/s) is higher than sf1's (48).
  assert.equal(series[0]!.points.length, 6);
  assert.equal(series[2]!.points.length, 4);
  assert.ok(series[0]!.points[5]![1] < series[1]!.points[5]![1]);
  // x grows along each polyline.
  for (const s of series)
    for (let i = 1; i < s.points.length; i++) assert.ok(s.points[i]![0] >= s.points[i - 1]![0]);
  const html = renderHtml(data);
  const htmlNames = checkXml(html);
  assert.equal(htmlNames[0], 'html');
  assert.ok(htmlNames.includes('svg') && htmlNames.includes('table'));
  assert.match(
    html,
    /<td>sf2 join 10\.0\.2\.1:40002 &gt; 10\.9\.0\.1:5201<\/td><td>2<\/td><td>38\.5 Mbits\/sec<\/td>/,
  );
  assert.equal(checkPlotFile('x.svg'), undefined);
  assert.equal(checkPlotFile('x.HTML'), undefined);
  assert.match(checkPlotFile('x.png') ?? '', /must end in \.svg or \.html/);
});

test('live progress: one line rewritten in place, other lines below it, cut to the terminal width', () => {
  const run = (columns: number) => {
    let out = '';
    const live = new LiveProgress(
      (t) => {
        out += t;
      },
      () => columns,
    );
    live.print('Connecting to host x');
    const [a, b] = sampleIntervals();
    live.update(a!);
    live.update(b!);
    live.print('summary');
    live.finish();
    return out;
  };
  const [a, b] = sampleIntervals();
  const first = progressText(a!, 5e6);
  const second = progressText(b!, 5e6 + 75e6 / 8);
  assert.match(
    second,
    /^ {3}2\.0 s {2}13\.7 MBytes {2}75\.0 Mbits\/sec {2}2 subflows: sf1 45\.0 Mbits\/sec, sf2 30\.0 Mbits\/sec$/,
  );
  // Wide terminal: each update rewrites the line; the next normal line goes below the last one.
  assert.equal(run(200), `Connecting to host x\n\r\x1b[2K${first}\r\x1b[2K${second}\nsummary\n`);
  // Narrow: cut to fit (so \r rewrites the whole line).
  const narrow = run(60).split('\r\x1b[2K');
  assert.equal(narrow.length, 3);
  assert.equal(narrow[2], `${second.slice(0, 58)}…\nsummary\n`);
  // A terminal of unknown width (0 columns): 80.
  assert.equal(run(0).split('\r\x1b[2K')[2], `${second.slice(0, 78)}…\nsummary\n`);
});

const CLIENT_ADDRS = ['10.72.1.1', '10.72.2.1'] as const;
const lab = new NetnsLab();
let t: TwoPathLab;
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mptun-plot-'));
  t = twoPathTopology(lab, { tag: 'pl' });
  for (const ns of [t.cli, t.srv]) lab.exec(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  for (const p of t.paths) {
    const k = p.index;
    lab.exec(
      t.cli,
      'ip',
      'route',
      'add',
      'default',
      'via',
      p.far.v4,
      'dev',
      p.cli.dev,
      'table',
      `${100 + k}`,
    );
    lab.exec(
      t.cli,
      'ip',
      'rule',
      'add',
      'from',
      CLIENT_ADDRS[k - 1]!,
      'lookup',
      `${100 + k}`,
      'priority',
      `${100 + k}`,
    );
    lab.exec(t.cli, 'ip', 'route', 'add', `10.73.${k}.0/24`, 'via', p.far.v4, 'dev', p.cli.dev);
    lab.exec(t.srv, 'ip', 'route', 'add', `10.72.${k}.0/24`, 'via', p.cli.v4, 'dev', p.far.dev);
  }
});
after(() => {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function ourServer(n: number) {
  const s = startMptun(lab, t.srv, [
    'perf',
    'server',
    '--one-off',
    '-p',
    String(5700 + n),
    '--stack',
    'user',
    '--tun',
    `spl${n}`,
    '--addr',
    `10.73.1.${n}`,
    '--addr',
    `10.73.2.${n}`,
    '--mptcp',
    '--announce',
    `10.73.2.${n}`,
  ]);
  await s.waitFor(/perf server: listening/);
  return s;
}

function ourClient(n: number, ...extra: string[]) {
  return startMptun(lab, t.cli, [
    'perf',
    'client',
    `10.73.1.${n}`,
    '-p',
    String(5700 + n),
    '--stack',
    'user',
    '--tun',
    `cpl${n}`,
    '--addr',
    CLIENT_ADDRS[0],
    '--addr',
    CLIENT_ADDRS[1],
    '--mptcp',
    ...extra,
  ]);
}

test('--plot x.svg --live over two paths: the total and one series per subflow (3), the status line in place', async () => {
  const server = await ourServer(1);
  const file = join(dir, 'two-paths.svg');
  const client = ourClient(1, '-t', '2', '-i', '0.25', '--plot', file, '--live');
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const out = client.stdout();
  // The status line: rewritten in place, listing the subflows; no interval lines.
  const updates = out.split('\r\x1b[2K').slice(1);
  assert.ok(updates.length >= 4, JSON.stringify(out.slice(0, 400)));
  assert.match(
    updates.at(-1)!,
    /^ +\d+\.\d s {2}[\d.]+ [KMG]Bytes {2}[\d.]+ [KMG]?bits\/sec {2}3 subflows: sf\d/,
  );
  const intervalLines = out
    .split('\n')
    .filter((l) => /^\[ {2}\d\] +\d+\.\d\d-/.test(l) && !/(sender|receiver)$/.test(l));
  assert.deepEqual(intervalLines, [], 'no interval lines');
  assert.match(out, /sender\n/);
  assert.match(out, new RegExp(`^plot: ${file} \\(4 series: total and 3 subflows\\)$`, 'm'));
  const svg = readFileSync(file, 'utf8');
  checkXml(svg);
  const series = svgSeries(svg);
  assert.deepEqual(
    series.map((s) => s.kind),
    ['total', 'subflow', 'subflow', 'subflow'],
  );
  assert.equal(series.filter((s) => / initial 10\.72\.1\.1:\d+ > 10\.73\.1\.1:/.test(s.label)).length, 1);
  assert.equal(series.filter((s) => / join 10\.72\.[12]\.1:\d+ > 10\.73\.2\.1:/.test(s.label)).length, 2);
  // About 8 intervals of 0.25 s (two points each); the total line leaves the zero baseline.
  const total = series[0]!;
  assert.ok(total.points.length >= 10 && total.points.length <= 20, String(total.points.length));
  const baseline = Math.max(...series.flatMap((s) => s.points.map((p) => p[1])));
  assert.ok(
    total.points.some((p) => p[1] < baseline - 50),
    'the total rises well above zero',
  );
});

test('--plot x.html -R -J: the plotted values are the intervals of the JSON report, subflows add up to the total', async () => {
  const server = await ourServer(2);
  const file = join(dir, 'reverse.html');
  const client = ourClient(2, '-t', '2', '-i', '0.5', '-R', '-J', '--plot', file);
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const report = json(client);
  assert.match(client.stderr(), /plot: .*reverse\.html \(4 series/);
  const html = readFileSync(file, 'utf8');
  assert.ok(checkXml(html).includes('svg'));
  const series = seriesFromIntervals(report.intervals as Record<string, unknown>[]);
  assert.equal(series.length, 4);
  assert.equal(svgSeries(html).length, 4);
  // Receiving: a subflow's bytes are what it received, so together they cover the total (more
  // only by data that came twice, reinjected after a subflow looked stale).
  const bits = (s: (typeof series)[number]) =>
    s.points.reduce((n, p) => n + p.bitsPerSecond * (p.end - p.start), 0);
  const total = bits(series[0]!);
  const subflows = series.slice(1).reduce((n, s) => n + bits(s), 0);
  assert.ok(total > 0, `total ${total} bits`);
  assert.ok(total < 2 * 100e9, `total ${total} bits`);
  assert.ok(subflows >= 0.9 * total && subflows <= 2 * total, `subflows ${subflows} vs total ${total}`);
  assert.ok(total / 8 <= report.end.sum_received.bytes * 1.01 + 1);
});

test('--plot with the kernel stack against stock iperf3 -s: the total only', async () => {
  const port = 5790;
  const server = start(lab, t.srv, 'iperf3', ['-s', '-1', '-p', String(port)]);
  await waitForListen(lab, t.srv, port);
  const file = join(dir, 'kernel.svg');
  const client = startMptun(lab, t.cli, [
    'perf',
    'client',
    t.paths[0].far.v4,
    '-p',
    String(port),
    '-t',
    '1',
    '-i',
    '0.25',
    '--plot',
    file,
  ]);
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  // Not a terminal and no --live: iperf3's interval lines as before.
  assert.match(client.stdout(), /^\[ {2}\d\] +0\.00-0\.\d\d +sec/m);
  const svg = readFileSync(file, 'utf8');
  checkXml(svg);
  assert.deepEqual(
    svgSeries(svg).map((s) => s.kind),
    ['total'],
  );
});

test('--plot flag errors exit 2 naming the fix (the CLI in this process: no test runs)', async () => {
  const run = async (argv: string[]) => {
    let stderr = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      return { code: await main(['--log-level', 'silent', ...argv]), stderr };
    } finally {
      process.stderr.write = write;
    }
  };
  const bad = await run(['perf', 'client', '10.0.0.1', '--plot', 'out.png']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--plot out\.png: the file name must end in \.svg or \.html/);
  const noIv = await run(['perf', 'client', '10.0.0.1', '--plot', 'x.svg', '-i', '0']);
  assert.equal(noIv.code, 2);
  assert.match(noIv.stderr, /--plot needs interval reports/);
});
