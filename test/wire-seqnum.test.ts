import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  dsnAdd,
  dsnDiff,
  dsnLe,
  dsnLow32,
  dsnLt,
  expandDsn32,
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqInRange,
  seqInWindow,
  seqLe,
  seqLt,
  seqMax,
  seqMin,
  seqRangesOverlap,
  seqSize,
} from '../src/stack/wire/seqnum.js';

const U32 = 0x1_0000_0000;
const U64 = 1n << 64n;

describe('32-bit sequence numbers', () => {
  it('compare across the wrap', () => {
    assert.ok(seqLt(0xffff_fff0, 0x10));
    assert.ok(seqGt(0x10, 0xffff_fff0));
    assert.ok(seqLe(5, 5) && seqGe(5, 5) && !seqLt(5, 5) && !seqGt(5, 5));
    assert.equal(seqAdd(0xffff_fff0, 0x20), 0x10);
    assert.equal(seqAdd(0x10, -0x20), 0xffff_fff0);
    assert.equal(seqDiff(0x10, 0xffff_fff0), 0x20);
    assert.equal(seqDiff(0xffff_fff0, 0x10), -0x20);
    assert.equal(seqSize(0xffff_fff0, 0x10), 0x20);
    assert.equal(seqMax(0xffff_fff0, 0x10), 0x10);
    assert.equal(seqMin(0xffff_fff0, 0x10), 0xffff_fff0);
  });

  it('ranges and windows wrap too', () => {
    assert.ok(seqInRange(0xffff_ffff, 0xffff_fff0, 0x10));
    assert.ok(seqInRange(0x0f, 0xffff_fff0, 0x10));
    assert.ok(!seqInRange(0x10, 0xffff_fff0, 0x10));
    assert.ok(!seqInRange(7, 7, 7));
    assert.ok(seqInWindow(3, 0xffff_fffe, 6));
    assert.ok(!seqInWindow(4, 0xffff_fffe, 6));
    assert.ok(seqRangesOverlap(0xffff_fff0, 0x10, 0x0f, 0x20));
    assert.ok(!seqRangesOverlap(0xffff_fff0, 0x10, 0x10, 0x20));
    assert.ok(!seqRangesOverlap(5, 5, 0, 10));
  });

  it('order is consistent with the distance for any pair less than 2^31 apart', () => {
    fc.assert(
      fc.property(fc.nat(U32 - 1), fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }), (a, d) => {
        const b = seqAdd(a, d);
        assert.equal(seqDiff(b, a), d);
        assert.equal(seqLt(a, b), d > 0);
        assert.equal(seqLe(a, b), d >= 0);
        assert.equal(seqGt(a, b), d < 0);
        assert.equal(seqLt(b, a), d < 0);
        assert.ok(b >= 0 && b < U32);
      }),
    );
  });
});

describe('64-bit data sequence numbers', () => {
  it('add, compare and take the low 32 bits modulo 2^64', () => {
    const nearTop = U64 - 5n;
    assert.equal(dsnAdd(nearTop, 10), 5n);
    assert.ok(dsnLt(nearTop, 5n));
    assert.ok(dsnLe(5n, 5n));
    assert.equal(dsnDiff(5n, nearTop), 10n);
    assert.equal(dsnLow32(0x1234_5678_9abc_def0n), 0x9abc_def0);
  });

  it('expands a 32-bit value to the nearest 64-bit one (RFC 8684 §3.3.1)', () => {
    assert.equal(expandDsn32(0x10, 0x5_ffff_fff0n), 0x6_0000_0010n);
    assert.equal(expandDsn32(0xffff_fff0, 0x6_0000_0010n), 0x5_ffff_fff0n);
    assert.equal(expandDsn32(0x1234, 0x7_0000_1000n), 0x7_0000_1234n);
    // Across the top of the 64-bit space, both ways.
    assert.equal(expandDsn32(0x5, U64 - 3n), 5n);
    assert.equal(expandDsn32(0xffff_fffd, 2n), U64 - 3n);
    // At exactly 2^31 either side the later value wins.
    assert.equal(expandDsn32(0x8000_0000, 0x1_0000_0000n), 0x1_8000_0000n);
    assert.equal(expandDsn32(0, 0x1_8000_0000n), 0x2_0000_0000n);
  });

  it('recovers any DSN within 2^31 of the expectation from its low 32 bits', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: U64 - 1n }),
        fc.bigInt({ min: -(2n ** 31n) + 1n, max: 2n ** 31n }),
        (expected, delta) => {
          const actual = dsnAdd(expected, delta);
          const expanded = expandDsn32(dsnLow32(actual), expected);
          assert.equal(expanded, actual);
          assert.ok(expanded >= 0n && expanded < U64);
        },
      ),
    );
  });
});
