import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeIpv4,
  type Ipv4Fields,
  ipv4FromString,
  ipv4HeaderChecksumOk,
  ipv4ToString,
  parseIpv4,
  tryIpv4FromString,
} from '../src/stack/wire/ipv4.js';

/**
 * `ip-packet` is only a reference decoder here: it is slow, IPv4-only, refuses IP options and
 * returns string addresses, so the stack never uses it (see src/stack/wire/ipv4.ts).
 */
interface IpPacketDecoded {
  version: number;
  ihl: number;
  dscp: number;
  ecn: number;
  length: number;
  identification: number;
  flags: number;
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  sourceIp: string;
  destinationIp: string;
  checksum: number;
  data: Uint8Array;
}
const ipPacket = createRequire(import.meta.url)('ip-packet') as {
  decode(state: { buffer: Uint8Array; start: number; end: number }): IpPacketDecoded;
};

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

/** IPv4 SYN with a TCP header of 28 bytes (the ip-packet package's own test fixture). */
const SYN = hex(
  '4500004000004000400626510a16001e0a16001efb311f900a7fd88600000000b0c2ffff97830000' +
    '020404ec010303060101080a9158fbf80000000004020000',
);
/** Captured from Linux MPTCP on loopback: 127.0.0.1 SYN with MP_CAPABLE. */
const KERNEL_SYN = hex(
  '450000402e02400040060eb47f0000017f00000181c21388b0abcdfd00000000b002ffd7fe340000' +
    '0204ffd70402080a674603ed000000000103030a1e040101',
);
/** IHL 6: a router alert option (RFC 2113), checksum computed independently; 4 payload bytes. */
const WITH_OPTIONS = hex('4600001c12344000010231e8c0a80001e0000016 94040000 11223344');

describe('IPv4 parse', () => {
  it('decodes a real SYN field by field', () => {
    const r = parseIpv4(SYN);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    const h = r.value;
    assert.equal(h.version, 4);
    assert.equal(h.ihl, 5);
    assert.equal(h.headerLength, 20);
    assert.equal(h.tos, 0);
    assert.equal(h.totalLength, 64);
    assert.equal(h.identification, 0);
    assert.equal(h.dontFragment, true);
    assert.equal(h.moreFragments, false);
    assert.equal(h.fragmentOffset, 0);
    assert.equal(h.ttl, 64);
    assert.equal(h.protocol, 6);
    assert.equal(h.checksum, 0x2651);
    assert.equal(ipv4ToString(h.src), '10.22.0.30');
    assert.equal(ipv4ToString(h.dst), '10.22.0.30');
    assert.equal(h.options.length, 0);
  });

  it('decodes a kernel-captured packet', () => {
    const r = parseIpv4(KERNEL_SYN);
    assert.ok(r.ok);
    assert.equal(r.value.identification, 0x2e02);
    assert.equal(r.value.src, 0x7f000001);
    assert.equal(r.value.dst, 0x7f000001);
  });

  it('keeps options as bytes and bounds the payload by totalLength', () => {
    const padded = new Uint8Array(WITH_OPTIONS.length + 6);
    padded.set(WITH_OPTIONS);
    const r = parseIpv4(padded);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.value.ihl, 6);
    assert.equal(r.value.headerLength, 24);
    assert.equal(r.value.totalLength, 28);
    assert.deepEqual([...r.value.options], [0x94, 0x04, 0x00, 0x00]);
    assert.equal(ipv4ToString(r.value.dst), '224.0.0.22');
  });

  it('parses at an offset (e.g. after a virtio-net header)', () => {
    const framed = new Uint8Array(10 + SYN.length);
    framed.set(SYN, 10);
    const r = parseIpv4(framed, 10);
    assert.ok(r.ok);
    assert.equal(r.value.totalLength, 64);
  });

  it('fails with a reason on every prefix shorter than the packet', () => {
    for (const packet of [SYN, KERNEL_SYN, WITH_OPTIONS]) {
      for (let n = 0; n < packet.length; n++) {
        const r = parseIpv4(packet.subarray(0, n));
        assert.equal(r.ok, false, `prefix ${n}`);
        assert.equal(r.ok ? '' : r.reason, 'ipv4.truncated', `prefix ${n}`);
      }
    }
  });

  it('rejects malformed headers with stable reasons', () => {
    // [what, bytes to overwrite as [index, value] pairs, expected reason]
    const cases: [string, [number, number][], string][] = [
      ['version 6', [[0, 0x65]], 'ipv4.bad-version'],
      ['IHL 4', [[0, 0x44]], 'ipv4.bad-ihl'],
      ['IHL 15 fits the buffer, so the checksum is wrong', [[0, 0x4f]], 'ipv4.bad-checksum'],
      [
        'total length < header',
        [
          [2, 0],
          [3, 19],
        ],
        'ipv4.bad-total-length',
      ],
      [
        'total length beyond the buffer',
        [
          [2, 0],
          [3, 65],
        ],
        'ipv4.truncated',
      ],
      ['bad checksum', [[11, 0x52]], 'ipv4.bad-checksum'],
      ['changed TTL', [[8, 1]], 'ipv4.bad-checksum'],
    ];
    for (const [name, patches, reason] of cases) {
      const b = SYN.slice();
      for (const [i, v] of patches) b[i] = v;
      const r = parseIpv4(b);
      assert.deepEqual(r, { ok: false, reason }, name);
    }
    const shortHeader = SYN.slice(0, 40);
    shortHeader[0] = 0x4f;
    assert.deepEqual(parseIpv4(shortHeader), { ok: false, reason: 'ipv4.truncated' });
  });

  it('can skip checksum verification, and verify separately', () => {
    const b = SYN.slice();
    b[11] = 0;
    assert.equal(parseIpv4(b, 0, false).ok, true);
    assert.equal(ipv4HeaderChecksumOk(b), false);
    assert.equal(ipv4HeaderChecksumOk(SYN), true);
    assert.equal(ipv4HeaderChecksumOk(SYN.subarray(0, 10)), false);
  });
});

