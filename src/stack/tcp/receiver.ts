/**
 * The receive buffer: in-order bytes the application has not read, and out-of-order segments
 * held within the window (RFC 9293 §3.10.7.4 "the data is placed in the buffer"), with the SACK
 * blocks to report for them (RFC 2018 §4: the block holding the most recent segment first, then
 * the most recently reported others).
 *
 * Every received byte is copied exactly once: out of the device's (borrowed) read buffer into a
 * slab, a large Buffer filled front to back and never written twice at the same place. `read`
 * hands out views of the slabs, which the application then owns: no second copy, and no
 * allocation per segment (consecutive in-order segments become one chunk, cut only when read).
 * A slab is dropped once full; the views the application still holds keep it alive. Slabs come
 * from a pool (slab-pool.ts) and go back once every byte in them was released: the bytes this
 * buffer drops (duplicates of what it holds) it releases itself, the bytes it hands out are
 * released by readers that know they are done with them.
 *
 * The window is `capacity` minus the unread in-order bytes; out-of-order data lies inside it.
 */

import { Buffer } from 'node:buffer';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../wire/seqnum.js';
import type { SackBlock } from '../wire/tcp.js';
import { releaseChunk, type SlabState, sealSlab, takeSlab } from './slab-pool.js';

/** Slab size bounds: small for a connection that carries little, large once it streams. */
const MIN_SLAB = 16 * 1024;
const MAX_SLAB = 64 * 1024;
const EMPTY = Buffer.alloc(0);

interface Range {
  left: number;
  right: number;
}

/** Out-of-order bytes [seq, seq + data.length), a view into a slab. */
interface Piece {
  seq: number;
  data: Buffer;
}

export interface InsertResult {
  /** How far RCV.NXT advances: 0 for out-of-order data, more when a gap is filled. */
  advance: number;
  /** Every byte was held already. */
  duplicate: boolean;
}

export class ReceiveBuffer {
  private cap: number;
  /** In-order bytes not yet read: the chunks queue[head..], then the open region. */
  private unread = 0;
  private queue: Buffer[] = [];
  private head = 0;
  /** The slab being filled (with its pool state); bytes [slabUsed, slab.length) are free. */
  private filling: SlabState | undefined;
  private slabUsed = 0;
  /**
   * In-order bytes at the end of the slab not yet cut into a chunk: [openStart, slabUsed) when
   * `openLen` > 0 (so the next in-order segment just extends it).
   */
  private openStart = 0;
  private openLen = 0;
  /** Out-of-order ranges (sequence numbers), sorted, disjoint, not adjacent. */
  private readonly ooo: Range[] = [];
  /** The out-of-order bytes themselves, sorted, non-overlapping. */
  private pieces: Piece[] = [];
  /** A sequence number inside each recently received out-of-order block, most recent first. */
  private recent: number[] = [];
  /** Bytes currently held out of order. */
  private oooBytes = 0;
  /** Reused: `insert` runs once per segment and its caller reads the fields at once. */
  private readonly result: InsertResult = { advance: 0, duplicate: false };

  constructor(capacity: number) {
    this.cap = capacity;
  }

  get capacity(): number {
    return this.cap;
  }

  /** In-order bytes the application can read. */
  get readable(): number {
    return this.unread;
  }

  /** Free space beyond RCV.NXT: the window we can offer. */
  get window(): number {
    return this.cap - this.unread;
  }

  get hasOutOfOrder(): boolean {
    return this.ooo.length > 0;
  }

  get outOfOrderBytes(): number {
    return this.oooBytes;
  }

  /**
   * Places `data` (borrowed: copied before returning) at sequence `seq` given RCV.NXT `rcvNxt`
   * (the caller trimmed it to the window: rcvNxt <= seq and seq + length <= rcvNxt + window).
   * The result object is reused by the next call.
   */
  insert(rcvNxt: number, seq: number, data: Uint8Array): InsertResult {
    return this.place(rcvNxt, seq, data, false);
  }

