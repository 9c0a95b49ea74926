/**
 * The demo's reading of its processes' output and its table (pure): stock iperf3 -J documents
 * (complete, failed mid-way, no JSON at all), mptun servers' JSON log lines, the table's rows
 * and the chart page.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type DemoResult,
  demoHtml,
  formatDemo,
  type IperfResult,
  parseClientStats,
  parseIperf,
  parseServerLog,
  subflowSeries,
} from '../src/proxy/demo/report.js';

const iv = (start: number, bps: number) => ({ sum: { start, end: start + 1, bits_per_second: bps } });

test('parseIperf: a complete run, a run reset mid-way, and no JSON at all', () => {
  const ok = parseIperf(
    JSON.stringify({
      intervals: [iv(0, 40e6), iv(1, 48e6)],
      end: { sum_received: { bytes: 11e6, seconds: 2, bits_per_second: 44e6 } },
    }),
    0,
  );
  assert.deepEqual(
    { ok: ok.ok, bytes: ok.bytes, seconds: ok.seconds, bps: ok.bitsPerSecond, n: ok.intervals.length },
    { ok: true, bytes: 11e6, seconds: 2, bps: 44e6, n: 2 },
  );
  const reset = parseIperf(
    JSON.stringify({
      intervals: [iv(0, 40e6), iv(1, 8e6)],
      end: {},
      error: 'unable to write to stream socket: Connection reset by peer',
    }),
    1,
  );
  assert.equal(reset.ok, false);
  assert.equal(reset.error, 'unable to write to stream socket: Connection reset by peer');
  assert.equal(reset.bytes, 6e6, 'bytes from the intervals');
  assert.equal(reset.seconds, 2);
  const none = parseIperf('iperf3: error - unable to connect to server\n', 1);
  assert.equal(none.ok, false);
  assert.match(none.error ?? '', /no JSON report \(exit 1\): iperf3: error - unable to connect/);
});

test('parseServerLog: connections with their subflows and results, the MIB at stop; other lines ignored', () => {
  const lines = [
    '{"level":30,"msg":"server: listening"}',
    '{"level":30,"conn":0,"client":"10.60.1.1:40000","proto":"mptcp","msg":"connection accepted"}',
    '{"level":30,"conn":1,"client":"10.60.1.1:40002","proto":"tcp","msg":"connection accepted"}',
    '{"level":20,"conn":0,"subflow":0,"local":"10.99.0.1:5201","remote":"10.60.1.1:40000","msg":"subflow"}',
    '{"level":20,"conn":0,"subflow":1,"local":"10.98.0.1:5201","remote":"10.60.2.1:40001","msg":"subflow"}',
    '{"level":30,"conn":0,"up":100,"down":5,"subflows":2,"msg":"connection closed"}',
    '{"level":40,"conn":1,"up":7,"down":0,"err":"write EPIPE","msg":"connection failed"}',
    'not json',
    '{"level":30,"accepted":2,"mptcpMib":{"MPJoinAckRx":1},"msg":"server: stopped"}',
    '{"level":30,"conn":2,"cut',
  ].join('\n');
  const log = parseServerLog(lines);
  assert.deepEqual(log.mib, { MPJoinAckRx: 1 });
  assert.deepEqual(log.connections, [
    {
      conn: 0,
      client: '10.60.1.1:40000',
      proto: 'mptcp',
      up: 100,
      down: 5,
      result: 'ok',
      subflows: ['10.60.1.1:40000 > 10.99.0.1:5201', '10.60.2.1:40001 > 10.98.0.1:5201'],
    },
    { conn: 1, client: '10.60.1.1:40002', proto: 'tcp', up: 7, down: 0, result: 'write EPIPE', subflows: [] },
  ]);
});

function sample(): DemoResult {
  const run = (bps: number, ok = true) => ({
    ok,
    ...(ok ? {} : { error: 'reset' }),
    bytes: bps,
    seconds: 8,
    bitsPerSecond: bps,
    intervals: [{ start: 0, end: 1, bitsPerSecond: bps }],
  });
  return {
    prefix: 'p',
    rates: ['50mbit', '50mbit'],
    seconds: 8,
    baseline: run(48e6),
    mptun: run(95e6),
    servers: [
      { name: 's1', log: parseServerLog('') },
      {
        name: 's2',
        log: {
          connections: [
            { conn: 3, client: '10.60.1.1:1', proto: 'mptcp', result: 'ok', subflows: ['a > b', 'c > d'] },
          ],
          mib: { MPJoinAckRx: 2 },
        },
      },
    ],
    flip: { site: 's2', atSec: 3, plain: run(1e6, false), mptun: run(90e6), plainSite: 's1' },
    plot: 'demo.html',
  };
}

test('formatDemo: the two rows with the ratio, each server, the flip, the plot; a missing client said plainly', () => {
  const text = formatDemo(sample()).join('\n');
  assert.match(text, /single-path TCP \(bound to p1, no mptun client\) +1 {2}48\.0 Mbits\/sec +1\.00x/);
  assert.match(text, /MPTCP over p1 \+ p2\) +2 {2}95\.0 Mbits\/sec +1\.98x/);
  assert.match(text, /^ {2}s1 {6}\(no connections\)$/m);
  assert.match(text, /^ {2}s2 +3 {2}mptcp +10\.60\.1\.1:1 +ok +a > b, c > d$/m);
  assert.match(text, /s1: 0 joins accepted, 0 joins for unknown tokens; s2: 2 joins accepted/);
  assert.match(
    text,
    /anycast flip at 3\.0 s: the VIP routed to s2 only \(plain TCP's data connection was on s1\)/,
  );
  assert.match(text, /plain TCP \(p1\): +FAILED after 8\.0 s, .*: reset/);
  assert.match(text, /plot: demo\.html/);
  const why = "'mptun client' is not in this build yet";
  const without = formatDemo({ ...sample(), mptun: { unavailable: why }, flip: { unavailable: why } }).join(
    '\n',
  );
  assert.match(without, /mptun client over p1 \+ p2: not available: 'mptun client' is not in this build yet/);
  assert.match(without, /anycast flip: not available: /);
  const html = demoHtml(sample());
  assert.equal(html.match(/<svg /g)?.length, 2);
  assert.match(html, /<pre>[^<]*single-path TCP/);
  assert.doesNotMatch(html, /plot: demo\.html/);
});

test("the chart has a line per subflow of the mptun run, from the client's connection stats", () => {
  const t0 = 1_000_000;
  const line = (dt: number, conn: number, sfs: [number, string, number][]) =>
    JSON.stringify({
      level: 30,
      time: t0 + dt,
      conn,
      subflows: sfs.map(([id, path, acked]) => ({ id, path, acked, received: 0 })),
      msg: 'connection stats',
    });
  const stderr = [
    '{"level":30,"time":1,"msg":"client: intercepting"}',
    line(500, 1, [[1, '10.0.1.1:5->10.9.0.1:80', 1000]]),
    line(500, 2, [
      [1, '10.0.1.1:6->10.9.0.1:80', 0],
      [2, '10.0.2.1:7->10.9.0.2:80', 0],
    ]),
    line(1000, 1, [[1, '10.0.1.1:5->10.9.0.1:80', 1000]]),
    line(1000, 2, [
      [1, '10.0.1.1:6->10.9.0.1:80', 3e6],
      [2, '10.0.2.1:7->10.9.0.2:80', 1e6],
    ]),
    '{"level":30,"time":3,"msg":"connection stats", cut short',
    line(1500, 2, [
      [1, '10.0.1.1:6->10.9.0.1:80', 6e6],
      [2, '10.0.2.1:7->10.9.0.2:80', 4e6],
    ]),
  ].join('\n');
  const stats = parseClientStats(stderr);
  assert.equal(stats.length, 5);
  const run = { ...sample().mptun, bytes: 10e6, startedAtMs: t0 } as IperfResult;
  const lines = subflowSeries(stats, run);
  // The control connection (conn 1, 1000 bytes) is left out; conn 2's two subflows remain.
  assert.deepEqual(
    lines.map((s) => [s.label, s.points.map((p) => [p.start, p.end, p.bitsPerSecond])]),
    [
      [
        'subflow 10.0.1.1:6->10.9.0.1:80',
        [
          [0.5, 1, 48e6],
          [1, 1.5, 48e6],
        ],
      ],
      [
        'subflow 10.0.2.1:7->10.9.0.2:80',
        [
          [0.5, 1, 16e6],
          [1, 1.5, 48e6],
        ],
      ],
    ],
  );
  const html = demoHtml({ ...sample(), mptun: run, clientStats: stats });
  assert.match(html, /data-kind="subflow" data-label="subflow 10\.0\.2\.1:7-&gt;10\.9\.0\.2:80"/);
});
