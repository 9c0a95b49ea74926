/**
 * The RFC 6675 SACK scoreboard of one sender: which bytes above SND.UNA (HighACK) the peer has
 * SACKed, and from that IsLost, NextSeg and SetPipe (§4), with the HighData / HighRxt /
 * RescueRxt bookkeeping they need. Pure bookkeeping over 32-bit sequence numbers (wrap-around
 * through seqnum.ts); it never sees payload bytes, the clock or the congestion window.
 *
 * Representation: the SACKed bytes as a sorted array of disjoint, non-adjacent ranges
 * [left, right), all inside [SND.UNA, HighData]. Segment boundaries are not kept, so
 * "DupThresh discontiguous SACKed sequences" (IsLost) counts separate SACKed ranges.
 *
 * How the sender drives it:
 * - `onSend(sndNxt)` after sending new data (HighData only moves forward);
 * - `update(ack, blocks)` for every ACK (cumulative ACK + the SACK option's blocks): trims
 *   below the ACK, merges valid blocks, reports newly SACKed bytes (RFC 6675's definition of a
 *   duplicate ACK needs them) and a D-SACK (RFC 2883) for the spurious-retransmission counters;
 * - on entering recovery, `enterRecovery()` (RecoveryPoint = HighData, HighRxt = HighACK);
 *   while cwnd - pipe() >= 1 SMSS, `nextSeg(...)`, send it, `commit(seg)`;
 * - on an RTO, `onRto()`: RFC 6675 §5.1 keeps the scoreboard so the timeout recovery skips
 *   SACKed data; everything outstanding and not SACKed counts as lost, and `nextSeg` returns it
 *   in order (an extension of rule 1.b: "below the highest SACKed octet, or sent before the
 *   timeout");
 * - on evidence of reneging (RFC 2018 §8: the ACK point stays in a SACKed range after an RTO),
 *   `clear()`.
 */

import { InvalidArgumentError } from '../../errors.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, seqSize } from '../wire/seqnum.js';
import type { SackBlock } from '../wire/tcp.js';

export type { SackBlock };

/** RFC 6675 §2: DupThresh. */
export const DEFAULT_DUP_THRESH = 3;
/**
 * Most SACKed ranges kept. A well-behaved peer SACKs whole segments, so holes stay well below
 * this; a hostile one SACKing every other byte could otherwise grow the scoreboard with the
 * window. Blocks that would exceed it are ignored (SACK is advisory: we only resend more).
 */
export const MAX_SACK_RANGES = 1 << 14;

/** One range NextSeg asks the sender to (re)transmit, [left, right). */
export interface NextSegment {
  /**
   * 'lost': rule 1, a retransmission of data presumed lost. 'new': rule 2, previously unsent
   * data starting at HighData. 'unsacked': rule 3, a retransmission of data not yet presumed
   * lost. 'rescue': rule 4, the one rescue retransmission per recovery.
   */
  kind: 'lost' | 'new' | 'unsacked' | 'rescue';
  left: number;
  right: number;
}

export interface SackUpdate {
  /** Bytes SACKed by this ACK that were not SACKed before. */
  newlySacked: number;
  /** RFC 2883 §4: the first block reported data received twice. */
  dsack: SackBlock | undefined;
  /** Blocks ignored: empty/inverted, beyond HighData, wholly below SND.UNA (not the D-SACK), or over the cap. */
  ignored: number;
}

export interface SackScoreboardOptions {
  dupThresh?: number;
}

