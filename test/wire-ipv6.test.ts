import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeIpv6,
  type Ipv6Fields,
  ipv6FromString,
  ipv6ToString,
  parseIpv6,
  tryIpv6FromString,
} from '../src/stack/wire/ipv6.js';

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

/** Captured from Linux MPTCP on loopback: ::1 SYN with MP_CAPABLE (44 bytes of TCP). */
const KERNEL_SYN = hex(
  '6006bcab002c06400000000000000000000000000000000100000000000000000000000000000001' +
    'b2321388e060614000000000b002ffc4003400000204ffc40402080a24bfdea2000000000103030a1e040101',
);

const SRC = '20010db8000000000000000000000001';
const DST = '20010db8000000000000000000000002';

/** A fixed header with `nextHeader` and `rest` after it (payload length from `rest`). */
function packet(nextHeader: number, rest: string): Uint8Array {
  const body = hex(rest);
  const h = hex(`60000000 0000 ${nextHeader.toString(16).padStart(2, '0')} 40 ${SRC} ${DST}`);
  h[4] = body.length >>> 8;
  h[5] = body.length & 0xff;
  const out = new Uint8Array(40 + body.length);
  out.set(h);
  out.set(body, 40);
  return out;
}

const TCP20 = '04d2 0050 00000001 00000000 5002 ffff 0000 0000';

