/**
 * Output buffers for one flush: frames are carved out of a few large chunks that are reused once
 * `device.write` has returned (devices copy what they keep), so sending allocates nothing in the
 * steady state.
 */
const CHUNK_SIZE = 256 * 1024;

export class FrameArena {
  private readonly chunks: Uint8Array[] = [];
  private chunkIndex = 0;
  private offset = 0;

  alloc(length: number): Uint8Array {
    // Larger than a chunk: a one-off buffer (a super-packet never is, at 64 KB).
    if (length > CHUNK_SIZE) return new Uint8Array(length);
    for (;;) {
      let chunk = this.chunks[this.chunkIndex];
      if (chunk === undefined) {
        chunk = new Uint8Array(CHUNK_SIZE);
        this.chunks.push(chunk);
      }
      if (this.offset + length <= chunk.length) {
        const out = chunk.subarray(this.offset, this.offset + length);
        // Keep frames 8-byte aligned: the checksum code sums 32-bit words fastest when aligned.
        this.offset = (this.offset + length + 7) & ~7;
        return out;
      }
      this.chunkIndex++;
      this.offset = 0;
    }
  }

  /** Everything handed out so far may be overwritten. Frees chunks beyond a few kept warm. */
  reset(): void {
    if (this.chunks.length > 16) this.chunks.length = 16;
    this.chunkIndex = 0;
    this.offset = 0;
  }
}
