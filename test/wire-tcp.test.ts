import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { MptcpOption } from '../src/stack/wire/mptcp-options.js';
import {
  encodeTcp,
  fillTcpChecksumV4,
  fillTcpChecksumV6,
  findTcpOption,
  parseTcp,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  type TcpFields,
  type TcpHeader,
  type TcpOption,
  tcpHeaderLength,
  tcpOptionSpaceLeft,
  tcpOptionsLength,
  verifyTcpChecksumV4,
  verifyTcpChecksumV6,
} from '../src/stack/wire/tcp.js';

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

function tcpOptionsLengthUnpadded(options: TcpOption[]): number {
  return 40 - tcpOptionSpaceLeft(options);
}

function parseOk(buf: Uint8Array, start?: number, end?: number): TcpHeader {
  const r = parseTcp(buf, start, end);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

/** The ip-packet package's fixture: IPv4 10.22.0.30 -> itself, a SYN with a valid checksum. */
const SYN_PACKET = hex(
  '4500004000004000400626510a16001e0a16001e' +
    'fb311f900a7fd88600000000b0c2ffff97830000020404ec010303060101080a9158fbf80000000004020000',
);
const SYN_ADDR = 0x0a16001e;
/** Linux MPTCP over loopback (captured): SYN with MSS, SACK-permitted, timestamps, WS and MP_CAPABLE. */
const KERNEL_SYN = hex(
  '81c21388b0abcdfd00000000b002ffd7fe340000 0204ffd7 0402 080a674603ed00000000 01 03030a 1e040101',
);
/** Linux MPTCP (captured): data segment "HELLO MPTCP" with timestamps and a DSS (DATA_ACK + mapping). */
const KERNEL_DSS_PACKET = hex(
  '4500005b13db4000400628c07f0000017f000001' +
    '138881c2f98a32d7b0abce09f0180040fe4f0000 0101080a049655ef674603ed ' +
    '1e1a200f391255702ced1a0792ff631c43f2389000000001000b 0101 48454c4c4f204d50544350',
);
/** Linux MPTCP (captured): DATA_FIN with its 1-byte mapping. */
const KERNEL_DATA_FIN = hex(
  '81c21388b0abce09f98a32e2f0100040fe440000 0101080a674603ed049655ef ' +
    '1e1a201f92ff631c43f2389b391255702ced1a070000000000010101',
);
/** Linux MPTCP over ::1 (captured), its checksum recomputed independently (0x145f). */
const KERNEL_SYN_V6_PACKET = hex(
  '6006bcab002c06400000000000000000000000000000000100000000000000000000000000000001' +
    'b2321388e060614000000000b002ffc4145f00000204ffc40402080a24bfdea2000000000103030a1e040101',
);

describe('TCP parse', () => {
  it('decodes a SYN field by field, EOL and padding included', () => {
    const h = parseOk(SYN_PACKET, 20);
    assert.equal(h.srcPort, 0xfb31);
    assert.equal(h.dstPort, 8080);
    assert.equal(h.seqNumber, 0x0a7fd886);
    assert.equal(h.ackNumber, 0);
    assert.equal(h.dataOffset, 11);
    assert.equal(h.headerLength, 44);
    assert.equal(h.flags, TCP_SYN | 0x0c0); // SYN with ECE and CWR: an ECN setup SYN (RFC 3168)
    assert.equal(h.window, 0xffff);
    assert.equal(h.checksum, 0x9783);
    assert.equal(h.urgentPointer, 0);
    assert.deepEqual(h.options, [
      { type: 'mss', mss: 1260 },
      { type: 'nop' },
      { type: 'window-scale', shift: 6 },
      { type: 'nop' },
      { type: 'nop' },
      { type: 'timestamps', tsVal: 0x9158fbf8, tsEcr: 0 },
      { type: 'sack-permitted' },
      { type: 'eol' },
    ]);
  });

  it('decodes a kernel MPTCP SYN through the MPTCP codec', () => {
    const h = parseOk(KERNEL_SYN);
    assert.equal(h.flags, TCP_SYN);
    assert.deepEqual(
      h.options.map((o) => o.type),
      ['mss', 'sack-permitted', 'timestamps', 'nop', 'window-scale', 'mptcp'],
    );
    const mp = findTcpOption(h.options, 'mptcp');
    assert.ok(mp);
    assert.equal(mp.option.subtype, 'mp_capable');
    assert.equal(findTcpOption(h.options, 'window-scale')?.shift, 10);
  });

  it('decodes a data segment with timestamps and DSS, payload after the header', () => {
    const h = parseOk(KERNEL_DSS_PACKET, 20);
    assert.equal(h.flags, TCP_PSH | TCP_ACK);
    assert.equal(h.headerLength, 60);
    assert.equal(Buffer.from(KERNEL_DSS_PACKET.subarray(20 + h.headerLength)).toString(), 'HELLO MPTCP');
    const mp = findTcpOption(h.options, 'mptcp');
    assert.ok(mp && mp.option.subtype === 'dss');
    assert.equal(mp.option.dataAck, 0x391255702ced1a07n);
    assert.equal(mp.option.mapping?.dsn, 0x92ff631c43f23890n);
    assert.equal(mp.option.mapping?.ssn, 1);
    assert.equal(mp.option.mapping?.dataLevelLength, 11);
    assert.deepEqual(findTcpOption(h.options, 'timestamps'), {
      type: 'timestamps',
      tsVal: 0x049655ef,
      tsEcr: 0x674603ed,
    });
  });

  it('parses a bounded range of a larger buffer', () => {
    const h = parseOk(KERNEL_DSS_PACKET, 20, 80);
    assert.equal(h.headerLength, 60);
    assert.deepEqual(parseTcp(KERNEL_DSS_PACKET, 20, 79), { ok: false, reason: 'tcp.truncated' });
    assert.deepEqual(parseTcp(KERNEL_DSS_PACKET, 20, 500), { ok: false, reason: 'tcp.truncated' });
  });

  it('fails with tcp.truncated on every prefix shorter than the header', () => {
    for (const segment of [
      SYN_PACKET.subarray(20),
      KERNEL_SYN,
      KERNEL_DSS_PACKET.subarray(20),
      KERNEL_DATA_FIN,
    ]) {
      const full = parseOk(segment);
      for (let n = 0; n < full.headerLength; n++) {
        assert.deepEqual(
          parseTcp(segment.subarray(0, n)),
          { ok: false, reason: 'tcp.truncated' },
          `prefix ${n}`,
        );
      }
    }
  });

  /** A 20-byte header with data offset to fit `options` (hex, padded by the caller). */
  function withOptions(options: string): Uint8Array {
    const opt = hex(options);
    const seg = new Uint8Array(20 + opt.length);
    seg.set(hex('04d2005000000001000000000010ffff00000000'));
    seg[12] = ((seg.length / 4) << 4) | 0;
    seg[13] = TCP_ACK;
    seg.set(opt, 20);
    return seg;
  }

  it('rejects malformed headers and options with stable reasons', () => {
    const cases: [string, Uint8Array, string][] = [
      [
        'data offset 4',
        (() => {
          const s = withOptions('');
          s[12] = 0x40;
          return s;
        })(),
        'tcp.bad-data-offset',
      ],
      [
        'data offset 0',
        (() => {
          const s = withOptions('');
          s[12] = 0x00;
          return s;
        })(),
        'tcp.bad-data-offset',
      ],
      [
        'data offset beyond the buffer',
        (() => {
          const s = withOptions('');
          s[12] = 0x60;
          return s;
        })(),
        'tcp.truncated',
      ],
      ['option length 0', withOptions('fe000000'), 'tcp.bad-option-length'],
      ['option length 1', withOptions('fe010000'), 'tcp.bad-option-length'],
      ['option overrunning the header', withOptions('0101fe05'), 'tcp.option-overrun'],
      ['kind in the last byte', withOptions('010101fe'), 'tcp.option-truncated'],
      ['MSS length 3', withOptions('02030500'), 'tcp.bad-mss-length'],
      ['MSS length 5', withOptions('0205050000000000'), 'tcp.bad-mss-length'],
      ['window scale length 4', withOptions('03040700'), 'tcp.bad-window-scale-length'],
      ['SACK-permitted length 3', withOptions('04030000'), 'tcp.bad-sack-permitted-length'],
      [
        'timestamps length 8',
        withOptions('0808000000010000000200000'.padEnd(24, '0')),
        'tcp.bad-timestamps-length',
      ],
      ['SACK length 2', withOptions('05020000'), 'tcp.bad-sack-length'],
      ['SACK length 9', withOptions(`0509${'00'.repeat(7)}000000`), 'tcp.bad-sack-length'],
      ['SACK length 11', withOptions(`050b${'00'.repeat(9)}00`), 'tcp.bad-sack-length'],
    ];
    for (const [name, segment, reason] of cases) {
      assert.deepEqual(parseTcp(segment), { ok: false, reason }, name);
    }
  });

  it('keeps SACK blocks (1 to 4) and unknown options', () => {
    for (let n = 1; n <= 4; n++) {
      const blocks = Array.from({ length: n }, (_, i) => ({
        left: 0xfffffff0 + i * 100,
        right: 0xfffffff0 + i * 100 + 50,
      }));
      const fields: TcpFields = {
        srcPort: 1,
        dstPort: 2,
        seqNumber: 3,
        ackNumber: 4,
        flags: TCP_ACK,
        window: 5,
        options: [
          { type: 'nop' },
          { type: 'nop' },
          { type: 'sack', blocks: blocks.map((b) => ({ left: b.left >>> 0, right: b.right >>> 0 })) },
        ],
      };
      const out = new Uint8Array(tcpHeaderLength(fields));
      encodeTcp(fields, out);
      assert.deepEqual(parseOk(out).options, fields.options);
    }
    const h = parseOk(withOptions('fe04abcd 0101 fd02'));
    assert.deepEqual(h.options, [
      { type: 'unknown', kind: 0xfe, data: hex('abcd') },
      { type: 'nop' },
      { type: 'nop' },
      { type: 'unknown', kind: 0xfd, data: new Uint8Array(0) },
    ]);
  });

  it('carries an MPTCP option its codec rejects as a typed failure, header still usable', () => {
    // MP_CAPABLE of length 5: no such form.
    const segment = withOptions('1e050101ff 010101');
    const h = parseOk(segment);
    const bad = h.options[0];
    assert.ok(bad && bad.type === 'mptcp-invalid');
    assert.ok(bad.reason.startsWith('mptcp.'), bad.reason);
    assert.deepEqual(bad.raw, hex('1e050101ff'));
    // The raw bytes are a copy: the receive buffer may be reused.
    segment[20] = 0;
    assert.equal(bad.raw[0], 0x1e);
    const out = new Uint8Array(h.headerLength);
    encodeTcp(h, out);
    assert.deepEqual(out, withOptions('1e050101ff 010101'));
    // A truncated MPTCP option (length 3 with no room for a subtype body) is also typed.
    const short = parseOk(withOptions('1e0201 00'));
    assert.equal(short.options[0]?.type, 'mptcp-invalid');
  });
});

describe('TCP encode', () => {
  it('re-encodes captured headers byte for byte', () => {
    for (const [segment, start] of [
      [SYN_PACKET, 20],
      [KERNEL_SYN, 0],
      [KERNEL_DSS_PACKET, 20],
      [KERNEL_DATA_FIN, 0],
      [KERNEL_SYN_V6_PACKET, 40],
    ] as const) {
      const h = parseOk(segment, start);
      assert.equal(tcpHeaderLength(h), h.headerLength);
      const out = new Uint8Array(h.headerLength + 4);
      assert.equal(encodeTcp(h, out, 2), h.headerLength);
      assert.deepEqual(out.subarray(2, 2 + h.headerLength), segment.subarray(start, start + h.headerLength));
    }
  });

  it('pads options to 4 bytes with EOL and counts option space', () => {
    const options: TcpOption[] = [
      { type: 'mss', mss: 1460 },
      { type: 'window-scale', shift: 7 },
    ];
    assert.equal(tcpOptionsLength(options), 8);
    assert.equal(tcpOptionSpaceLeft(options), 33);
    const fields: TcpFields = {
      srcPort: 1,
      dstPort: 2,
      seqNumber: 0,
      ackNumber: 0,
      flags: TCP_SYN,
      window: 100,
      options,
    };
    const out = new Uint8Array(28).fill(0xaa);
    assert.equal(encodeTcp(fields, out), 28);
    assert.deepEqual(out.subarray(20), hex('020405b4 03030700'));
    assert.equal(out[12], 0x70);
    assert.deepEqual(parseOk(out).options, [...options, { type: 'eol' }]);
  });

  it('throws OptionSpaceError beyond 40 bytes, InvalidArgumentError on other misuse', () => {
    const base: TcpFields = {
      srcPort: 1,
      dstPort: 2,
      seqNumber: 0,
      ackNumber: 0,
      flags: TCP_ACK,
      window: 0,
      options: [],
    };
    const out = new Uint8Array(80);
    const ts: TcpOption = { type: 'timestamps', tsVal: 1, tsEcr: 2 };
    assert.throws(() => encodeTcp({ ...base, options: [ts, ts, ts, ts, { type: 'nop' }] }, out), {
      code: 'MPTUN_ERR_OPTION_SPACE',
    });
    const misuse: Partial<TcpFields>[] = [
      { srcPort: 65536 },
      { seqNumber: -1 },
      { ackNumber: 2 ** 32 },
      { flags: 0x1000 },
      { window: 1.5 },
      { options: [{ type: 'sack', blocks: [] }] },
      { options: [{ type: 'mss', mss: 70000 }] },
      { options: [{ type: 'unknown', kind: 1, data: new Uint8Array(0) }] },
    ];
    for (const patch of misuse) {
      assert.throws(
        () => encodeTcp({ ...base, ...patch }, out),
        { code: 'MPTUN_ERR_INVALID_ARG' },
        JSON.stringify(patch),
      );
    }
    assert.throws(() => encodeTcp(base, new Uint8Array(19)), { code: 'MPTUN_ERR_INVALID_ARG' });
  });

  const mptcpSamples: MptcpOption[] = [KERNEL_SYN, KERNEL_DSS_PACKET.subarray(20), KERNEL_DATA_FIN].flatMap(
    (s) => parseOk(s).options.flatMap((o) => (o.type === 'mptcp' ? [o.option] : [])),
  );

  const optionArb: fc.Arbitrary<TcpOption> = fc.oneof(
    fc.constant<TcpOption>({ type: 'nop' }),
    fc.nat(0xffff).map<TcpOption>((mss) => ({ type: 'mss', mss })),
    fc.nat(255).map<TcpOption>((shift) => ({ type: 'window-scale', shift })),
    fc.constant<TcpOption>({ type: 'sack-permitted' }),
    fc
      .array(
        fc.record({ left: fc.nat(0xffff_ffff), right: fc.nat(0xffff_ffff) }, { noNullPrototype: true }),
        {
          minLength: 1,
          maxLength: 4,
        },
      )
      .map<TcpOption>((blocks) => ({ type: 'sack', blocks })),
    fc
      .record({ tsVal: fc.nat(0xffff_ffff), tsEcr: fc.nat(0xffff_ffff) })
      .map<TcpOption>((t) => ({ type: 'timestamps', ...t })),
    fc.constantFrom(...mptcpSamples).map<TcpOption>((option) => ({ type: 'mptcp', option })),
    fc
      .record({
        kind: fc.integer({ min: 6, max: 255 }).filter((k) => k !== 8 && k !== 30),
        data: fc.uint8Array({ maxLength: 8 }),
      })
      .map<TcpOption>((u) => ({ type: 'unknown', ...u })),
  );

  it('round-trips any header whose options fit (property)', () => {
    const fieldsArb = fc
      .record({
        srcPort: fc.nat(0xffff),
        dstPort: fc.nat(0xffff),
        seqNumber: fc.nat(0xffff_ffff),
        ackNumber: fc.nat(0xffff_ffff),
        flags: fc.nat(0xfff),
        window: fc.nat(0xffff),
        checksum: fc.nat(0xffff),
        urgentPointer: fc.nat(0xffff),
        options: fc.array(optionArb, { maxLength: 8 }),
        eol: fc.boolean(),
      })
      .filter((f) => tcpOptionsLength(f.options) + (f.eol ? 1 : 0) <= 40);
    fc.assert(
      fc.property(fieldsArb, ({ eol, ...generated }) => {
        // Never mutate generated values: fast-check replays them while shrinking.
        const fields = {
          ...generated,
          options: eol ? [...generated.options, { type: 'eol' as const }] : generated.options,
        };
        const length = tcpHeaderLength(fields);
        const out = new Uint8Array(length + 10);
        assert.equal(encodeTcp(fields, out), length);
        const h = parseOk(out, 0, length);
        // Padding is EOL bytes, which parse as one 'eol' entry: compare without them.
        const withoutEol = (options: TcpOption[]) => options.filter((o) => o.type !== 'eol');
        const { dataOffset, headerLength, ...rest } = h;
        assert.equal(headerLength, length);
        assert.equal(dataOffset * 4, length);
        assert.deepEqual(withoutEol(rest.options), withoutEol(fields.options));
        const parsedEols = rest.options.length - withoutEol(rest.options).length;
        assert.equal(parsedEols, eol || length - 20 > tcpOptionsLengthUnpadded(fields.options) ? 1 : 0);
        assert.deepEqual({ ...rest, options: [] }, { ...fields, options: [] });
        // And the bytes are stable: encoding the parsed header gives the same bytes.
        const again = new Uint8Array(length);
        encodeTcp(h, again);
        assert.deepEqual(again, out.subarray(0, length));
      }),
      { numRuns: 3000, endOnFailure: true },
    );
  });
});

describe('TCP checksum', () => {
  it('verifies and recomputes an IPv4 checksum', () => {
    const packet = SYN_PACKET.slice();
    assert.ok(verifyTcpChecksumV4(packet, 20, packet.length, SYN_ADDR, SYN_ADDR));
    assert.ok(!verifyTcpChecksumV4(packet, 20, packet.length, SYN_ADDR, SYN_ADDR + 1));
    packet[36] = 0;
    packet[37] = 0;
    assert.ok(!verifyTcpChecksumV4(packet, 20, packet.length, SYN_ADDR, SYN_ADDR));
    assert.equal(fillTcpChecksumV4(packet, 20, packet.length, SYN_ADDR, SYN_ADDR), 0x9783);
    assert.deepEqual(packet, SYN_PACKET);
  });

  it('fills the checksum of a kernel data segment (loopback captures carry a partial one)', () => {
    const packet = KERNEL_DSS_PACKET.slice();
    assert.ok(!verifyTcpChecksumV4(packet, 20, packet.length, 0x7f000001, 0x7f000001));
    // 0xa59f was computed independently of this code.
    assert.equal(fillTcpChecksumV4(packet, 20, packet.length, 0x7f000001, 0x7f000001), 0xa59f);
    assert.ok(verifyTcpChecksumV4(packet, 20, packet.length, 0x7f000001, 0x7f000001));
  });

  it('verifies and recomputes an IPv6 checksum', () => {
    const packet = KERNEL_SYN_V6_PACKET.slice();
    const src = packet.subarray(8, 24);
    const dst = packet.subarray(24, 40);
    assert.ok(verifyTcpChecksumV6(packet, 40, packet.length, src, dst));
    packet[50] = packet[50]! ^ 1;
    assert.ok(!verifyTcpChecksumV6(packet, 40, packet.length, src, dst));
    packet[50] = packet[50]! ^ 1;
    packet[56] = 0;
    packet[57] = 0;
    assert.equal(fillTcpChecksumV6(packet, 40, packet.length, src, dst), 0x145f);
    assert.deepEqual(packet, KERNEL_SYN_V6_PACKET);
  });
});
