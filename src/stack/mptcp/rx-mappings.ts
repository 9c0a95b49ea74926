/**
 * A subflow's receive-side table of DSS mappings (RFC 8684 §3.3.1): which data sequence numbers
 * the subflow's in-order bytes carry. The subflow's TCP has already reassembled its byte stream;
 * this table only translates subflow sequence numbers into data sequence numbers. Pure
 * bookkeeping: no payload is kept, no clock, no I/O, and nothing a peer sends makes it throw.
 *
 * Subflow sequence numbers here are RELATIVE, as in the DSS option: SSN 1 is the first data byte
 * after the SYN. They are 32-bit and wrap (seqnum.ts). DSNs are full 64-bit bigints, already
 * expanded from 4-byte wire values by the caller. A mapping covers the subflow bytes
 * [ssn, ssn + span) where span = dataLevelLength, minus one when the mapping carries DATA_FIN:
 * the DATA_FIN takes the last unit of the data-level length and no subflow byte. A DATA_FIN
 * alone (ssn 0, length 1, on a pure ACK) maps no subflow byte at all.
 *
 * Representation: the held mappings in a small array sorted by ssn, pairwise disjoint, all
 * ending after the consumed point (everything before it was placed and is forgotten).
 *
 * How the subflow drives it:
 * - every DSS mapping received goes to `add(m)`; the result tells the caller what to count:
 *   'added'; 'duplicate' (identical to one held: a kernel peer repeats the DSS on every segment of
 *   a TSO burst, and retransmissions carry it again); 'conflict' (it overlaps a held mapping it
 *   does not match: DSSNotMatching, RFC 8684 §3.3.1 treats it as a protocol error); 'stale' (it
 *   ends at or before the consumed point: an old retransmission, ignore); 'full' (maxPending
 *   mappings are held: mappingTableFull); 'invalid' (a zero data-level length, which the caller
 *   must have recognised as an infinite mapping beforehand, or a start more than 2^30 beyond
 *   the consumed point, which no TCP window reaches: mappingInvalid); 'fin-only' (a DATA_FIN
 *   alone, or any DATA_FIN mapping of length 1: nothing to hold, the caller takes the DATA_FIN
 *   at `dsn` from the option itself, and checks its checksum, if any, with verifyDssChecksum
 *   over an empty payload);
 * - for the subflow's in-order bytes [ssn, ssn + length), `resolve(ssn, length)` gives the
 *   pieces in order, each inside one mapping, stopping at the first byte no mapping covers; the
 *   caller places what the pieces cover, and the rest waits for a mapping (or, if its mapping
 *   never comes, is a protocol error: DSSNoMatchTCP);
 * - once bytes are placed, `consume(toSsn)`: mappings wholly before `toSsn` are forgotten;
 * - with DSS checksums negotiated, each placed piece's payload goes to `accumulate(mapping,
 *   bytes)`, which answers 'ok' or 'bad' (DataCsumErr) once the whole mapping was seen.
 */

import { InvalidArgumentError } from '../../errors.js';
import { finishChecksum, foldSum, onesComplementSum } from '../wire/checksum.js';
import { dssPseudoHeaderSum } from '../wire/dss-checksum.js';
import { dsnAdd, seqAdd, seqDiff } from '../wire/seqnum.js';

/** Largest data-level length: the DSS field is 16 bits (RFC 8684 §3.3). */
export const MAX_DATA_LEVEL_LENGTH = 0xffff;
/**
 * Mappings held at most by default. A sender may map as little as one segment per DSS (the
 * kernel maps per skb, we map what each push gives a subflow), so a subflow holding a window's
 * worth out of order behind a loss can hold thousands: enough for a 4 MiB window at 1 KiB each.
 * A refused mapping leaves its bytes unmapped, and that resets the subflow (DSSNoMatchTCP).
 */
export const DEFAULT_MAX_PENDING = 4096;
/**
 * A mapping may start at most this far beyond the consumed point: TCP's window is capped at
 * 2^30 (RFC 7323 §2.3), and it keeps every held mapping within 2^31 of the others, so the
 * 32-bit comparisons are never ambiguous.
 */
export const MAX_MAPPING_AHEAD = 0x4000_0000;

/** A DSS mapping as received (subflow sequence number relative, DSN expanded to 64 bits). */
export interface RxMapping {
  /** Relative subflow sequence number of the first mapped byte (1 = first byte after the SYN). */
  ssn: number;
  /** Data sequence number of the first mapped byte, 64-bit. */
  dsn: bigint;
  /** Data-level length as carried in the option, the DATA_FIN included when `dataFin`. */
  dataLevelLength: number;
  /** The mapping's last data-level unit is the DATA_FIN. */
  dataFin: boolean;
  /** The DSS checksum as received, when checksums were negotiated. */
  checksum?: number;
}

