/**
 * The receive-slab pool (src/stack/tcp/slab-pool.ts) under a ReceiveBuffer: a slab comes back
 * once it is full and every byte in it was released (read and released, or dropped as a
 * duplicate by the reassembly), a chunk never released keeps its bytes, a second release of
 * the same bytes is counted and its slab never reused; socket reads through SlabReadArena.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReceiveBuffer } from '../src/stack/tcp/receiver.js';
import { releaseChunk, SlabReadArena, slabPoolStats, takeSlab } from '../src/stack/tcp/slab-pool.js';

/** 256 KiB of window: 64 KiB slabs. */
const CAP = 1 << 18;
const SLAB = 64 * 1024;
const SEG = 4096;

/** Byte i of the stream. */
const byteAt = (i: number) => (i * 7 + (i >>> 12)) & 0xff;
function segment(at: number, n = SEG): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = byteAt(at + i);
  return b;
}
function checkBytes(chunk: Uint8Array, at: number): void {
  for (let i = 0; i < chunk.length; i++) {
    if (chunk[i] !== byteAt(at + i)) assert.fail(`byte ${at + i}: ${chunk[i]}, expected ${byteAt(at + i)}`);
  }
}

/** Feeds [at, at + n) in order (copied from borrowed segments); returns the new end. */
function feed(rb: ReceiveBuffer, at: number, n: number): number {
  for (let end = at + n; at < end; at += SEG) rb.insert(at, at, segment(at, Math.min(SEG, end - at)));
  return at;
}

/** Reads everything as chunks, checking each against the stream. */
function readAll(rb: ReceiveBuffer, at: number): { chunks: Buffer[]; at: number } {
  const chunks: Buffer[] = [];
  while (rb.readable > 0) {
    const c = rb.read(Number.MAX_SAFE_INTEGER, true) as Buffer;
    checkBytes(c, at);
    at += c.length;
    chunks.push(c);
  }
  return { chunks, at };
}