  /**
   * `insert` for bytes the caller hands over for good (a view it owns and will never change,
   * such as a chunk read from another ReceiveBuffer): they are kept as they are, in order or out
   * of order, without a copy (MPTCP moves a subflow's bytes to the connection this way; about
   * half of them arrive ahead of the data-level RCV.NXT when two paths are in use).
   */
  insertOwned(rcvNxt: number, seq: number, data: Buffer): InsertResult {
    return this.place(rcvNxt, seq, data, true);
  }

  private place(rcvNxt: number, seq: number, data: Uint8Array, owned: boolean): InsertResult {
    const res = this.result;
    const offset = seqDiff(seq, rcvNxt);
    if (offset > 0) {
      res.advance = 0;
      res.duplicate = this.insertOutOfOrder(seq, data, owned);
      return res;
    }
    if (owned && data.length > 0) {
      this.closeOpen();
      this.queue.push(data as Buffer);
      this.unread += data.length;
    } else this.appendInOrder(data);
    // RCV.NXT moves past this segment and any out-of-order data it reaches.
    const placedEnd = seqAdd(seq, data.length);
    let end = placedEnd;
    if (this.ooo.length > 0) {
      while (this.ooo.length > 0 && seqLe(this.ooo[0]!.left, end)) {
        const r = this.ooo.shift()!;
        this.oooBytes -= seqDiff(r.right, r.left);
        if (seqGt(r.right, end)) end = r.right;
      }
      this.takePieces(placedEnd, end);
      if (this.recent.length > 0) this.recent = this.recent.filter((s) => seqGe(s, end));
    }
    const advance = seqDiff(end, rcvNxt);
    this.unread += advance - data.length;
    res.advance = advance;
    res.duplicate = false;
    return res;
  }

  /**
   * Up to `max` in-order bytes as a Buffer the caller owns. With `oneChunk` it is one
   * contiguous stretch of a slab (a view: no copy), possibly fewer bytes than are readable;
   * otherwise all of min(max, readable), copied together only when they span several chunks.
   */
  read(max: number, oneChunk = false): Uint8Array {
    const want = Math.min(max, this.unread);
    if (oneChunk || this.headLength() >= want) return this.readChunk(want);
    const out = Buffer.allocUnsafe(want);
    let at = 0;
    while (at < want) {
      const chunk = this.readChunk(want - at);
      out.set(chunk, at);
      at += chunk.length;
      releaseChunk(chunk);
    }
    return out;
  }

  /** Bytes in the first chunk (or the open region when no chunk is queued). */
  private headLength(): number {
    return this.head < this.queue.length ? this.queue[this.head]!.length : this.openLen;
  }

  private readChunk(max: number): Buffer {
    let out: Buffer;
    if (this.head < this.queue.length) {
      const chunk = this.queue[this.head]!;
      if (chunk.length <= max) {
        out = chunk;
        this.queue[this.head++] = EMPTY;
        if (this.head === this.queue.length) {
          this.queue.length = 0;
          this.head = 0;
        }
      } else {
        out = chunk.subarray(0, max);
        this.queue[this.head] = chunk.subarray(max);
      }
    } else {
      const n = Math.min(max, this.openLen);
      out = this.filling!.slab.subarray(this.openStart, this.openStart + n);
      this.openStart += n;
      this.openLen -= n;
    }
    this.unread -= out.length;
    return out;
  }