export class SackScoreboard {
  private mss: number;
  private readonly dupThresh: number;
  /** HighACK (SND.UNA): everything below is cumulatively acknowledged. */
  private una: number;
  /** HighData: the highest sequence number sent, exclusive (SND.MAX). */
  private high: number;
  /** HighRxt, exclusive: bytes in [una, rxt) were retransmitted in this recovery. Always >= una. */
  private rxt: number;
  private rescue: number | undefined;
  private recovery: number | undefined;
  /** After an RTO: bytes below this that are not SACKed count as lost. */
  private lostFloor: number | undefined;
  private lefts: number[] = [];
  private rights: number[] = [];
  private sacked = 0;
  /** Lowest left edge from which IsLost holds by SACK, or undefined when stale. */
  private sackLostEdge: number | undefined;
  private readonly result: SackUpdate = { newlySacked: 0, dsack: undefined, ignored: 0 };

  constructor(sndUna: number, mss: number, opts?: SackScoreboardOptions) {
    checkMss(mss);
    const dupThresh = opts?.dupThresh ?? DEFAULT_DUP_THRESH;
    if (!(Number.isInteger(dupThresh) && dupThresh >= 1)) {
      throw new InvalidArgumentError(`SACK scoreboard: bad DupThresh ${dupThresh}`);
    }
    this.mss = mss;
    this.dupThresh = dupThresh;
    this.una = sndUna >>> 0;
    this.high = this.una;
    this.rxt = this.una;
  }

  /** SMSS for IsLost's byte rule and NextSeg's segment size (e.g. after PMTU changes). */
  setMss(mss: number): void {
    checkMss(mss);
    this.mss = mss;
    this.sackLostEdge = undefined;
  }

  get sndUna(): number {
    return this.una;
  }

  get highData(): number {
    return this.high;
  }

  /** HighRxt as an exclusive end: equal to SND.UNA when nothing was retransmitted. */
  get highRxt(): number {
    return this.rxt;
  }

  get rescueRxt(): number | undefined {
    return this.rescue;
  }

  /** RecoveryPoint while a recovery is under way (cleared once SND.UNA reaches it). */
  get recoveryPoint(): number | undefined {
    return this.recovery;
  }

  /** Total SACKed bytes above SND.UNA. */
  get sackedBytes(): number {
    return this.sacked;
  }

  /** One past the highest SACKed byte, or undefined when nothing is SACKed. */
  get highestSacked(): number | undefined {
    const n = this.rights.length;
    return n === 0 ? undefined : this.rights[n - 1];
  }

  /** Number of disjoint SACKed ranges. */
  get rangeCount(): number {
    return this.lefts.length;
  }

  /** A copy of the SACKed ranges, lowest first. */
  ranges(): SackBlock[] {
    return this.lefts.map((left, i) => ({ left, right: this.rights[i] ?? left }));
  }

  /** Data sent: HighData = max(HighData, sndNxt). */
  onSend(sndNxt: number): void {
    const nxt = sndNxt >>> 0;
    if (seqGt(nxt, this.high)) this.high = nxt;
  }

  /**
   * One received ACK: `ack` its cumulative acknowledgment (already validated by the sender:
   * an ACK beyond HighData does not move SND.UNA here), `blocks` its SACK blocks in wire order.
   * The result is one reused object, valid until the next call (no allocation per ACK).
   */
  update(ack: number, blocks: readonly SackBlock[]): SackUpdate {
    const ackNum = ack >>> 0;
    if (seqGt(ackNum, this.una) && seqLe(ackNum, this.high)) this.advance(ackNum);
    let newlySacked = 0;
    let ignored = 0;
    let dsack: SackBlock | undefined;
    const first = blocks[0];
    if (first !== undefined) {
      const second = blocks[1];
      const isDsack =
        seqLe(first.right, ackNum) ||
        (second !== undefined && seqGe(first.left, second.left) && seqLe(first.right, second.right));
      if (isDsack && seqLt(first.left, first.right))
        dsack = { left: first.left >>> 0, right: first.right >>> 0 };
    }
    for (const block of blocks) {
      let left = block.left >>> 0;
      const right = block.right >>> 0;
      // Empty or inverted (including "longer than 2^31"), unsent data, or wholly acknowledged.
      if (!seqLt(left, right) || seqGt(right, this.high) || seqLe(right, this.una)) {
        if (block !== first || dsack === undefined) ignored++;
        continue;
      }
      if (seqLt(left, this.una)) left = this.una;
      const added = seqSize(left, right) - this.sackedIn(left, right);
      if (added === 0) continue;
      if (!this.insert(left, right)) {
        ignored++;
        continue;
      }
      newlySacked += added;
    }
    if (newlySacked > 0) this.sackLostEdge = undefined;
    const result = this.result;
    result.newlySacked = newlySacked;
    result.dsack = dsack;
    result.ignored = ignored;
    return result;
  }