/** A mapping held by the table (what pieces refer to). Its fields never change. */
export interface HeldRxMapping extends Readonly<RxMapping> {
  /** Subflow bytes the mapping covers: dataLevelLength, minus one for a DATA_FIN. */
  readonly span: number;
  /** Relative subflow sequence number just after the mapping's last byte (ssn + span). */
  readonly end: number;
}

export type RxAddResult = 'added' | 'duplicate' | 'conflict' | 'stale' | 'full' | 'invalid' | 'fin-only';

export type ChecksumResult = 'incomplete' | 'ok' | 'bad';

export interface RxMappingsOptions {
  /** Relative SSN of the first byte expected; default 1 (the first byte after the SYN). */
  firstSsn?: number;
  /** Most mappings held at once; default DEFAULT_MAX_PENDING. */
  maxPending?: number;
}

class Entry implements HeldRxMapping {
  readonly ssn: number;
  readonly dsn: bigint;
  readonly dataLevelLength: number;
  readonly dataFin: boolean;
  readonly checksum: number | undefined;
  readonly span: number;
  readonly end: number;
  /** Checksum state: partial ones'-complement sum of the payload seen, folded. */
  sum = 0;
  /** Payload bytes accumulated so far. */
  seen = 0;
  verdict: ChecksumResult = 'incomplete';

  constructor(m: RxMapping, ssn: number, span: number) {
    this.ssn = ssn;
    this.dsn = m.dsn;
    this.dataLevelLength = m.dataLevelLength;
    this.dataFin = m.dataFin;
    this.checksum = m.checksum;
    this.span = span;
    this.end = seqAdd(ssn, span);
  }
}

/** What a pooled piece refers to before its first use. */
const PLACEHOLDER: HeldRxMapping = { ssn: 0, dsn: 0n, dataLevelLength: 0, dataFin: false, span: 0, end: 0 };

/** One run of in-order subflow bytes inside one mapping. */
export class RxPiece {
  /** Relative subflow sequence number of the piece's first byte. */
  ssn = 0;
  /** Bytes in the piece. */
  length = 0;
  /** Bytes from the mapping's first byte to the piece's. */
  offset = 0;
  /** The mapping the piece lies in. */
  mapping: HeldRxMapping = PLACEHOLDER;

  /** Data sequence number of the piece's first byte (computed on demand: a bigint allocates). */
  get dsn(): bigint {
    return this.offset === 0 ? this.mapping.dsn : dsnAdd(this.mapping.dsn, this.offset);
  }

  /** The piece ends its mapping and the mapping carries DATA_FIN: the DATA_FIN follows it. */
  get dataFin(): boolean {
    return this.mapping.dataFin && this.offset + this.length === this.mapping.span;
  }
}

export class RxMappings {
  private readonly maxPending: number;
  /** Consumed point: every byte before it was placed. */
  private frontier: number;
  private readonly held: Entry[] = [];
  private readonly out: RxPiece[] = [];
  private readonly pool: RxPiece[] = [];

  constructor(opts?: RxMappingsOptions) {
    const maxPending = opts?.maxPending ?? DEFAULT_MAX_PENDING;
    if (!(Number.isInteger(maxPending) && maxPending >= 1)) {
      throw new InvalidArgumentError(`rx mappings: maxPending must be a positive integer, got ${maxPending}`);
    }
    this.maxPending = maxPending;
    this.frontier = (opts?.firstSsn ?? 1) >>> 0;
  }

  /** The consumed point: relative SSN of the first byte not yet placed. */
  get consumed(): number {
    return this.frontier;
  }

  /** Mappings held. */
  get size(): number {
    return this.held.length;
  }

  /** A copy of the held mappings, lowest ssn first. */
  mappings(): HeldRxMapping[] {
    return this.held.slice();
  }

  /** A received DSS mapping (see the driver protocol above). Never throws on peer values. */
  add(m: RxMapping): RxAddResult {
    const len = m.dataLevelLength;
    if (!(Number.isInteger(len) && len >= 0 && len <= MAX_DATA_LEVEL_LENGTH)) {
      throw new InvalidArgumentError(`rx mappings: data-level length ${len} is not a 16-bit value`);
    }
    if (len === 0) return 'invalid';
    const span = m.dataFin ? len - 1 : len;
    if (span === 0) return 'fin-only';
    const ssn = m.ssn >>> 0;
    const startOff = seqDiff(ssn, this.frontier);
    if (startOff > MAX_MAPPING_AHEAD) return 'invalid';
    const endOff = startOff + span;
    if (endOff <= 0) return 'stale';
    const held = this.held;
    const frontier = this.frontier;
    // The last held mapping starting before the new one ends: the only one that can overlap
    // it without others overlapping too (held mappings are sorted and disjoint). New mappings
    // usually come last, so this stops at once.
    let i = held.length - 1;
    while (i >= 0 && seqDiff((held[i] as Entry).ssn, frontier) >= endOff) i--;
    if (i >= 0) {
      const h = held[i] as Entry;
      if (seqDiff(h.ssn, frontier) + h.span > startOff) {
        const same = h.ssn === ssn && h.dsn === m.dsn && h.dataLevelLength === len && h.dataFin === m.dataFin;
        return same ? 'duplicate' : 'conflict';
      }
    }
    if (held.length >= this.maxPending) return 'full';
    const entry = new Entry(m, ssn, span);
    if (i === held.length - 1) held.push(entry);
    else held.splice(i + 1, 0, entry);
    return 'added';
  }

