/**
 * A subflow's send-side DSS mappings (RFC 8684 §3.3.1): which data-level ranges the subflow's
 * byte stream carries. The MPTCP connection assigns a data-level range to the subflow (`push`);
 * the subflow's TCP sends it at the next subflow sequence numbers; every segment carries the
 * DSS of the one mapping its bytes lie in, and never spans two (`contiguousFrom`). Mappings are
 * never merged or changed once pushed: one may already be on the wire, and a retransmission must
 * carry the same mapping again.
 *
 * Subflow sequence numbers here are ABSOLUTE 32-bit TCP sequence numbers (wrapping, seqnum.ts);
 * the relative SSN the DSS carries is `ssn - ISN`, the caller's to compute. DSNs are plain JS
 * integers: offsets in the connection's data stream (exact up to 2^53), the connection adds
 * its 64-bit IDSN when it writes the option. Lengths are at most 65535 (the DSS data-level
 * length field is 16 bits).
 *
 * Representation: a ring of parallel typed arrays (ssn, dsn, length) in subflow order, and a
 * monotonic queue of entry ids whose DSNs increase, so `lowestDsn` is O(1) even when reinjected
 * (older) data follows newer data. No allocation per call except `unacked` (rare: a subflow
 * died) and when the ring grows.
 *
 * How the subflow drives it:
 * - `push(dsn, length)` when the connection hands the subflow a range (at `end`);
 * - before sending bytes from `ssn`: `at(ssn)` for the mapping to put in the DSS and
 *   `contiguousFrom(ssn)` to cap the segment (the SendQueue's segmentLimit);
 * - on each ACK: `ack(sndUna)` drops the mappings wholly acknowledged;
 * - `lowestDsn()` tells the connection the lowest data it must keep for this subflow's
 *   retransmissions (a DATA_ACK does not free bytes the subflow may still have to resend);
 * - when the subflow dies: `unacked(sndUna)` gives the data-level ranges to reinject elsewhere.
 */

import { InvalidArgumentError } from '../../errors.js';
import { seqAdd, seqDiff } from '../wire/seqnum.js';

/** Longest mapping: the DSS data-level length field is 16 bits (RFC 8684 §3.3). */
export const MAX_MAPPING_LENGTH = 0xffff;
/** Most bytes held: all of them must stay within half the 32-bit sequence space of each other. */
export const MAX_HELD_BYTES = 0x7fff_ffff;
/** Entries probed linearly from either end before `at` searches by bisection. */
const PROBE = 4;
const INITIAL_CAPACITY = 16;

/** One mapping: `length` subflow bytes from `ssn` carry data [dsn, dsn + length). */
export interface TxMapping {
  readonly ssn: number;
  readonly dsn: number;
  readonly length: number;
}

/** A data-level range [dsn, dsn + length). */
export interface DataRange {
  dsn: number;
  length: number;
}

export class TxMappings {
  private mask = INITIAL_CAPACITY - 1;
  private ssns = new Uint32Array(INITIAL_CAPACITY);
  private dsns = new Float64Array(INITIAL_CAPACITY);
  private lens = new Uint32Array(INITIAL_CAPACITY);
  /** Ring index of the oldest entry. */
  private head = 0;
  private count = 0;
  /** Id (push number) of the oldest entry: entry ids are consecutive. */
  private firstId = 0;
  private endSsn: number;
  private held = 0;
  /** Monotonic queue of entry ids, DSNs strictly increasing from its front. */
  private minIds = new Float64Array(INITIAL_CAPACITY);
  private minHead = 0;
  private minCount = 0;
  private readonly view: { ssn: number; dsn: number; length: number } = { ssn: 0, dsn: 0, length: 0 };

  /** `firstSsn`: the absolute subflow sequence number of the first byte to be mapped (ISN + 1). */
  constructor(firstSsn: number) {
    this.endSsn = firstSsn >>> 0;
  }

  /** The subflow sequence number after the last byte pushed. */
  get end(): number {
    return this.endSsn;
  }

  /** The subflow sequence number of the oldest byte held (`end` when none is). */
  get start(): number {
    return this.count === 0 ? this.endSsn : (this.ssns[this.head] as number);
  }

  /** Bytes from the oldest mapping held to `end` (a partly acknowledged mapping counts whole). */
  get length(): number {
    return this.held;
  }

  /** Mappings held. */
  get size(): number {
    return this.count;
  }

  /** Maps the next `length` subflow bytes (from `end`) to data [dsn, dsn + length). */
  push(dsn: number, length: number): void {
    if (!(Number.isInteger(length) && length >= 1 && length <= MAX_MAPPING_LENGTH)) {
      throw new InvalidArgumentError(`tx mappings: length ${length} is not in [1, ${MAX_MAPPING_LENGTH}]`);
    }
    if (!(Number.isSafeInteger(dsn) && dsn >= 0)) {
      throw new InvalidArgumentError(`tx mappings: dsn ${dsn} is not a non-negative safe integer`);
    }
    if (this.held + length > MAX_HELD_BYTES) {
      throw new InvalidArgumentError(`tx mappings: more than ${MAX_HELD_BYTES} bytes held`);
    }
    if (this.count > this.mask) this.grow();
    const i = (this.head + this.count) & this.mask;
    this.ssns[i] = this.endSsn;
    this.dsns[i] = dsn;
    this.lens[i] = length;
    const id = this.firstId + this.count;
    this.count++;
    this.held += length;
    this.endSsn = seqAdd(this.endSsn, length);
    // Entries with a DSN at least this one's can never be the lowest again while it is held.
    while (this.minCount > 0) {
      const back = this.minIds[(this.minHead + this.minCount - 1) & this.mask] as number;
      if ((this.dsns[this.ring(back)] as number) < dsn) break;
      this.minCount--;
    }
    this.minIds[(this.minHead + this.minCount) & this.mask] = id;
    this.minCount++;
  }