  /** Every byte of [left, right) is SACKed (right defaults to left + 1). */
  isSacked(left: number, right: number = seqAdd(left, 1)): boolean {
    const l = left >>> 0;
    const r = right >>> 0;
    if (!seqLt(l, r)) return false;
    const i = this.firstEndingAfter(l);
    const rl = this.lefts[i];
    const rr = this.rights[i];
    return rl !== undefined && rr !== undefined && seqLe(rl, l) && seqLe(r, rr);
  }

  /** SACKed bytes within [left, right). */
  sackedIn(left: number, right: number): number {
    const l = left >>> 0;
    const r = right >>> 0;
    if (!seqLt(l, r)) return 0;
    let total = 0;
    for (let i = this.firstEndingAfter(l); i < this.lefts.length; i++) {
      const rl = this.lefts[i] as number;
      if (!seqLt(rl, r)) break;
      total += seqSize(seqMax(rl, l), seqMin(this.rights[i] as number, r));
    }
    return total;
  }

  /**
   * RFC 6675 IsLost(seq): `seq` is outstanding, not SACKed, and either DupThresh separate
   * SACKed ranges or more than (DupThresh - 1) * SMSS SACKed bytes lie above it. After an RTO,
   * also true of anything sent before the timeout.
   */
  isLost(seq: number): boolean {
    const s = seq >>> 0;
    if (!seqGe(s, this.una) || !seqLt(s, this.high) || this.isSacked(s)) return false;
    return seqLt(s, this.lostEdge());
  }

  /**
   * The sequence number below which every outstanding, un-SACKed byte is lost (SND.UNA when
   * none is): IsLost is monotone, true up to the left edge of the DupThresh'th range from the
   * top (or of the range where the SACKed bytes above first exceed (DupThresh - 1) * SMSS).
   */
  lostEdge(): number {
    let edge = this.sackLostEdge;
    if (edge === undefined) {
      edge = this.una;
      const limit = (this.dupThresh - 1) * this.mss;
      let bytes = 0;
      for (let i = this.lefts.length - 1, count = 1; i >= 0; i--, count++) {
        const left = this.lefts[i] as number;
        bytes += seqSize(left, this.rights[i] as number);
        if (count >= this.dupThresh || bytes > limit) {
          edge = left;
          break;
        }
      }
      this.sackLostEdge = edge;
    }
    if (this.lostFloor !== undefined && seqGt(this.lostFloor, edge)) edge = this.lostFloor;
    return edge;
  }

  /**
   * RFC 6675 SetPipe: for each outstanding un-SACKed byte, 1 if it is not lost, plus 1 if it was
   * retransmitted (below HighRxt).
   */
  pipe(): number {
    const lost = this.lostEdge();
    const inFlightOriginal = seqSize(lost, this.high) - this.sackedIn(lost, this.high);
    const retransmitted = seqSize(this.una, this.rxt) - this.sackedIn(this.una, this.rxt);
    return inFlightOriginal + retransmitted;
  }

  /**
   * Start of recovery (RFC 6675 §5 step 4.1): RecoveryPoint = HighData, HighRxt = HighACK, and
   * a fresh rescue (rule 4 allows one per entry into recovery).
   */
  enterRecovery(): void {
    this.recovery = this.high;
    this.rxt = this.una;
    this.rescue = undefined;
  }

