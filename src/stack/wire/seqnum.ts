/**
 * Sequence-number arithmetic.
 *
 * TCP sequence numbers (RFC 9293 §3.4) live modulo 2^32 and are compared by the sign of their
 * 32-bit difference: a is "before" b when (a - b) as an int32 is negative. That is only
 * meaningful for numbers less than 2^31 apart, which windows guarantee (RFC 7323 §2.3 caps the
 * window at 2^30). Values are plain Numbers holding a uint32.
 *
 * MPTCP data sequence numbers (RFC 8684 §3.3) are 64-bit and start at a random IDSN anywhere
 * in the 64-bit space, so a double (exact up to 2^53) cannot hold them: they are `bigint`s
 * kept in [0, 2^64) and compared by the sign of their 64-bit difference in the same way.
 * The wire may carry only their low 32 bits (DSS without the 'm'/'a' flag): `expandDsn32`
 * picks the 64-bit value that is closest to what we expect.
 */

/** Half the 32-bit space: beyond this distance the order of two sequence numbers is ambiguous. */
export const SEQ_HALF_SPACE = 0x8000_0000;

/** a + n modulo 2^32 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance from b to a: (a - b) as an int32. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a < b in sequence space. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a <= b in sequence space. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a > b in sequence space. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a >= b in sequence space. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return seqLt(a, b) ? b : a;
}

/** The earlier of two sequence numbers. */
export function seqMin(a: number, b: number): number {
  return seqLt(a, b) ? a : b;
}

/** Number of sequence numbers in [from, to), i.e. (to - from) modulo 2^32. */
export function seqSize(from: number, to: number): number {
  return (to - from) >>> 0;
}

/** from <= v < to, the range taken modulo 2^32 (empty when from === to). */
export function seqInRange(v: number, from: number, to: number): boolean {
  return (v - from) >>> 0 < (to - from) >>> 0;
}

/** v is in the window [first, first + size). */
export function seqInWindow(v: number, first: number, size: number): boolean {
  return (v - first) >>> 0 < size;
}

/** [aFrom, aTo) and [bFrom, bTo) share at least one sequence number. */
export function seqRangesOverlap(aFrom: number, aTo: number, bFrom: number, bTo: number): boolean {
  return seqLt(aFrom, bTo) && seqLt(bFrom, aTo) && aFrom !== aTo && bFrom !== bTo;
}

const TWO_32 = 0x1_0000_0000n;
const HALF_32 = 0x8000_0000n;
const LOW_32 = 0xffff_ffffn;

/** a + n modulo 2^64. */
export function dsnAdd(a: bigint, n: bigint | number): bigint {
  return BigInt.asUintN(64, a + BigInt(n));
}

/** Signed distance from b to a: (a - b) as an int64. */
export function dsnDiff(a: bigint, b: bigint): bigint {
  return BigInt.asIntN(64, a - b);
}

/** a < b in the 64-bit data sequence space. */
export function dsnLt(a: bigint, b: bigint): boolean {
  return BigInt.asIntN(64, a - b) < 0n;
}

/** a <= b in the 64-bit data sequence space. */
export function dsnLe(a: bigint, b: bigint): boolean {
  return BigInt.asIntN(64, a - b) <= 0n;
}

/** The low 32 bits of a DSN, as carried by a 4-byte DSS field. */
export function dsnLow32(dsn: bigint): number {
  return Number(dsn & LOW_32);
}

/**
 * The 64-bit DSN whose low 32 bits are `wire32` and that is closest to `expected` (modulo
 * 2^64), as RFC 8684 §3.3.1 asks of a receiver of 4-byte DSNs or DATA_ACKs. At exactly 2^31
 * either side, the later value is chosen.
 */
export function expandDsn32(wire32: number, expected: bigint): bigint {
  let candidate = (expected & ~LOW_32) | BigInt(wire32 >>> 0);
  const delta = candidate - expected;
  if (delta > HALF_32) candidate -= TWO_32;
  else if (delta <= -HALF_32) candidate += TWO_32;
  return BigInt.asUintN(64, candidate);
}