  /**
   * The mapping holding subflow byte `ssn`, or undefined. One reused object, valid until the
   * next call of `at`.
   */
  at(ssn: number): TxMapping | undefined {
    const k = this.find(ssn >>> 0);
    if (k < 0) return undefined;
    const i = (this.head + k) & this.mask;
    const view = this.view;
    view.ssn = this.ssns[i] as number;
    view.dsn = this.dsns[i] as number;
    view.length = this.lens[i] as number;
    return view;
  }

  /** Bytes from `ssn` to the end of its mapping (0 when no mapping holds `ssn`). */
  contiguousFrom(ssn: number): number {
    const s = ssn >>> 0;
    const k = this.find(s);
    if (k < 0) return 0;
    const i = (this.head + k) & this.mask;
    return (this.lens[i] as number) - seqDiff(s, this.ssns[i] as number);
  }

  /** Subflow bytes before `ssn` were acknowledged: the mappings wholly before it are dropped. */
  ack(ssn: number): void {
    const s = ssn >>> 0;
    while (this.count > 0) {
      const i = this.head;
      const len = this.lens[i] as number;
      if (seqDiff(s, seqAdd(this.ssns[i] as number, len)) < 0) break;
      this.head = (i + 1) & this.mask;
      this.count--;
      this.firstId++;
      this.held -= len;
    }
    while (this.minCount > 0 && (this.minIds[this.minHead] as number) < this.firstId) {
      this.minHead = (this.minHead + 1) & this.mask;
      this.minCount--;
    }
  }

  /**
   * The data-level ranges the subflow holds from byte `fromSsn` on (from the oldest byte when
   * `fromSsn` is before it), in subflow order, neighbours contiguous in data sequence space
   * merged: what to reinject on another subflow when this one dies. A fresh array.
   */
  unacked(fromSsn: number): DataRange[] {
    const out: DataRange[] = [];
    if (this.count === 0) return out;
    const s = fromSsn >>> 0;
    let k = 0;
    let skip = 0;
    const before = seqDiff(s, this.ssns[this.head] as number);
    if (before > 0) {
      k = this.find(s);
      if (k < 0) return out;
      skip = seqDiff(s, this.ssns[(this.head + k) & this.mask] as number);
    }
    let last: DataRange | undefined;
    for (; k < this.count; k++) {
      const i = (this.head + k) & this.mask;
      const dsn = (this.dsns[i] as number) + skip;
      const length = (this.lens[i] as number) - skip;
      skip = 0;
      if (last !== undefined && last.dsn + last.length === dsn) last.length += length;
      else {
        last = { dsn, length };
        out.push(last);
      }
    }
    return out;
  }

  /** The smallest DSN held: the connection may not free data below it. Undefined when empty. */
  lowestDsn(): number | undefined {
    if (this.minCount === 0) return undefined;
    return this.dsns[this.ring(this.minIds[this.minHead] as number)];
  }

  /** Ring index of entry `id` (which must be held). */
  private ring(id: number): number {
    return (this.head + (id - this.firstId)) & this.mask;
  }

  /** Position (0 = oldest) of the mapping holding `ssn`, or -1. */
  private find(ssn: number): number {
    const count = this.count;
    if (count === 0) return -1;
    const mask = this.mask;
    const head = this.head;
    const first = this.ssns[head] as number;
    const off = seqDiff(ssn, first);
    if (off < 0 || off >= this.held) return -1;
    // From the front (retransmissions, the ACK point) ...
    const front = Math.min(PROBE, count);
    for (let k = 0; k < front; k++) {
      const i = (head + k) & mask;
      if (seqDiff(ssn, this.ssns[i] as number) < (this.lens[i] as number)) return k;
    }
    // ... and from the back (new data).
    const backStop = Math.max(front, count - PROBE);
    for (let k = count - 1; k >= backStop; k--) {
      if (seqDiff(ssn, this.ssns[(head + k) & mask] as number) >= 0) return k;
    }
    // Bisection over [front, backStop): the last entry starting at or before `ssn`.
    let lo = front;
    let hi = backStop - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (seqDiff(this.ssns[(head + mid) & mask] as number, first) <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const ssns = new Uint32Array(cap);
    const dsns = new Float64Array(cap);
    const lens = new Uint32Array(cap);
    const minIds = new Float64Array(cap);
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) & this.mask;
      ssns[k] = this.ssns[i] as number;
      dsns[k] = this.dsns[i] as number;
      lens[k] = this.lens[i] as number;
    }
    for (let k = 0; k < this.minCount; k++) {
      minIds[k] = this.minIds[(this.minHead + k) & this.mask] as number;
    }
    this.ssns = ssns;
    this.dsns = dsns;
    this.lens = lens;
    this.minIds = minIds;
    this.head = 0;
    this.minHead = 0;
    this.mask = cap - 1;
  }
}
