/**
 * The send buffer: bytes the application wrote that are not yet acknowledged, from the
 * sequence number of the first one (SND.UNA once the SYN is acknowledged). A fixed-capacity
 * ring: `write` takes what fits (backpressure), `ack` drops acknowledged bytes, `view` gives a
 * borrowed view of any range (copied to a scratch buffer only when it wraps).
 */
export class SendBuffer {
  private readonly buf: Uint8Array;
  private head = 0;
  private len = 0;
  private scratch = new Uint8Array(0);

  constructor(readonly capacity: number) {
    this.buf = new Uint8Array(capacity);
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
    const tail = (this.head + this.len) % this.capacity;
    const first = Math.min(n, this.capacity - tail);
    this.buf.set(data.subarray(0, first), tail);
    if (first < n) this.buf.set(data.subarray(first, n), 0);
    this.len += n;
    return n;
  }

  /** Drops the first `n` bytes (acknowledged). */
  ack(n: number): void {
    const k = Math.min(n, this.len);
    this.head = (this.head + k) % this.capacity;
    this.len -= k;
    if (this.len === 0) this.head = 0;
  }

  /** Bytes [offset, offset + n) from the start; a borrowed view valid until the next call. */
  view(offset: number, n: number): Uint8Array {
    const start = (this.head + offset) % this.capacity;
    if (start + n <= this.capacity) return this.buf.subarray(start, start + n);
    if (this.scratch.length < n) this.scratch = new Uint8Array(Math.max(n, 65536));
    const first = this.capacity - start;
    this.scratch.set(this.buf.subarray(start), 0);
    this.scratch.set(this.buf.subarray(0, n - first), first);
    return this.scratch.subarray(0, n);
  }
}