describe('IPv4 encode', () => {
  it('re-encodes parsed fixtures byte for byte', () => {
    for (const packet of [SYN, KERNEL_SYN, WITH_OPTIONS]) {
      const r = parseIpv4(packet);
      assert.ok(r.ok);
      const out = new Uint8Array(r.value.headerLength);
      assert.equal(encodeIpv4(r.value, out, 0), r.value.headerLength);
      assert.deepEqual(out, packet.subarray(0, r.value.headerLength));
    }
  });

  const fieldsArb = (withOptions: boolean): fc.Arbitrary<Ipv4Fields> =>
    fc
      .record({
        tos: fc.nat(255),
        payload: fc.nat(200),
        identification: fc.nat(0xffff),
        dontFragment: fc.boolean(),
        moreFragments: fc.boolean(),
        fragmentOffset: fc.nat(0x1fff),
        ttl: fc.nat(255),
        protocol: fc.nat(255),
        src: fc.nat(0xffff_ffff),
        dst: fc.nat(0xffff_ffff),
        optionWords: withOptions ? fc.nat(10) : fc.constant(0),
      })
      .chain((f) =>
        fc.uint8Array({ minLength: f.optionWords * 4, maxLength: f.optionWords * 4 }).map((options) => ({
          tos: f.tos,
          totalLength: 20 + options.length + f.payload,
          identification: f.identification,
          dontFragment: f.dontFragment,
          moreFragments: f.moreFragments,
          fragmentOffset: f.fragmentOffset,
          ttl: f.ttl,
          protocol: f.protocol,
          src: f.src,
          dst: f.dst,
          options,
        })),
      );

  it('round-trips any header (property)', () => {
    fc.assert(
      fc.property(fieldsArb(true), (fields) => {
        const packet = new Uint8Array(fields.totalLength);
        const n = encodeIpv4(fields, packet, 0);
        assert.equal(n, 20 + fields.options.length);
        const r = parseIpv4(packet);
        assert.ok(r.ok, r.ok ? '' : r.reason);
        const { version, ihl, headerLength, checksum, ...rest } = r.value;
        assert.deepEqual(
          { ...rest, options: [...rest.options] },
          { ...fields, options: [...fields.options] },
        );
        assert.equal(version, 4);
        assert.equal(headerLength, n);
        assert.equal(ihl * 4, n);
        assert.equal(checksum, (packet[10]! << 8) | packet[11]!);
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with the ip-packet reference decoder (property, no options)', () => {
    fc.assert(
      fc.property(fieldsArb(false), (fields) => {
        const packet = new Uint8Array(fields.totalLength);
        encodeIpv4(fields, packet, 0);
        const ours = parseIpv4(packet);
        assert.ok(ours.ok);
        const ref = ipPacket.decode({ buffer: packet, start: 0, end: packet.length });
        const h = ours.value;
        assert.equal(ref.version, h.version);
        assert.equal(ref.ihl, h.ihl);
        assert.equal((ref.dscp << 2) | ref.ecn, h.tos);
        assert.equal(ref.length, h.totalLength);
        assert.equal(ref.identification, h.identification);
        assert.equal(ref.flags, (h.dontFragment ? 2 : 0) | (h.moreFragments ? 1 : 0));
        assert.equal(ref.fragmentOffset, h.fragmentOffset);
        assert.equal(ref.ttl, h.ttl);
        assert.equal(ref.protocol, h.protocol);
        assert.equal(ref.checksum, h.checksum);
        assert.equal(ref.sourceIp, ipv4ToString(h.src));
        assert.equal(ref.destinationIp, ipv4ToString(h.dst));
        assert.equal(ref.data.length, h.totalLength - h.headerLength);
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with ip-packet on the fixtures', () => {
    for (const packet of [SYN, KERNEL_SYN]) {
      const ours = parseIpv4(packet);
      assert.ok(ours.ok);
      const ref = ipPacket.decode({ buffer: packet, start: 0, end: packet.length });
      assert.equal(ref.sourceIp, ipv4ToString(ours.value.src));
      assert.equal(ref.checksum, ours.value.checksum);
      assert.equal(ref.identification, ours.value.identification);
    }
  });

  it('throws InvalidArgumentError on misuse', () => {
    const base = parseIpv4(SYN);
    assert.ok(base.ok);
    const out = new Uint8Array(64);
    const bad: Partial<Ipv4Fields>[] = [
      { options: new Uint8Array(3) },
      { options: new Uint8Array(44) },
      { totalLength: 19 },
      { totalLength: 70000 },
      { ttl: 256 },
      { fragmentOffset: 0x2000 },
      { src: -1 },
      { dst: 2 ** 32 },
      { identification: 1.5 },
    ];
    for (const patch of bad) {
      assert.throws(() => encodeIpv4({ ...base.value, ...patch }, out, 0), { code: 'MPTUN_ERR_INVALID_ARG' });
    }
    assert.throws(() => encodeIpv4(base.value, out, 50), { code: 'MPTUN_ERR_INVALID_ARG' });
  });
});

describe('IPv4 addresses', () => {
  it('convert between text and uint32', () => {
    assert.equal(ipv4FromString('10.22.0.30'), 0x0a16001e);
    assert.equal(ipv4FromString('255.255.255.255'), 0xffff_ffff);
    assert.equal(ipv4FromString('0.0.0.0'), 0);
    assert.equal(ipv4ToString(0xc0a80101), '192.168.1.1');
    for (const bad of [
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-4',
      ' 1.2.3.4',
      '1..3.4',
      'a.b.c.d',
      '',
    ]) {
      assert.equal(tryIpv4FromString(bad), undefined, bad);
      assert.throws(() => ipv4FromString(bad), { code: 'MPTUN_ERR_INVALID_ARG' });
    }
  });

  it('round-trip any address (property)', () => {
    fc.assert(fc.property(fc.nat(0xffff_ffff), (a) => assert.equal(ipv4FromString(ipv4ToString(a)), a)));
  });
});