describe('receive-slab pool', () => {
  it('a full slab whose bytes were all released is the next slab taken', () => {
    const rb = new ReceiveBuffer(CAP);
    let end = feed(rb, 0, SLAB); // exactly one slab
    const first = readAll(rb, 0);
    const firstSlab = first.chunks[0]!.buffer;
    end = feed(rb, end, SEG); // a second slab: the first is sealed
    for (const c of first.chunks) releaseChunk(c);
    const before = slabPoolStats();
    end = feed(rb, end, SLAB); // fills the second, then takes a third: the first one again
    const after = slabPoolStats();
    assert.equal(after.reused - before.reused, 1);
    assert.equal(after.allocated, before.allocated);
    const next = readAll(rb, SLAB);
    assert.equal(next.at, end);
    assert.ok(
      next.chunks.some((c) => c.buffer === firstSlab),
      'the new bytes are in the first slab',
    );
  });

  it('a chunk never released keeps its bytes while megabytes pass through reused slabs', () => {
    const rb = new ReceiveBuffer(CAP);
    let end = feed(rb, 0, SLAB);
    const first = readAll(rb, 0);
    const kept = first.chunks[0]!;
    for (const c of first.chunks.slice(1)) releaseChunk(c);
    const before = slabPoolStats();
    let at = SLAB;
    for (let i = 0; i < 64; i++) {
      end = feed(rb, end, SLAB);
      const r = readAll(rb, at);
      at = r.at;
      for (const c of r.chunks) {
        assert.notEqual(c.buffer, kept.buffer, 'the slab of an unreleased chunk was reused');
        releaseChunk(c);
      }
    }
    checkBytes(kept, 0);
    const after = slabPoolStats();
    assert.ok(after.reused - before.reused >= 60, `${after.reused - before.reused} reuses`);
    assert.ok(after.allocated - before.allocated <= 3, `${after.allocated - before.allocated} new slabs`);
  });

  it('duplicates the reassembly drops are released: both copies of a range come back', () => {
    // Two sources carry the same bytes (as two subflows do after a reinjection); a third buffer
    // reassembles their chunks, handed over for good (insertOwned) as MPTCP does.
    const sources = [new ReceiveBuffer(CAP), new ReceiveBuffer(CAP)];
    const parts = sources.map((src) => {
      feed(src, 0, SLAB);
      const chunks = readAll(src, 0).chunks;
      feed(src, SLAB, SEG); // seals the slab those chunks are in
      return Buffer.concat(chunks).equals(segment(0, SLAB)) ? chunks : assert.fail('source bytes');
    });
    const piece = (chunks: Buffer[], from: number, to: number): Buffer => {
      // The source's chunks are 64 KiB in one (consecutive in-order segments join); cut views.
      assert.equal(chunks.length, 1);
      return chunks[0]!.subarray(from, to);
    };
    const dst = new ReceiveBuffer(CAP);
    const pooledBefore = slabPoolStats().pooledBytes;
    const k = 1024;
    dst.insertOwned(0, 32 * k, piece(parts[0]!, 32 * k, SLAB)); // out of order: kept
    dst.insertOwned(0, 40 * k, piece(parts[1]!, 40 * k, SLAB)); // held already: dropped
    dst.insertOwned(0, 16 * k, piece(parts[1]!, 16 * k, 40 * k)); // [16 K, 32 K) new, the rest dropped
    // In order, covering the piece [16 K, 32 K) from the other source: that piece is dropped.
    assert.equal(dst.insertOwned(0, 0, piece(parts[0]!, 0, 32 * k)).advance, SLAB);
    // Source 1's first 16 K are below RCV.NXT now: MPTCP's place() releases such bytes itself.
    releaseChunk(piece(parts[1]!, 0, 16 * k));
    const out = readAll(dst, 0);
    assert.equal(out.at, SLAB);
    for (const c of out.chunks) releaseChunk(c);
    // Every byte of both sources' slabs was read once or dropped once: both are free again.
    assert.equal(slabPoolStats().pooledBytes - pooledBefore, 2 * SLAB);
    assert.equal(slabPoolStats().overReleased, 0);
  });

  it('a second release of the same bytes is counted, and that slab is never handed out again', () => {
    const rb = new ReceiveBuffer(CAP);
    let end = feed(rb, 0, SLAB);
    const chunks = readAll(rb, 0).chunks;
    const slab = chunks[0]!.buffer;
    end = feed(rb, end, SEG);
    for (const c of chunks) releaseChunk(c);
    const before = slabPoolStats();
    releaseChunk(chunks[0]!); // a bug in some reader
    assert.equal(slabPoolStats().overReleased - before.overReleased, 1);
    for (let i = 0; i < 8; i++) assert.notEqual(takeSlab(SLAB).slab.buffer, slab);
  });

  it('socket reads: each lands behind the last in a pooled slab, and released slabs come back', () => {
    const arena = new SlabReadArena();
    const before = slabPoolStats();
    const seen = new Set<ArrayBufferLike>();
    for (let i = 0; i < 100; i++) {
      const room = arena.next();
      assert.ok(room.length >= 64 * 1024);
      room.fill(i, 0, 1000);
      const got = arena.filled(1000 + i);
      assert.equal(got.length, 1000 + i);
      assert.equal(got[999], i);
      seen.add(got.buffer);
      releaseChunk(got);
    }
    // 100 reads of ~1 KB share one 256 KiB slab.
    assert.equal(seen.size, 1);
    for (let i = 0; i < 200; i++) {
      arena.next();
      releaseChunk(arena.filled(60 * 1024));
    }
    const after = slabPoolStats();
    assert.ok(after.reused - before.reused >= 40, `${after.reused - before.reused} reuses`);
    assert.ok(after.allocated - before.allocated <= 3, `${after.allocated - before.allocated} new slabs`);
  });
});