  /**
   * Retransmission timeout: recovery ends (RFC 6675 §5.1); every byte outstanding and not SACKed
   * is presumed lost, to be resent in order from SND.UNA (HighRxt back at HighACK).
   */
  onRto(): void {
    this.recovery = undefined;
    this.rescue = undefined;
    this.rxt = this.una;
    this.lostFloor = seqGt(this.high, this.una) ? this.high : undefined;
  }

  /** Forget all SACK information (the receiver reneged, RFC 2018 §8). */
  clear(): void {
    this.lefts = [];
    this.rights = [];
    this.sacked = 0;
    this.sackLostEdge = undefined;
  }

  /**
   * RFC 6675 NextSeg. `newData` is how many unsent bytes the sender could send now (0 when none
   * or when the peer's window forbids); `maxLen` the largest segment wanted (one SMSS, or more
   * for a super-segment the device cuts). Returns what to send next, or undefined. Pure: call
   * `commit` once the segment was actually sent.
   */
  nextSeg(newData: number, maxLen: number = this.mss): NextSegment | undefined {
    const len = Math.max(1, Math.floor(maxLen));
    const lost = this.lostEdge();
    // (1.b), extended after an RTO: only below the highest SACKed byte or the lost floor.
    let bound = this.highestSacked ?? this.una;
    if (seqGt(lost, bound)) bound = lost;
    const hole = this.holeFrom(this.rxt);
    if (hole !== undefined && seqLt(hole.left, bound)) {
      if (seqLt(hole.left, lost)) {
        // Rule 1: the first lost, un-SACKed byte above HighRxt.
        const right = seqMin(seqMin(hole.right, lost), seqAdd(hole.left, len));
        return { kind: 'lost', left: hole.left, right };
      }
    }
    if (newData > 0) {
      // Rule 2: new data from HighData.
      return { kind: 'new', left: this.high, right: seqAdd(this.high, Math.min(len, Math.floor(newData))) };
    }
    if (hole !== undefined && seqLt(hole.left, bound)) {
      // Rule 3: the first un-SACKed byte above HighRxt below the highest SACKed one.
      return { kind: 'unsacked', left: hole.left, right: seqMin(hole.right, seqAdd(hole.left, len)) };
    }
    if (this.recovery !== undefined && (this.rescue === undefined || seqGt(this.una, this.rescue))) {
      // Rule 4: one rescue per recovery, ending at the highest outstanding un-SACKed byte. Not
      // when that byte was already retransmitted in this recovery (below HighRxt): the rescue
      // exists to resend what no rule has resent, and resending it again only duplicates it.
      const top = this.highestHole();
      if (top !== undefined && seqGt(top.right, this.rxt)) {
        const left = seqMax(seqMax(top.left, this.rxt), seqAdd(top.right, -Math.min(len, this.mss)));
        return { kind: 'rescue', left, right: top.right };
      }
    }
    return undefined;
  }

  /**
   * The sender sent `seg` (possibly cut shorter: pass the real end as `right`). Rules 1 and 3
   * move HighRxt, rule 4 sets RescueRxt = RecoveryPoint (not HighRxt), rule 2 moves HighData.
   */
  commit(seg: NextSegment, right: number = seg.right): void {
    const end = right >>> 0;
    switch (seg.kind) {
      case 'new':
        this.onSend(end);
        break;
      case 'lost':
      case 'unsacked':
        this.onRetransmit(end);
        break;
      case 'rescue':
        this.rescue = this.recovery ?? this.high;
        break;
    }
  }

  /** A retransmission (outside NextSeg, e.g. the first one of §5 step 4.3) ending at `right`. */
  onRetransmit(right: number): void {
    const end = seqMin(right >>> 0, this.high);
    if (seqGt(end, this.rxt)) this.rxt = end;
  }