  /**
   * The pieces of the in-order subflow bytes [ssn, ssn + length), in order, each inside one
   * mapping, stopping at the first byte no mapping covers (their lengths sum to the bytes the
   * caller can place now). The array and its pieces are reused: valid until the next call.
   * The mappings they refer to are immutable and stay readable after they are forgotten.
   */
  resolve(ssn: number, length: number): readonly RxPiece[] {
    const out = this.out;
    let count = 0;
    let cur = ssn >>> 0;
    let remaining = Math.floor(length);
    const held = this.held;
    let i = 0;
    let offset = -1;
    // The first mapping holding `cur`: usually the first held, since consumed ones are gone.
    for (; remaining > 0 && i < held.length; i++) {
      const h = held[i] as Entry;
      const off = seqDiff(cur, h.ssn);
      if (off < 0) break;
      if (off < h.span) {
        offset = off;
        break;
      }
    }
    if (offset >= 0) {
      for (;;) {
        const h = held[i] as Entry;
        const take = Math.min(h.span - offset, remaining);
        let piece = this.pool[count];
        if (piece === undefined) {
          piece = new RxPiece();
          this.pool.push(piece);
        }
        piece.ssn = cur;
        piece.length = take;
        piece.offset = offset;
        piece.mapping = h;
        out[count++] = piece;
        remaining -= take;
        cur = seqAdd(cur, take);
        i++;
        const next = held[i];
        if (remaining === 0 || next === undefined || next.ssn !== cur) break;
        offset = 0;
      }
    }
    out.length = count;
    return out;
  }

  /**
   * The bytes before `toSsn` were placed: the consumed point moves there (never back) and the
   * mappings that end at or before it are forgotten.
   */
  consume(toSsn: number): void {
    const to = toSsn >>> 0;
    if (seqDiff(to, this.frontier) <= 0) return;
    this.frontier = to;
    const held = this.held;
    let k = 0;
    while (k < held.length && seqDiff((held[k] as Entry).end, to) <= 0) k++;
    if (k === 0) return;
    for (let j = k; j < held.length; j++) held[j - k] = held[j] as Entry;
    held.length -= k;
  }

  /**
   * DSS checksum (RFC 8684 §3.3.1) of a mapping from this table, over its payload fed in order
   * in any number of pieces of any length: data[start, end) are the mapping's next payload
   * bytes. Answers 'incomplete' until all `span` payload bytes were fed, then 'ok' or 'bad'
   * (and the same again on calls with no bytes). Feeding more bytes than the mapping holds, or
   * asking for a mapping without a checksum, is API misuse.
   */
  accumulate(mapping: HeldRxMapping, data: Uint8Array, start = 0, end: number = data.length): ChecksumResult {
    if (!(mapping instanceof Entry)) {
      throw new InvalidArgumentError('rx mappings: accumulate() needs a mapping held by the table');
    }
    const checksum = mapping.checksum;
    if (checksum === undefined) {
      throw new InvalidArgumentError('rx mappings: accumulate() on a mapping that carries no checksum');
    }
    const n = end - start;
    if (n < 0 || n > mapping.span - mapping.seen) {
      throw new InvalidArgumentError(
        `rx mappings: ${n} bytes fed, ${mapping.span - mapping.seen} left in the mapping`,
      );
    }
    if (n > 0) {
      let s = foldSum(onesComplementSum(data, start, end));
      // An odd count so far puts data[start] in the low byte of a word: swap (RFC 1071 §2(B)).
      if ((mapping.seen & 1) === 1) s = ((s & 0xff) << 8) | (s >>> 8);
      mapping.sum = foldSum(mapping.sum + s);
      mapping.seen += n;
    }
    if (mapping.seen < mapping.span) return 'incomplete';
    if (mapping.verdict === 'incomplete') {
      const pseudo = dssPseudoHeaderSum(mapping.dsn, mapping.ssn, mapping.dataLevelLength);
      mapping.verdict = finishChecksum(mapping.sum + pseudo + checksum) === 0 ? 'ok' : 'bad';
    }
    return mapping.verdict;
  }
}
