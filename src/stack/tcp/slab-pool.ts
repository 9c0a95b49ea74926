/**
 * Receive slabs, reused. Every received byte is copied once into a slab (receiver.ts), and the
 * reader gets views of it. Without reuse each of those bytes is a fresh ArrayBuffer byte: V8
 * counts them against its heap limit (a full collection every few tens of MB at a few Gbit/s)
 * and the kernel hands out fresh zeroed pages (~3 µs per page on our test machines).
 *
 * A consumer done with a chunk it read hands it back with `releaseChunk`. A slab goes back to
 * the pool once its receive buffer moved on to another one (sealed) and every byte written
 * into it was released. A chunk never released only keeps its slab out of the pool (the garbage
 * collector frees it, as without a pool), so releasing is opt-in: only code that knows nobody
 * reads the bytes again releases them (the proxies' bridges after a write completed, the
 * reassembly for the duplicates it drops). Releasing more bytes than a slab holds is a bug;
 * that slab is then never reused, and `slabPoolStats().overReleased` counts it.
 */
import { Buffer } from 'node:buffer';

/** What the pool keeps per slab; the receive buffer filling a slab holds its state. */
export interface SlabState {
  readonly slab: Buffer;
  /** Bytes written into the slab and not yet released. */
  live: number;
  /** Its receive buffer writes no more into it. */
  sealed: boolean;
  /** More bytes were released than written: never reuse it. */
  poisoned: boolean;
}

/** At most this many bytes of free slabs are kept (the rest go to the garbage collector). */
const MAX_POOLED_BYTES = 16 * 1024 * 1024;

const states = new WeakMap<ArrayBufferLike, SlabState>();
const free = new Map<number, SlabState[]>();
let pooledBytes = 0;
const stats = { allocated: 0, reused: 0, overReleased: 0 };

/** A slab of exactly `size` bytes, from the pool when one is free. */
export function takeSlab(size: number): SlabState {
  const list = free.get(size);
  let st = list?.pop();
  // A slab released again while free (a double release) is not handed out.
  while (st?.poisoned) {
    pooledBytes -= size;
    st = list!.pop();
  }
  if (st !== undefined) {
    pooledBytes -= size;
    st.sealed = false;
    stats.reused++;
    return st;
  }
  // Every byte handed out is written first, so no zero-filling; not from Node's shared pool,
  // so the slab is its own ArrayBuffer and a view finds its state.
  const slab = Buffer.allocUnsafeSlow(size);
  const fresh: SlabState = { slab, live: 0, sealed: false, poisoned: false };
  states.set(slab.buffer, fresh);
  stats.allocated++;
  return fresh;
}

/** The receive buffer writes no more into this slab. */
export function sealSlab(st: SlabState): void {
  st.sealed = true;
  if (st.live === 0) recycle(st);
}

/**
 * `n` bytes (default: all) of a chunk read from a receive buffer will not be read again by
 * anyone. Views of other memory are ignored.
 */
export function releaseChunk(chunk: Uint8Array, n = chunk.length): void {
  if (n <= 0) return;
  const st = states.get(chunk.buffer);
  if (st === undefined || st.poisoned) return;
  st.live -= n;
  if (st.live < 0) {
    st.poisoned = true;
    stats.overReleased++;
    return;
  }
  if (st.live === 0 && st.sealed) recycle(st);
}

function recycle(st: SlabState): void {
  if (st.poisoned) return;
  const size = st.slab.length;
  if (pooledBytes + size > MAX_POOLED_BYTES) return;
  let list = free.get(size);
  if (list === undefined) {
    list = [];
    free.set(size, list);
  }
  list.push(st);
  pooledBytes += size;
}

/** Counters: slabs allocated and reused, and slabs released past their bytes (a bug). */
export function slabPoolStats(): {
  allocated: number;
  reused: number;
  overReleased: number;
  pooledBytes: number;
} {
  return { ...stats, pooledBytes };
}

/** Slabs for socket reads: large enough that a 64 KB read rarely needs a second one. */
const READ_SLAB = 256 * 1024;
/** A read gets at least this much room (Node reads up to 64 KB at a time). */
const MIN_READ_ROOM = 64 * 1024;

/**
 * Pooled memory for Node's socket reads (net.connect's `onread` option): each read lands
 * behind the previous one in a pooled slab, so a kernel socket read allocates nothing either
 * (Node's own reads allocate a fresh 64 KB ArrayBuffer each). The views `filled` returns are
 * released like any receive-buffer chunk.
 */
export class SlabReadArena {
  private st: SlabState | undefined;
  private used = 0;

  /** Where the next read goes (Node calls this before each read). */
  next(): Buffer {
    let st = this.st;
    if (st === undefined || st.slab.length - this.used < MIN_READ_ROOM) {
      if (st !== undefined) sealSlab(st);
      st = takeSlab(READ_SLAB);
      this.st = st;
      this.used = 0;
    }
    return st.slab.subarray(this.used);
  }

  /** The last read brought `n` bytes: a view of them, the caller's until it releases it. */
  filled(n: number): Buffer {
    const st = this.st!;
    const view = st.slab.subarray(this.used, this.used + n);
    this.used += n;
    st.live += n;
    return view;
  }
}