describe('IPv6 parse', () => {
  it('decodes a kernel-captured SYN', () => {
    const r = parseIpv6(KERNEL_SYN);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    const h = r.value;
    assert.equal(h.version, 6);
    assert.equal(h.trafficClass, 0);
    assert.equal(h.flowLabel, 0x6bcab);
    assert.equal(h.payloadLength, 44);
    assert.equal(h.totalLength, 84);
    assert.equal(h.nextHeader, 6);
    assert.equal(h.protocol, 6);
    assert.equal(h.payloadOffset, 40);
    assert.equal(h.hopLimit, 64);
    assert.equal(ipv6ToString(h.src), '::1');
    assert.equal(ipv6ToString(h.dst), '::1');
    assert.equal(h.fragment, null);
  });

  it('decodes traffic class and flow label bits', () => {
    const p = packet(6, TCP20);
    p[0] = 0x6a;
    p[1] = 0xbc;
    p[2] = 0xde;
    p[3] = 0xf0;
    const r = parseIpv6(p);
    assert.ok(r.ok);
    assert.equal(r.value.trafficClass, 0xab);
    assert.equal(r.value.flowLabel, 0xcdef0);
  });

  it('walks hop-by-hop, destination options, routing and AH to the upper layer', () => {
    const p = packet(
      0,
      // hop-by-hop, len 0 (8 bytes): next = dest options (60); PadN
      '3c00 0104 00000000' +
        // destination options, len 1 (16 bytes): next = routing (43)
        '2b01 010c 000000000000000000000000' +
        // routing, len 0: next = AH (51)
        '3300 0000 00000000' +
        // AH, payload len 4 -> (4+2)*4 = 24 bytes: next = TCP
        `0604 0000 00000001 00000001 ${'00'.repeat(12)}` +
        TCP20,
    );
    const r = parseIpv6(p);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.value.nextHeader, 0);
    assert.equal(r.value.protocol, 6);
    assert.equal(r.value.payloadOffset, 40 + 8 + 16 + 8 + 24);
    assert.equal(r.value.fragment, null);
  });

  it('reports a first fragment and walks into it, stops at a later one', () => {
    const first = parseIpv6(packet(44, `0600 0001 12345678 ${TCP20}`));
    assert.ok(first.ok);
    assert.deepEqual(first.value.fragment, {
      fragmentOffset: 0,
      moreFragments: true,
      identification: 0x12345678,
    });
    assert.equal(first.value.protocol, 6);
    assert.equal(first.value.payloadOffset, 48);
    const later = parseIpv6(packet(44, `3c00 00a8 00000009 ${'ab'.repeat(16)}`));
    assert.ok(later.ok);
    assert.deepEqual(later.value.fragment, { fragmentOffset: 21, moreFragments: false, identification: 9 });
    // The next header names the first fragment's content; the data here is not a header.
    assert.equal(later.value.protocol, 60);
    assert.equal(later.value.payloadOffset, 48);
  });

  it('stops at no-next-header and at unknown values', () => {
    const none = parseIpv6(packet(59, ''));
    assert.ok(none.ok);
    assert.equal(none.value.protocol, 59);
    assert.equal(none.value.payloadOffset, 40);
    const esp = parseIpv6(packet(50, 'deadbeef'));
    assert.ok(esp.ok);
    assert.equal(esp.value.protocol, 50);
  });

  it('fails with a reason on every prefix shorter than the packet', () => {
    const p = packet(0, `3c00 0104 00000000 2c00 0000 0000 0000 0600 0000 00000001 ${TCP20}`);
    assert.ok(parseIpv6(p).ok);
    for (const full of [KERNEL_SYN, p]) {
      for (let n = 0; n < full.length; n++) {
        const r = parseIpv6(full.subarray(0, n));
        assert.deepEqual(r, { ok: false, reason: 'ipv6.truncated' }, `prefix ${n}`);
      }
    }
  });

  it('rejects malformed packets with stable reasons', () => {
    const cases: [string, Uint8Array, string][] = [
      [
        'version 4',
        (() => {
          const p = packet(6, TCP20);
          p[0] = 0x45;
          return p;
        })(),
        'ipv6.bad-version',
      ],
      [
        'hop-by-hop after another header',
        packet(60, `0000 0104 00000000 0600 0104 00000000`),
        'ipv6.misplaced-hop-by-hop',
      ],
      ['extension beyond the payload length', packet(60, '0601 0000 00000000'), 'ipv6.extension-truncated'],
      ['extension with no room for its length byte', packet(60, '06'), 'ipv6.extension-truncated'],
      ['fragment header cut short', packet(44, '0600 0000'), 'ipv6.extension-truncated'],
      [
        'two fragment headers',
        packet(44, '2c00 0000 00000001 0600 0000 00000001'),
        'ipv6.duplicate-fragment-header',
      ],
      [
        'seventeen extension headers',
        packet(60, `${'3c00 0104 00000000'.repeat(16)}0600 0104 00000000`),
        'ipv6.too-many-extension-headers',
      ],
    ];
    for (const [name, p, reason] of cases) assert.deepEqual(parseIpv6(p), { ok: false, reason }, name);
  });

  it('ignores link padding after the payload and parses at an offset', () => {
    const p = packet(6, TCP20);
    const framed = new Uint8Array(p.length + 16);
    framed.set(p, 4);
    const r = parseIpv6(framed, 4);
    assert.ok(r.ok);
    assert.equal(r.value.totalLength, 60);
    assert.equal(ipv6ToString(r.value.src), '2001:db8::1');
  });
});

