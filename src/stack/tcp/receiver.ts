/**
 * The receive buffer: in-order bytes the application has not read, and out-of-order segments
 * held in place within the window (RFC 9293 §3.10.7.4 "the data is placed in the buffer"),
 * with the SACK blocks to report for them (RFC 2018 §4: the block holding the most recent
 * segment first, then the most recently reported others).
 *
 * One ring of `capacity` bytes: [read, read + unread) is in-order data, the rest of the ring is
 * the window, where out-of-order data lands at its offset from RCV.NXT.
 */

import { Buffer } from 'node:buffer';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../wire/seqnum.js';
import type { SackBlock } from '../wire/tcp.js';

interface Range {
  left: number;
  right: number;
}

export class ReceiveBuffer {
  private buf: Uint8Array;
  private readPos = 0;
  private unread = 0;
  /** Out-of-order ranges (sequence numbers), sorted, disjoint, not adjacent. */
  private readonly ooo: Range[] = [];
  /** A sequence number inside each recently received out-of-order block, most recent first. */
  private recent: number[] = [];
  /** Bytes currently held out of order. */
  private oooBytes = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.buf.length;
  }

  /** In-order bytes the application can read. */
  get readable(): number {
    return this.unread;
  }

  /** Free space beyond RCV.NXT: the window we can offer. */
  get window(): number {
    return this.buf.length - this.unread;
  }

  get hasOutOfOrder(): boolean {
    return this.ooo.length > 0;
  }

  get outOfOrderBytes(): number {
    return this.oooBytes;
  }

  /**
   * Places `data` at sequence `seq` given RCV.NXT `rcvNxt` (the caller trimmed it to the window:
   * rcvNxt <= seq and seq + length <= rcvNxt + window). Returns how far RCV.NXT advances (0 for
   * out-of-order data, more when it fills a gap). `isDuplicate` tells whether every byte was
   * already held.
   */
  insert(rcvNxt: number, seq: number, data: Uint8Array): { advance: number; duplicate: boolean } {
    const n = data.length;
    const cap = this.buf.length;
    const offset = seqDiff(seq, rcvNxt);
    const at = (this.readPos + this.unread + offset) % cap;
    const first = Math.min(n, cap - at);
    this.buf.set(data.subarray(0, first), at);
    if (first < n) this.buf.set(data.subarray(first), 0);
    if (offset > 0) {
      const duplicate = this.addRange(seq, seqAdd(seq, n));
      return { advance: 0, duplicate };
    }
    // In order: RCV.NXT moves past this segment and any out-of-order ranges it reaches.
    let end = seqAdd(seq, n);
    while (this.ooo.length > 0 && seqLe(this.ooo[0]!.left, end)) {
      const r = this.ooo.shift()!;
      this.oooBytes -= seqDiff(r.right, r.left);
      if (seqGt(r.right, end)) end = r.right;
    }
    this.recent = this.recent.filter((s) => seqGe(s, end));
    const advance = seqDiff(end, rcvNxt);
    this.unread += advance;
    return { advance, duplicate: false };
  }

  /** Adds [left, right) to the out-of-order ranges; true when it was all there already. */
  private addRange(left: number, right: number): boolean {
    let i = 0;
    while (i < this.ooo.length && seqLt(this.ooo[i]!.right, left)) i++;
    const cur = this.ooo[i];
    if (cur !== undefined && seqLe(cur.left, left) && seqGe(cur.right, right)) {
      this.touch(left);
      return true;
    }
    let newLeft = left;
    let newRight = right;
    let j = i;
    while (j < this.ooo.length && seqLe(this.ooo[j]!.left, right)) {
      const r = this.ooo[j]!;
      if (seqLt(r.left, newLeft)) newLeft = r.left;
      if (seqGt(r.right, newRight)) newRight = r.right;
      this.oooBytes -= seqDiff(r.right, r.left);
      j++;
    }
    this.ooo.splice(i, j - i, { left: newLeft, right: newRight });
    this.oooBytes += seqDiff(newRight, newLeft);
    this.touch(left);
    return false;
  }

  private touch(seq: number): void {
    this.recent = [seq, ...this.recent.filter((s) => s !== seq)].slice(0, 8);
  }

  /**
   * SACK blocks to send (RFC 2018 §4), at most `max`: the block holding the latest segment
   * first, then the other recently reported blocks.
   */
  sackBlocks(max: number): SackBlock[] {
    const blocks: SackBlock[] = [];
    for (const s of this.recent) {
      if (blocks.length >= max) break;
      const r = this.ooo.find((x) => seqLe(x.left, s) && seqLt(s, x.right));
      if (r === undefined || blocks.some((b) => b.left === r.left)) continue;
      blocks.push({ left: r.left, right: r.right });
    }
    // Ranges never touched recently still deserve reporting when there is room.
    for (const r of this.ooo) {
      if (blocks.length >= max) break;
      if (!blocks.some((b) => b.left === r.left)) blocks.push({ left: r.left, right: r.right });
    }
    return blocks;
  }

  /**
   * Copies out up to `max` in-order bytes, into a Buffer (a Uint8Array) that is not zero-filled
   * first (every byte is written) and that Node streams take as it is.
   */
  read(max: number): Uint8Array {
    const n = Math.min(max, this.unread);
    const out = Buffer.allocUnsafe(n);
    const cap = this.buf.length;
    const first = Math.min(n, cap - this.readPos);
    out.set(this.buf.subarray(this.readPos, this.readPos + first), 0);
    if (first < n) out.set(this.buf.subarray(0, n - first), first);
    this.readPos = (this.readPos + n) % cap;
    this.unread -= n;
    return out;
  }

  /** Grows the ring to `capacity` (autotuning), keeping in-order and out-of-order data in place. */
  grow(capacity: number): void {
    const cap = this.buf.length;
    if (capacity <= cap) return;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(this.readPos), 0);
    next.set(this.buf.subarray(0, this.readPos), cap - this.readPos);
    this.buf = next;
    this.readPos = 0;
  }
}
