/**
 * Codec benchmark: parse and emit rate of IPv4 + TCP segments carrying timestamps and an MPTCP
 * DSS option (DATA_ACK + mapping, as Linux sends on data), the npm ip-packet decoder on the
 * same packet as the baseline for parsing, and Internet checksum throughput next to the
 * textbook byte loop of RFC 1071.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { internetChecksum } from '../src/stack/wire/checksum.js';
import { encodeIpv4, type Ipv4Fields, parseIpv4 } from '../src/stack/wire/ipv4.js';
import type { MptcpOption } from '../src/stack/wire/mptcp-options.js';
import {
  encodeTcp,
  fillTcpChecksumV4,
  parseTcp,
  TCP_ACK,
  TCP_PSH,
  type TcpFields,
  tcpHeaderLength,
} from '../src/stack/wire/tcp.js';
import type { BenchOptions, BenchRow } from './harness.js';

const SUITE = 'codec';
const PAYLOAD = 1448;

const ipPacket = createRequire(import.meta.url)('ip-packet') as {
  decode(state: { buffer: Uint8Array; start: number; end: number }): { protocol: number };
};

const dss: MptcpOption = {
  subtype: 'dss',
  dataFin: false,
  dataAck64: true,
  dsn64: true,
  dataAck: 0x391255702ced1a07n,
  mapping: { dsn: 0x92ff631c43f23890n, ssn: 1, dataLevelLength: PAYLOAD },
};

const tcpFields: TcpFields = {
  srcPort: 5000,
  dstPort: 33218,
  seqNumber: 0xf98a32d7,
  ackNumber: 0xb0abce09,
  flags: TCP_ACK | TCP_PSH,
  window: 64,
  options: [
    { type: 'nop' },
    { type: 'nop' },
    { type: 'timestamps', tsVal: 77, tsEcr: 88 },
    { type: 'mptcp', option: dss },
  ],
};

function ipFields(totalLength: number): Ipv4Fields {
  return {
    tos: 0,
    totalLength,
    identification: 0x13db,
    dontFragment: true,
    moreFragments: false,
    fragmentOffset: 0,
    ttl: 64,
    protocol: 6,
    src: 0x0a000001,
    dst: 0x0a000002,
    options: new Uint8Array(0),
  };
}

/** Runs `fn` in batches for about `seconds` and returns operations per second. */
function rate(seconds: number, batch: number, fn: (n: number) => number): number {
  fn(batch); // warm-up: let V8 optimise before timing
  let ops = 0;
  let sink = 0;
  const started = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    sink += fn(batch);
    ops += batch;
    elapsed = process.hrtime.bigint() - started;
  }
  if (sink === Number.MIN_SAFE_INTEGER) process.stderr.write('');
  return ops / (Number(elapsed) / 1e9);
}

/** RFC 1071's textbook loop: 16-bit big-endian words, carries folded at the end. */
function naiveChecksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length & 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const seconds = opts.quick ? 0.15 : 1;
  const tcpLength = tcpHeaderLength(tcpFields) + PAYLOAD;
  const packet = new Uint8Array(20 + tcpLength);
  encodeIpv4(ipFields(packet.length), packet, 0);
  encodeTcp(tcpFields, packet, 20);
  fillTcpChecksumV4(packet, 20, packet.length, 0x0a000001, 0x0a000002);
  const rows: BenchRow[] = [];

  // Sanity: what we time must parse.
  const check = parseIpv4(packet);
  if (!check.ok || !parseTcp(packet, 20, check.value.totalLength).ok)
    throw new Error('bench packet does not parse');

  const refState = { buffer: packet, start: 0, end: packet.length };
  const ipPacketRate = rate(seconds, 10_000, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      refState.start = 0;
      s += ipPacket.decode(refState).protocol;
    }
    return s;
  });
  const baseline = { name: 'ip-packet decode (IPv4 header only)', value: ipPacketRate / 1e6 };

  const ipv4Rate = rate(seconds, 10_000, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const r = parseIpv4(packet);
      if (r.ok) s += r.value.protocol;
    }
    return s;
  });
  rows.push({
    suite: SUITE,
    name: 'parse IPv4 header (with checksum check)',
    value: ipv4Rate / 1e6,
    unit: 'M/s',
    baseline,
  });

  const fullRate = rate(seconds, 10_000, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const ip = parseIpv4(packet);
      if (!ip.ok) continue;
      const tcp = parseTcp(packet, ip.value.headerLength, ip.value.totalLength);
      if (tcp.ok) s += tcp.value.options.length;
    }
    return s;
  });
  rows.push({
    suite: SUITE,
    name: 'parse IPv4+TCP, TS + DSS options',
    value: fullRate / 1e6,
    unit: 'M/s',
    // No baseline: ip-packet decodes no TCP, so a ratio against it would compare unlike work.
    extra: { nsPerPacket: 1e9 / fullRate },
  });

  const out = new Uint8Array(packet.length);
  const ip = ipFields(packet.length);
  const emitRate = rate(seconds, 10_000, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      s += encodeIpv4(ip, out, 0);
      s += encodeTcp(tcpFields, out, 20);
    }
    return s;
  });
  rows.push({
    suite: SUITE,
    name: 'emit IPv4+TCP headers, TS + DSS options',
    value: emitRate / 1e6,
    unit: 'M/s',
    extra: { nsPerPacket: 1e9 / emitRate },
  });

  const emitSumRate = rate(seconds, 5_000, (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      encodeIpv4(ip, out, 0);
      encodeTcp(tcpFields, out, 20);
      s += fillTcpChecksumV4(out, 20, out.length, ip.src, ip.dst);
    }
    return s;
  });
  rows.push({
    suite: SUITE,
    name: `emit IPv4+TCP + TCP checksum (${packet.length} B)`,
    value: emitSumRate / 1e6,
    unit: 'M/s',
    extra: { nsPerPacket: 1e9 / emitSumRate },
  });

  for (const size of [1500, 65536]) {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 131 + 7) & 0xff;
    const batch = size > 2000 ? 50 : 2_000;
    const ours = rate(seconds, batch, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += internetChecksum(data);
      return s;
    });
    const naive = rate(seconds, batch, (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += naiveChecksum(data);
      return s;
    });
    rows.push({
      suite: SUITE,
      name: `Internet checksum, ${size} B`,
      value: (ours * size) / 1e9,
      unit: 'GB/s',
      baseline: { name: 'RFC 1071 byte loop (JS)', value: (naive * size) / 1e9 },
    });
    if (size === 65536 && typeof zlib.crc32 === 'function') {
      const crc = rate(seconds, batch, (n) => {
        let s = 0;
        for (let i = 0; i < n; i++) s += zlib.crc32(data);
        return s;
      });
      rows.push({
        suite: SUITE,
        name: `Internet checksum, ${size} B`,
        value: (ours * size) / 1e9,
        unit: 'GB/s',
        baseline: { name: 'zlib.crc32 (native C, a different sum)', value: (crc * size) / 1e9 },
      });
    }
  }
  return rows;
}
