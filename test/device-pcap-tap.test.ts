import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ManualScheduler } from '../src/stack/device/clock.js';
import { createMemoryPair } from '../src/stack/device/memory-pair.js';
import { PcapTap } from '../src/stack/device/pcap-tap.js';
import { LINKTYPE_RAW, readPcap } from '../src/stack/device/pcap-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'mptun-pcap-tap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function checksum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i < end; i += 2) sum += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A valid IPv4/TCP packet (checksums right), written by hand to stay independent of the codecs. */
function tcpPacket(
  src: number,
  dst: number,
  sport: number,
  dport: number,
  seq: number,
  payloadLen: number,
): Uint8Array {
  const p = new Uint8Array(40 + payloadLen);
  const v = new DataView(p.buffer);
  v.setUint8(0, 0x45);
  v.setUint16(2, p.length);
  v.setUint16(6, 0x4000);
  v.setUint8(8, 64);
  v.setUint8(9, 6);
  v.setUint32(12, src);
  v.setUint32(16, dst);
  v.setUint16(10, checksum(p, 0, 20));
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint32(24, seq);
  v.setUint8(32, 5 << 4);
  v.setUint8(33, 0x18);
  v.setUint16(34, 65535);
  for (let i = 0; i < payloadLen; i++) p[40 + i] = i & 0xff;
  const pseudo = ((src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 6 + (p.length - 20)) >>> 0;
  v.setUint16(36, checksum(p, 20, p.length, pseudo));
  return p;
}

const A = 0x0a000001;
const B = 0x0a000002;

function tshark(...args: string[]): string {
  return execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

test('pcap tap passes frames both ways and records them in a file tshark reads', async () => {
  const clock = new ManualScheduler(1_700_000_000_000);
  const [a, b] = createMemoryPair({ scheduler: clock });
  const path = join(dir, 'tap.pcap');
  const tap = new PcapTap(a, { path, clock });
  const atB: number[] = [];
  const atTap: number[] = [];
  b.onFrames((frames) => {
    for (const f of frames) atB.push(f.data.length);
  });
  tap.onFrames((frames) => {
    for (const f of frames) atTap.push(f.data.length);
  });
  tap.write([{ data: tcpPacket(A, B, 1000, 80, 1, 10) }, { data: tcpPacket(A, B, 1000, 80, 11, 20) }]);
  clock.advance(1.5);
  b.write([{ data: tcpPacket(B, A, 80, 1000, 500, 30) }]);
  clock.advance(1);
  tap.write([{ data: tcpPacket(A, B, 1000, 80, 31, 0) }]);
  clock.runUntilIdle();
  await tap.close();
  assert.deepEqual(atB, [50, 60, 40]);
  assert.deepEqual(atTap, [70]);
  assert.deepEqual(tap.stats, { recordedTx: 3, recordedRx: 1, writeErrors: 0 });

  const packets = readPcap(path);
  assert.equal(packets.length, 4);
  assert.ok(packets.every((p) => p.linkType === LINKTYPE_RAW));
  assert.deepEqual(
    packets.map((p) => p.timeMicros - 1_700_000_000_000_000),
    [0, 0, 1500, 2500],
  );

  const lines = tshark(
    '-r',
    path,
    '-o',
    'tcp.check_checksum:TRUE',
    '-T',
    'fields',
    '-E',
    'separator=,',
    '-e',
    'ip.src',
    '-e',
    'tcp.srcport',
    '-e',
    'tcp.len',
    '-e',
    'tcp.checksum.status',
  )
    .trim()
    .split('\n');
  // Status 1 = "Good" in Wireshark's checksum status enum (0 bad, 2 unverified).
  assert.deepEqual(lines, [
    '10.0.0.1,1000,10,1',
    '10.0.0.1,1000,20,1',
    '10.0.0.2,80,30,1',
    '10.0.0.1,1000,0,1',
  ]);
  const expert = tshark('-r', path, '-Y', '_ws.malformed || _ws.expert.severity >= warning');
  assert.equal(expert.trim(), '');
});

test('pcap tap records super-packets whole and forwards drain', async () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({
    scheduler: clock,
    offload: true,
    highWaterMark: 10_000,
    queueLimit: 200_000,
  });
  const path = join(dir, 'gso.pcap');
  const tap = new PcapTap(a, { path, clock });
  assert.equal(tap.offload, true);
  let drains = 0;
  tap.onDrain(() => drains++);
  b.onFrames(() => {
    // Discards.
  });
  const big = tcpPacket(A, B, 1000, 80, 1, 60_000);
  const gso = {
    needsCsum: false,
    dataValid: false,
    gsoType: 'tcpv4' as const,
    hdrLen: 40,
    gsoSize: 1460,
    csumStart: 20,
    csumOffset: 16,
  };
  assert.equal(tap.write([{ data: big, gso }]), false);
  clock.runUntilIdle();
  assert.equal(drains, 1);
  await tap.close();
  const packets = readPcap(path);
  assert.equal(packets.length, 1);
  assert.equal(packets[0]!.data.length, 60_040);
  assert.deepEqual(packets[0]!.data, big);
  const len = tshark('-r', path, '-T', 'fields', '-e', 'frame.len', '-e', 'tcp.len').trim();
  assert.equal(len, '60040\t60000');
});

test('a capture failure is counted and frames still pass', async () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const tap = new PcapTap(a, { path: join(dir, 'closed.pcap'), clock });
  // A closed writer throws on write: the tap must not.
  tap.writer.close();
  let got = 0;
  b.onFrames((frames) => {
    got += frames.length;
  });
  tap.write([{ data: tcpPacket(A, B, 1, 2, 3, 4) }]);
  clock.runUntilIdle();
  assert.equal(got, 1);
  assert.equal(tap.stats.writeErrors, 1);
  assert.ok(tap.lastWriteError instanceof Error);
  await tap.close();
  assert.throws(() => new PcapTap(a, {}), { code: 'MPTUN_ERR_INVALID_ARG' });
});
