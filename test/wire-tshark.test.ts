/**
 * tshark as an independent decoder of our IPv4, IPv6 and TCP encoders (the MPTCP options have
 * their own test, tshark-options.test.ts): packets with IP options, an IPv6 extension header
 * and every plain TCP option form go to a pcap; tshark must see no malformed packet, no expert
 * error, good IP and TCP checksums, and the same field values we encoded.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PcapWriter } from '../src/stack/device/pcap-writer.js';
import { encodeIpv4, ipv4FromString } from '../src/stack/wire/ipv4.js';
import { encodeIpv6, ipv6FromString } from '../src/stack/wire/ipv6.js';
import {
  encodeTcp,
  fillTcpChecksumV4,
  fillTcpChecksumV6,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  type TcpFields,
  type TcpOption,
  tcpHeaderLength,
} from '../src/stack/wire/tcp.js';

const SEVERITY_ERROR = 0x800000;
const CHECKSUM_GOOD = '1';

interface Case {
  name: string;
  family: 4 | 6;
  tcp: TcpFields;
  payload: number;
  /** IPv4 option bytes, or an IPv6 destination-options header before TCP. */
  ipOptions?: Uint8Array;
}

const SRC4 = ipv4FromString('192.0.2.1');
const DST4 = ipv4FromString('198.51.100.7');
const SRC6 = ipv6FromString('2001:db8::1');
const DST6 = ipv6FromString('2001:db8:0:1::2');

function tcp(seqNumber: number, flags: number, options: TcpOption[]): TcpFields {
  return {
    srcPort: 40000 + (seqNumber & 0xff),
    dstPort: 443,
    seqNumber,
    ackNumber: 0x8000_0001,
    flags,
    window: 502,
    options,
  };
}

const cases: Case[] = [
  {
    name: 'Linux-style SYN',
    family: 4,
    payload: 0,
    tcp: tcp(0x1000_0001, TCP_SYN, [
      { type: 'mss', mss: 1460 },
      { type: 'sack-permitted' },
      { type: 'timestamps', tsVal: 0xdead_beef, tsEcr: 0 },
      { type: 'nop' },
      { type: 'window-scale', shift: 7 },
    ]),
  },
  {
    name: 'ACK with 3 SACK blocks and IP options',
    family: 4,
    payload: 0,
    ipOptions: Uint8Array.of(0x94, 0x04, 0x00, 0x00), // router alert (RFC 2113)
    tcp: tcp(0x2000_0002, TCP_ACK, [
      { type: 'nop' },
      { type: 'nop' },
      {
        type: 'sack',
        blocks: [
          { left: 0x8000_1000, right: 0x8000_2000 },
          { left: 0x8000_3000, right: 0x8000_4000 },
          { left: 0xffff_ff00, right: 0x0000_0100 },
        ],
      },
    ]),
  },
  {
    name: 'data with timestamps and a SACK block over IPv6 with destination options',
    family: 6,
    payload: 100,
    ipOptions: Uint8Array.of(6, 0, 1, 4, 0, 0, 0, 0), // next TCP, PadN
    tcp: tcp(0x3000_0003, TCP_ACK | TCP_PSH, [
      { type: 'nop' },
      { type: 'nop' },
      { type: 'timestamps', tsVal: 1, tsEcr: 2 },
      { type: 'nop' },
      { type: 'nop' },
      { type: 'sack', blocks: [{ left: 0x8000_0100, right: 0x8000_0200 }] },
    ]),
  },
  {
    name: 'ACK with 4 SACK blocks over IPv6',
    family: 6,
    payload: 1,
    tcp: tcp(0x4000_0004, TCP_ACK, [
      { type: 'nop' },
      { type: 'nop' },
      {
        type: 'sack',
        blocks: [1, 2, 3, 4].map((i) => ({ left: 0x8000_0000 + i * 0x100, right: 0x8000_0080 + i * 0x100 })),
      },
    ]),
  },
  {
    name: 'SYN over IPv6 with an odd option length (EOL padding)',
    family: 6,
    payload: 0,
    tcp: tcp(0x5000_0005, TCP_SYN, [
      { type: 'mss', mss: 1440 },
      { type: 'window-scale', shift: 14 },
    ]),
  },
];

function build(c: Case): Uint8Array {
  const tcpLength = tcpHeaderLength(c.tcp) + c.payload;
  const ext = c.ipOptions?.length ?? 0;
  const ipLength = (c.family === 4 ? 20 : 40) + ext;
  const packet = new Uint8Array(ipLength + tcpLength);
  for (let i = ipLength + tcpHeaderLength(c.tcp); i < packet.length; i++) packet[i] = i & 0xff;
  if (c.family === 4) {
    encodeIpv4(
      {
        tos: 0,
        totalLength: packet.length,
        identification: 0x4242,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 61,
        protocol: 6,
        src: SRC4,
        dst: DST4,
        options: c.ipOptions ?? new Uint8Array(0),
      },
      packet,
      0,
    );
    encodeTcp(c.tcp, packet, ipLength);
    fillTcpChecksumV4(packet, ipLength, packet.length, SRC4, DST4);
  } else {
    encodeIpv6(
      {
        trafficClass: 0x28,
        flowLabel: 0xabcde,
        payloadLength: packet.length - 40,
        nextHeader: ext ? 60 : 6,
        hopLimit: 61,
        src: SRC6,
        dst: DST6,
      },
      packet,
      0,
    );
    if (c.ipOptions) packet.set(c.ipOptions, 40);
    encodeTcp(c.tcp, packet, ipLength);
    fillTcpChecksumV6(packet, ipLength, packet.length, SRC6, DST6);
  }
  return packet;
}