  /** The first un-SACKed range at or above `from` (and SND.UNA), below HighData. */
  nextHole(from: number): SackBlock | undefined {
    return this.holeFrom(from >>> 0);
  }

  private holeFrom(from: number): SackBlock | undefined {
    let s = seqMax(from, this.una);
    if (!seqLt(s, this.high)) return undefined;
    const i = this.firstEndingAfter(s);
    let rl = this.lefts[i];
    let j = i;
    if (rl !== undefined && seqLe(rl, s)) {
      s = this.rights[i] as number;
      j = i + 1;
      rl = this.lefts[j];
    }
    if (!seqLt(s, this.high)) return undefined;
    return { left: s, right: rl ?? this.high };
  }

  private highestHole(): SackBlock | undefined {
    const n = this.lefts.length;
    const topRight = this.rights[n - 1];
    if (topRight === undefined)
      return seqLt(this.una, this.high) ? { left: this.una, right: this.high } : undefined;
    if (seqLt(topRight, this.high)) return { left: topRight, right: this.high };
    const topLeft = this.lefts[n - 1] as number;
    if (!seqLt(this.una, topLeft)) return undefined;
    return { left: n >= 2 ? (this.rights[n - 2] as number) : this.una, right: topLeft };
  }

  private advance(ack: number): void {
    this.una = ack;
    let drop = 0;
    while (drop < this.rights.length && seqLe(this.rights[drop] as number, ack)) {
      this.sacked -= seqSize(this.lefts[drop] as number, this.rights[drop] as number);
      drop++;
    }
    if (drop > 0) {
      this.lefts.splice(0, drop);
      this.rights.splice(0, drop);
    }
    const firstLeft = this.lefts[0];
    if (firstLeft !== undefined && seqLt(firstLeft, ack)) {
      this.sacked -= seqSize(firstLeft, ack);
      this.lefts[0] = ack;
    }
    if (seqLt(this.rxt, ack)) this.rxt = ack;
    if (this.rescue !== undefined && seqGt(ack, this.rescue)) this.rescue = undefined;
    if (this.recovery !== undefined && seqGe(ack, this.recovery)) this.recovery = undefined;
    if (this.lostFloor !== undefined && seqGe(ack, this.lostFloor)) this.lostFloor = undefined;
    this.sackLostEdge = undefined;
  }

  /** Merge [left, right) (inside [una, high]) into the ranges; false when over the cap. */
  private insert(left: number, right: number): boolean {
    // Ranges touching [left, right) (overlapping or adjacent) merge with it.
    const i = this.firstEndingAtOrAfter(left);
    let j = i;
    while (j < this.lefts.length && seqLe(this.lefts[j] as number, right)) j++;
    if (j === i && this.lefts.length >= MAX_SACK_RANGES) return false;
    let newLeft = left;
    let newRight = right;
    for (let k = i; k < j; k++) {
      const l = this.lefts[k] as number;
      const r = this.rights[k] as number;
      this.sacked -= seqSize(l, r);
      if (seqLt(l, newLeft)) newLeft = l;
      if (seqGt(r, newRight)) newRight = r;
    }
    this.sacked += seqSize(newLeft, newRight);
    this.lefts.splice(i, j - i, newLeft);
    this.rights.splice(i, j - i, newRight);
    return true;
  }

  /** Index of the first range whose right edge is after `seq` (binary search). */
  private firstEndingAfter(seq: number): number {
    let lo = 0;
    let hi = this.rights.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqDiff(this.rights[mid] as number, seq) > 0) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index of the first range whose right edge is at or after `seq`. */
  private firstEndingAtOrAfter(seq: number): number {
    let lo = 0;
    let hi = this.rights.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqDiff(this.rights[mid] as number, seq) >= 0) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

function checkMss(mss: number): void {
  if (!(Number.isInteger(mss) && mss > 0)) throw new InvalidArgumentError(`SACK scoreboard: bad MSS ${mss}`);
}