  /** Grows the buffer to `capacity` (autotuning); nothing moves. */
  grow(capacity: number): void {
    if (capacity > this.cap) this.cap = capacity;
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

  // ------------------------------------------------------------------------------------------

  /** Copies in-order bytes behind the unread ones, extending the open region when it can. */
  private appendInOrder(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    if (this.openLen > 0 && this.filling!.slab.length - this.slabUsed >= n) {
      this.filling!.slab.set(data, this.slabUsed);
      this.slabUsed += n;
      this.filling!.live += n;
      this.openLen += n;
      this.unread += n;
      return;
    }
    this.closeOpen();
    const at = this.reserve(n);
    this.filling!.slab.set(data, at);
    this.openStart = at;
    this.openLen = n;
    this.unread += n;
  }

  /** Cuts the open region into a chunk, so that later slab bytes need not follow it. */
  private closeOpen(): void {
    if (this.openLen === 0) return;
    this.queue.push(this.filling!.slab.subarray(this.openStart, this.openStart + this.openLen));
    this.openStart += this.openLen;
    this.openLen = 0;
  }

  /** Room for `n` bytes in the current slab (a new one when it has too little): the offset. */
  private reserve(n: number): number {
    const slab = this.filling?.slab;
    if (slab !== undefined && slab.length - this.slabUsed >= n) {
      const at = this.slabUsed;
      this.slabUsed += n;
      this.filling!.live += n;
      return at;
    }
    if (this.filling !== undefined) sealSlab(this.filling);
    const size = Math.max(n, Math.min(MAX_SLAB, Math.max(MIN_SLAB, this.cap >>> 2)));
    const st = takeSlab(size);
    st.live = n;
    this.filling = st;
    this.slabUsed = n;
    this.openStart = 0;
    return 0;
  }

  /**
   * Moves the out-of-order pieces below `end` (the new RCV.NXT) to the in-order queue; the
   * in-order bytes just placed reach `placedEnd` and may cover some of them.
   */
  private takePieces(placedEnd: number, end: number): void {
    const pieces = this.pieces;
    let cursor = placedEnd;
    let i = 0;
    for (; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (seqGe(p.seq, end)) break;
      const pEnd = seqAdd(p.seq, p.data.length);
      // Bytes the in-order data brought already are dropped.
      if (seqLe(pEnd, cursor)) {
        releaseChunk(p.data);
        continue;
      }
      const skip = seqDiff(cursor, p.seq);
      this.closeOpen();
      releaseChunk(p.data, skip);
      this.queue.push(skip > 0 ? p.data.subarray(skip) : p.data);
      cursor = pEnd;
    }
    if (i > 0) this.pieces = pieces.slice(i);
  }

  /**
   * Stores the bytes of [seq, seq + n) not held yet (`owned`: as views of `data`, else copied);
   * true when all of them were.
   */
  private insertOutOfOrder(seq: number, data: Uint8Array, owned: boolean): boolean {
    const right = seqAdd(seq, data.length);
    const duplicate = this.addRange(seq, right);
    if (duplicate) {
      if (owned) releaseChunk(data);
      return true;
    }
    // The parts no piece covers yet, copied into the slab.
    const added: Piece[] = [];
    let cursor = seq;
    for (const p of this.pieces) {
      const pEnd = seqAdd(p.seq, p.data.length);
      if (seqLe(pEnd, cursor)) continue;
      if (seqGe(p.seq, right)) break;
      if (seqLt(cursor, p.seq))
        added.push(this.piece(cursor, data.subarray(seqDiff(cursor, seq), seqDiff(p.seq, seq)), owned));
      if (seqGt(pEnd, cursor)) cursor = pEnd;
    }
    if (seqLt(cursor, right)) added.push(this.piece(cursor, data.subarray(seqDiff(cursor, seq)), owned));
    if (owned) {
      // The bytes held already are dropped.
      let kept = 0;
      for (const p of added) kept += p.data.length;
      releaseChunk(data, data.length - kept);
    }
    if (added.length > 0) {
      const all = this.pieces.concat(added);
      all.sort((a, b) => seqDiff(a.seq, b.seq));
      this.pieces = all;
    }
    return false;
  }

  private piece(seq: number, bytes: Uint8Array, owned: boolean): Piece {
    if (owned) return { seq, data: bytes as Buffer };
    this.closeOpen();
    const at = this.reserve(bytes.length);
    const slab = this.filling!.slab;
    slab.set(bytes, at);
    return { seq, data: slab.subarray(at, at + bytes.length) };
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
}
