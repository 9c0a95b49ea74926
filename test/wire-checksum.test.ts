import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  finishChecksum,
  foldSum,
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  updateChecksum,
} from '../src/stack/wire/checksum.js';

/** The textbook RFC 1071 loop: big-endian 16-bit words, end-around carry, ones'-complement. */
function naiveChecksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i < end; i += 2) sum += (buf[i]! << 8) | (i + 1 < end ? buf[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

describe('internet checksum (RFC 1071)', () => {
  it('matches the worked example of RFC 1071 §3', () => {
    const data = hex('0001f203f4f5f6f7');
    assert.equal(foldSum(onesComplementSum(data)), 0xddf2);
    assert.equal(internetChecksum(data), 0x220d);
  });

  it('gives 0 over data that carries its own checksum, 0xffff over zeros', () => {
    const data = hex('0001f203f4f5f6f7220d');
    assert.equal(internetChecksum(data), 0);
    assert.equal(internetChecksum(new Uint8Array(100)), 0xffff);
    assert.equal(internetChecksum(new Uint8Array(0)), 0xffff);
  });

  it('pads an odd last byte with zero', () => {
    assert.equal(internetChecksum(hex('01')), ~0x0100 & 0xffff);
    assert.equal(internetChecksum(hex('0102 03')), ~(0x0102 + 0x0300) & 0xffff);
  });

  it('agrees with the naive loop at every alignment, length and initial sum', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 2000 }),
        fc.nat(7),
        fc.nat(),
        fc.nat(),
        fc.nat(0x3ffff),
        (data, shift, a, b, initial) => {
          // Place the data at every byte offset of an ArrayBuffer to exercise the 32-bit view.
          const backing = new Uint8Array(data.length + 8);
          backing.set(data, shift);
          const view = backing.subarray(shift, shift + data.length);
          const start = data.length === 0 ? 0 : a % data.length;
          const end = start + (data.length === start ? 0 : b % (data.length - start + 1));
          assert.equal(internetChecksum(view, start, end, initial), naiveChecksum(view, start, end, initial));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('is right past the accumulator reduction chunk (20 MB)', () => {
    const big = new Uint8Array(20 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = 0xff - (i % 7);
    assert.equal(internetChecksum(big, 1), naiveChecksum(big, 1, big.length));
    assert.equal(internetChecksum(big), naiveChecksum(big, 0, big.length));
  });

  it('keeps working when alternating between buffers (view cache)', () => {
    const a = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const b = Uint8Array.from({ length: 500 }, (_, i) => (i * 7) & 0xff);
    for (let k = 0; k < 3; k++) {
      assert.equal(internetChecksum(a, 3), naiveChecksum(a, 3, a.length));
      assert.equal(internetChecksum(b, 0, 401), naiveChecksum(b, 0, 401));
      assert.equal(internetChecksum(b.subarray(5)), naiveChecksum(b, 5, b.length));
    }
  });

  it('updates incrementally as RFC 1624 says', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 2, maxLength: 64 }),
        fc.nat(0xffff),
        fc.nat(),
        (data, word, at) => {
          const even = data.length - (data.length % 2);
          const i = (at % (even / 2)) * 2;
          const before = internetChecksum(data);
          const old = (data[i]! << 8) | data[i + 1]!;
          data[i] = word >>> 8;
          data[i + 1] = word & 0xff;
          const after = internetChecksum(data);
          // Both zero encodings are equivalent in ones'-complement arithmetic.
          const updated = updateChecksum(before, old, word);
          assert.ok(updated === after || (updated ^ after) === 0xffff, `${updated} vs ${after}`);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('finishChecksum of a folded sum is its complement', () => {
    assert.equal(finishChecksum(0xddf2), 0x220d);
    assert.equal(finishChecksum(0x1ddf1), 0x220d);
  });
});

describe('pseudo-header sums', () => {
  it('validate a real IPv4 TCP SYN (the ip-packet test fixture, 10.22.0.30 to itself)', () => {
    const packet = hex(
      '4500004000004000400626510a16001e0a16001efb311f900a7fd88600000000b0c2ffff97830000' +
        '020404ec010303060101080a9158fbf80000000004020000',
    );
    const src = 0x0a16001e;
    const tcpLength = packet.length - 20;
    assert.equal(internetChecksum(packet, 20, packet.length, pseudoHeaderSumV4(src, src, 6, tcpLength)), 0);
    // A wrong address no longer validates.
    assert.notEqual(
      internetChecksum(packet, 20, packet.length, pseudoHeaderSumV4(src + 1, src, 6, tcpLength)),
      0,
    );
  });

  it('IPv6 pseudo-header is the sum of addresses, 32-bit length and next header', () => {
    const src = hex('20010db8000000000000000000000001');
    const dst = hex('20010db8000000000000000000000002');
    const expected = 0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 2 + 0x0001 + 0x0002 + 6;
    assert.equal(foldSum(pseudoHeaderSumV6(src, dst, 6, 0x10002)), foldSum(expected));
    // Offsets let the addresses be read in place from a packet.
    const packet = new Uint8Array(40);
    packet.set(src, 8);
    packet.set(dst, 24);
    assert.equal(
      pseudoHeaderSumV6(packet, packet, 6, 0x10002, 8, 24),
      pseudoHeaderSumV6(src, dst, 6, 0x10002),
    );
  });
});