describe('IPv6 encode', () => {
  it('re-encodes the fixed header byte for byte', () => {
    const r = parseIpv6(KERNEL_SYN);
    assert.ok(r.ok);
    const out = new Uint8Array(40);
    assert.equal(encodeIpv6(r.value, out, 0), 40);
    assert.deepEqual(out, KERNEL_SYN.subarray(0, 40));
  });

  it('round-trips any fixed header (property)', () => {
    const arb = fc.record({
      trafficClass: fc.nat(255),
      flowLabel: fc.nat(0xfffff),
      payloadLength: fc.nat(300),
      nextHeader: fc.constantFrom(6, 17, 58, 59),
      hopLimit: fc.nat(255),
      src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    });
    fc.assert(
      fc.property(arb, (fields: Ipv6Fields) => {
        const p = new Uint8Array(40 + fields.payloadLength);
        encodeIpv6(fields, p, 0);
        const r = parseIpv6(p);
        assert.ok(r.ok, r.ok ? '' : r.reason);
        for (const key of ['trafficClass', 'flowLabel', 'payloadLength', 'nextHeader', 'hopLimit'] as const) {
          assert.equal(r.value[key], fields[key], key);
        }
        assert.deepEqual([...r.value.src], [...fields.src]);
        assert.deepEqual([...r.value.dst], [...fields.dst]);
      }),
      { numRuns: 1000 },
    );
  });

  it('throws InvalidArgumentError on misuse', () => {
    const base: Ipv6Fields = {
      trafficClass: 0,
      flowLabel: 0,
      payloadLength: 0,
      nextHeader: 6,
      hopLimit: 64,
      src: new Uint8Array(16),
      dst: new Uint8Array(16),
    };
    const out = new Uint8Array(40);
    for (const patch of [
      { flowLabel: 0x100000 },
      { trafficClass: 256 },
      { payloadLength: -1 },
      { src: new Uint8Array(4) },
    ]) {
      assert.throws(() => encodeIpv6({ ...base, ...patch }, out, 0), { code: 'MPTUN_ERR_INVALID_ARG' });
    }
    assert.throws(() => encodeIpv6(base, out, 1), { code: 'MPTUN_ERR_INVALID_ARG' });
  });
});

describe('IPv6 addresses', () => {
  it('print in the canonical form of RFC 5952', () => {
    const cases: [string, string][] = [
      ['20010db8000000000000000000020001', '2001:db8::2:1'],
      ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
      ['20010000000000010000000000000001', '2001:0:0:1::1'],
      ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
      ['00000000000000000000000000000000', '::'],
      ['00000000000000000000000000000001', '::1'],
      ['00010000000000000000000000000000', '1::'],
      ['00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
      ['fe80000000000000abcdef0123456789', 'fe80::abcd:ef01:2345:6789'],
    ];
    for (const [bytes, text] of cases) {
      assert.equal(ipv6ToString(hex(bytes)), text);
      assert.deepEqual(ipv6FromString(text), hex(bytes), text);
    }
  });

  it('parse the other spellings RFC 4291 allows', () => {
    assert.deepEqual(ipv6FromString('2001:DB8:0:0:0:0:2:1'), hex('20010db8000000000000000000020001'));
    assert.deepEqual(ipv6FromString('2001:0db8::0002:0001'), hex('20010db8000000000000000000020001'));
    assert.deepEqual(ipv6FromString('::192.0.2.1'), hex('000000000000000000000000c0000201'));
    assert.deepEqual(ipv6FromString('1:2:3:4:5:6:7::'), hex('00010002000300040005000600070000'));
    assert.deepEqual(ipv6FromString('1:2:3:4:5:6:1.2.3.4'), hex('00010002000300040005000601020304'));
  });

  it('refuse malformed text', () => {
    const bad = [
      '',
      ':',
      ':::',
      '1::2::3',
      '12345::',
      'g::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '::1%eth0',
      ':1::',
      '1:',
      '1.2.3.4::',
      '::1.2.3',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::ffff:256.1.1.1',
      '1:2:3:4:5:6:7:8::',
    ];
    for (const text of bad) {
      assert.equal(tryIpv6FromString(text), undefined, text);
      assert.throws(() => ipv6FromString(text), { code: 'MPTUN_ERR_INVALID_ARG' });
    }
  });

  it('round-trip and match the WHATWG URL serializer (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 }),
        (groups) => {
          const bytes = new Uint8Array(16);
          groups.forEach((g, i) => {
            bytes[i * 2] = g >>> 8;
            bytes[i * 2 + 1] = g & 0xff;
          });
          const text = ipv6ToString(bytes);
          assert.deepEqual(ipv6FromString(text), bytes);
          const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
          if (!mapped) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
