/** The pure parts of `mptun perf`: framing, cookies, sizes, units, ss parsing, --addr parsing. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { formatBytes, formatLine, formatRate } from '../src/proxy/perf/format.js';
import {
  COOKIE_SIZE,
  ControlChannel,
  cookieText,
  makeCookie,
  parseResults,
  parseSize,
  streamId,
  tryParseSize,
} from '../src/proxy/perf/protocol.js';
import { parseSsInfo } from '../src/proxy/perf/stack.js';
import { parseStackAddress } from '../src/proxy/perf/user-stack.js';

test('a cookie is 36 characters of [a-z2-7] and a NUL, like iperf3', () => {
  const c = makeCookie();
  assert.equal(c.length, COOKIE_SIZE);
  assert.equal(c[36], 0);
  assert.match(cookieText(c), /^[a-z2-7]{36}$/);
  assert.notDeepEqual(makeCookie(), c);
});

test('stream ids follow iperf3: 1, 3, 4, 5', () => {
  assert.deepEqual([0, 1, 2, 3].map(streamId), [1, 3, 4, 5]);
});

test('JSON goes behind a 4-byte big-endian length, and is read back across split chunks', async () => {
  const wire = new PassThrough();
  const writer = new ControlChannel(wire, 'test');
  const frames: Buffer[] = [];
  const tap = new PassThrough();
  const reader = new ControlChannel(tap, 'test');
  wire.removeAllListeners('data');
  wire.on('data', (d: Buffer) => frames.push(d));
  writer.writeState(9);
  writer.writeJson({ tcp: true, parallel: 2 });
  const all = Buffer.concat(frames);
  assert.equal(all[0], 9);
  assert.equal(all.readUInt32BE(1), all.length - 5);
  // Byte by byte: the reader must reassemble.
  for (const b of all) tap.write(Buffer.from([b]));
  assert.equal(await reader.readState(), 9);
  assert.deepEqual(await reader.readJson(), { tcp: true, parallel: 2 });
});

test('a read pending when the peer closes fails with a clear error', async () => {
  const tap = new PassThrough();
  const reader = new ControlChannel(tap, '192.0.2.1 port 5201');
  const pending = reader.readState();
  tap.end();
  await assert.rejects(pending, /control connection to 192\.0\.2\.1 port 5201 was closed/);
});

test('negative states (ACCESS_DENIED, SERVER_ERROR) are signed bytes', async () => {
  const tap = new PassThrough();
  const reader = new ControlChannel(tap, 't');
  tap.write(Buffer.from([0xff, 0xfe]));
  assert.equal(await reader.readState(), -1);
  assert.equal(await reader.readState(), -2);
});

test('malformed JSON and absurd lengths are errors, not crashes', async () => {
  const tap = new PassThrough();
  const reader = new ControlChannel(tap, 't');
  const bad = Buffer.from('{nope');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bad.length);
  tap.write(Buffer.concat([len, bad]));
  await assert.rejects(reader.readJson(), /malformed JSON/);
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0x7fffffff);
  tap.write(huge);
  await assert.rejects(reader.readJson(), /not iperf3/);
});

test('results from iperf3: its unsigned -1 retransmits become -1, missing fields 0', () => {
  // As iperf3 3.12 sends them from a receiver (observed on the wire).
  const r = parseResults(
    JSON.parse(
      '{"cpu_util_total":12.5,"sender_has_retransmits":18446744073709551615,' +
        '"streams":[{"id":1,"bytes":100,"retransmits":18446744073709551615,"end_time":1.5}]}',
    ),
  );
  assert.equal(r.sender_has_retransmits, -1);
  assert.equal(r.streams[0]!.retransmits, -1);
  assert.equal(r.streams[0]!.bytes, 100);
  assert.equal(r.streams[0]!.jitter, 0);
  assert.throws(() => parseResults('x'), /not a JSON object/);
});

test('sizes take K/M/G/T suffixes in powers of 1024, like iperf3', () => {
  assert.equal(parseSize('200M'), 200 * 1024 * 1024);
  assert.equal(parseSize('128K'), 131072);
  assert.equal(parseSize('1g'), 1024 ** 3);
  assert.equal(parseSize('1.5K'), 1536);
  assert.equal(parseSize('42'), 42);
  assert.equal(tryParseSize('lots'), undefined);
  assert.equal(tryParseSize('-1M'), undefined);
  assert.throws(() => parseSize('12Q'), /not a size/);
});

test("units: iperf3's adaptive prefixes and precision", () => {
  assert.equal(formatBytes(665845760), ' 635 MBytes');
  assert.equal(formatBytes(1992294400), '1.86 GBytes');
  assert.equal(formatBytes(1024 * 1024 * 12.06), '12.1 MBytes');
  assert.equal(formatRate(5318378891), '5.32 Gbits/sec');
  assert.equal(formatRate(95.7e6), '95.7 Mbits/sec');
  assert.equal(formatRate(0), '0.00 bits/sec');
});

test('summary lines carry the interval, transfer, rate, Retr and role', () => {
  const line = formatLine({
    id: 5,
    start: 0,
    end: 1,
    seconds: 1,
    bytes: 296 * 1024 * 1024,
    retransmits: 0,
    role: 'sender',
  });
  assert.match(line, /^\[ {2}5\] +0\.00-1\.00 +sec +296 MBytes +2\.48 Gbits\/sec +0 +sender$/);
});

test('ss -ti: options, RTT, total retransmissions, cwnd in bytes, congestion control', () => {
  const info = parseSsInfo(
    'ESTAB 0 0 10.0.0.1:5201 10.0.0.2:40000\n\t cubic ts sack wscale:7,10 rto:204 rtt:1.25/0.5 mss:1448 cwnd:10 retrans:0/3 bytes_sent:1\n',
  );
  assert.deepEqual(info?.options, ['mss 1448', 'wscale 7/10', 'sack', 'timestamps']);
  assert.equal(info?.rttMs, 1.25);
  assert.equal(info?.rttVarMs, 0.5);
  assert.equal(info?.retransmits, 3);
  assert.equal(info?.cwnd, 14480);
  assert.equal(info?.congestion, 'cubic');
  assert.equal(parseSsInfo(''), undefined);
});

test('--addr: IP or IP/PREFIX; the route is the address or its network', () => {
  assert.deepEqual(parseStackAddress('10.7.0.2'), {
    address: '10.7.0.2',
    family: 4,
    prefix: 32,
    route: '10.7.0.2/32',
  });
  assert.equal(parseStackAddress('10.7.0.2/24').route, '10.7.0.0/24');
  assert.equal(parseStackAddress('fd00::2/64').family, 6);
  assert.throws(() => parseStackAddress('10.7.0.300'), /not an IP address/);
  assert.throws(() => parseStackAddress('10.7.0.2/33'), /prefix must be 0-32/);
  assert.throws(() => parseStackAddress('10.7.0.2/'), /prefix must be/);
});
