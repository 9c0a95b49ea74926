/**
 * The send buffer: bytes the application wrote that are not yet acknowledged, from the
 * sequence number of the first one (SND.UNA once the SYN is acknowledged). A fixed-capacity
 * ring: `write` takes what fits (backpressure), `ack` drops acknowledged bytes, `view` gives a
 * borrowed view of any range (copied to a scratch buffer only when it wraps).
 */
/** What a send buffer allocates at first; it doubles as it fills, up to its capacity. */
const INITIAL_ALLOCATION = 64 * 1024;

export class SendBuffer {
  private buf: Uint8Array;
  private head = 0;
  private len = 0;
  private scratch = new Uint8Array(0);

  constructor(readonly capacity: number) {
    // Not the whole capacity at once: a short connection uses a few KB of it, and a fresh
    // multi-MiB buffer per connection (4 MiB for MPTCP's) cost milliseconds of allocation and
    // garbage collection each.
    this.buf = new Uint8Array(Math.min(capacity, INITIAL_ALLOCATION));
  }

  /** Bytes allocated now (at most `capacity`). */
  get allocated(): number {
    return this.buf.length;
  }

  /** Bytes held (unacknowledged: in flight or not yet sent). */
  get length(): number {
    return this.len;
  }

  get free(): number {
    return this.capacity - this.len;
  }

  /** Appends as much of `data` as fits; returns the number of bytes taken. */
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.capacity - this.len);
    if (n === 0) return 0;
    if (this.len + n > this.buf.length) this.grow(this.len + n);
    const size = this.buf.length;
    const tail = (this.head + this.len) % size;
    const first = Math.min(n, size - tail);
    this.buf.set(data.subarray(0, first), tail);
    if (first < n) this.buf.set(data.subarray(first, n), 0);
    this.len += n;
    return n;
  }

  /** Drops the first `n` bytes (acknowledged). */
  ack(n: number): void {
    const k = Math.min(n, this.len);
    this.head = (this.head + k) % this.buf.length;
    this.len -= k;
    if (this.len === 0) this.head = 0;
  }

  /** Bytes [offset, offset + n) from the start; a borrowed view valid until the next call. */
  view(offset: number, n: number): Uint8Array {
    const size = this.buf.length;
    const start = (this.head + offset) % size;
    if (start + n <= size) return this.buf.subarray(start, start + n);
    if (this.scratch.length < n) this.scratch = new Uint8Array(Math.max(n, 65536));
    const first = size - start;
    this.scratch.set(this.buf.subarray(start), 0);
    this.scratch.set(this.buf.subarray(0, n - first), first);
    return this.scratch.subarray(0, n);
  }

  /** A larger ring (doubling, at most `capacity`) holding the same bytes from offset 0. */
  private grow(need: number): void {
    let size = Math.max(this.buf.length, 1);
    while (size < need) size *= 2;
    const next = new Uint8Array(Math.min(size, this.capacity));
    const first = Math.min(this.len, this.buf.length - this.head);
    next.set(this.buf.subarray(this.head, this.head + first), 0);
    if (first < this.len) next.set(this.buf.subarray(0, this.len - first), first);
    this.buf = next;
    this.head = 0;
  }
}