const FIELDS = [
  'frame.number',
  '_ws.malformed',
  '_ws.expert.severity',
  '_ws.expert',
  'ip.checksum.status',
  'ip.hdr_len',
  'ip.len',
  'ip.opt.type',
  'ipv6.tclass',
  'ipv6.flow',
  'ipv6.plen',
  'ipv6.dstopts.nxt',
  'tcp.checksum.status',
  'tcp.srcport',
  'tcp.seq_raw',
  'tcp.ack_raw',
  'tcp.hdr_len',
  'tcp.flags',
  'tcp.window_size_value',
  'tcp.len',
  'tcp.options.mss_val',
  'tcp.options.wscale.shift',
  'tcp.options.sack_perm',
  'tcp.options.sack_le',
  'tcp.options.sack_re',
  'tcp.options.timestamp.tsval',
  'tcp.options.timestamp.tsecr',
];

describe('tshark decodes our IPv4, IPv6 and TCP encodings', () => {
  let dir = '';
  let decoded: Record<string, string[]>[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mptun-wire-tshark-'));
    const pcap = join(dir, 'wire.pcap');
    const writer = new PcapWriter(pcap);
    cases.forEach((c, i) => {
      writer.write(build(c), 1_700_000_000_000_000 + i);
    });
    writer.close();
    const args = ['-r', pcap, '-n', '-T', 'json', '-o', 'tcp.analyze_sequence_numbers:FALSE'];
    args.push(
      '-o',
      'tcp.relative_sequence_numbers:FALSE',
      '-o',
      'tcp.check_checksum:TRUE',
      '-o',
      'ip.check_checksum:TRUE',
    );
    for (const f of FIELDS) args.push('-e', f);
    const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    decoded = (JSON.parse(out) as { _source: { layers: Record<string, string[]> } }[]).map(
      (p) => p._source.layers,
    );
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sees every packet well-formed, with good checksums and no expert errors', () => {
    assert.equal(decoded.length, cases.length);
    cases.forEach((c, i) => {
      const l = decoded[i]!;
      assert.equal(l['_ws.malformed'], undefined, c.name);
      const severities = (l['_ws.expert.severity'] ?? []).map(Number);
      assert.ok(
        severities.every((s) => s < SEVERITY_ERROR),
        `${c.name}: ${l['_ws.expert']}`,
      );
      assert.deepEqual(l['tcp.checksum.status'], [CHECKSUM_GOOD], c.name);
      if (c.family === 4) assert.deepEqual(l['ip.checksum.status'], [CHECKSUM_GOOD], c.name);
    });
  });

  it('reads back the fields we encoded', () => {
    cases.forEach((c, i) => {
      const l = decoded[i]!;
      const eq = (field: string, expected: (string | number)[] | undefined) =>
        assert.deepEqual(l[field], expected?.map(String), `${c.name}: ${field}`);
      const h = c.tcp;
      eq('tcp.srcport', [h.srcPort]);
      eq('tcp.seq_raw', [h.seqNumber]);
      eq('tcp.ack_raw', [h.ackNumber]);
      eq('tcp.hdr_len', [tcpHeaderLength(h)]);
      eq('tcp.flags', [`0x${h.flags.toString(16).padStart(4, '0')}`]);
      eq('tcp.window_size_value', [h.window]);
      eq('tcp.len', [c.payload]);
      const of = <T extends TcpOption['type']>(type: T) =>
        h.options.filter((o): o is Extract<TcpOption, { type: T }> => o.type === type);
      const orNone = <T>(xs: T[]) => (xs.length ? xs : undefined);
      eq('tcp.options.mss_val', orNone(of('mss').map((o) => o.mss)));
      eq('tcp.options.wscale.shift', orNone(of('window-scale').map((o) => o.shift)));
      eq('tcp.options.timestamp.tsval', orNone(of('timestamps').map((o) => o.tsVal)));
      eq('tcp.options.timestamp.tsecr', orNone(of('timestamps').map((o) => o.tsEcr)));
      eq('tcp.options.sack_le', orNone(of('sack').flatMap((o) => o.blocks.map((b) => b.left))));
      eq('tcp.options.sack_re', orNone(of('sack').flatMap((o) => o.blocks.map((b) => b.right))));
      assert.equal(l['tcp.options.sack_perm'] !== undefined, of('sack-permitted').length > 0, c.name);
      if (c.family === 4) {
        eq('ip.hdr_len', [20 + (c.ipOptions?.length ?? 0)]);
        eq('ip.len', [build(c).length]);
        if (c.ipOptions) eq('ip.opt.type', ['148']);
      } else {
        eq('ipv6.tclass', ['0x00000028']);
        eq('ipv6.flow', ['0x0abcde']);
        eq('ipv6.plen', [build(c).length - 40]);
        if (c.ipOptions) eq('ipv6.dstopts.nxt', [6]);
      }
    });
  });
});
