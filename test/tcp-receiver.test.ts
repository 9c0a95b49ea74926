/**
 * The receive side: the buffer (one copy in, views out, out-of-order pieces, SACK blocks) and,
 * packet-driven, the window it lets the connection advertise (receiver SWS avoidance).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReceiveBuffer } from '../src/stack/tcp/receiver.js';
import { LOCAL_ISN, pattern, REMOTE_ISN, TcpFixture } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;

/** Reads everything, one chunk per call, and returns the chunks. */
function drain(rb: ReceiveBuffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  while (rb.readable > 0) out.push(rb.read(Number.MAX_SAFE_INTEGER, true));
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}

/** Byte equality whatever the Uint8Array subclass (Buffer or not). */
function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
  assert.ok(actual !== undefined);
  assert.deepEqual(Buffer.from(actual), Buffer.from(expected));
}

describe('receive buffer', () => {
  it('insertOwned keeps the bytes it is handed, in order and out of order, without a copy', () => {
    const rb = new ReceiveBuffer(1 << 16);
    // Each in a memory block of its own (Buffer.from shares one pool), so a view shows as one.
    const own = (text: string) => {
      const b = Buffer.allocUnsafeSlow(text.length);
      b.write(text);
      return b;
    };
    const owned = own('owned bytes');
    const later = own('xxlater');
    const fill = own('gap fill!');
    assert.equal(rb.insertOwned(1000, 1000, owned).advance, owned.length);
    // Out of order (MPTCP: data from the faster path): kept as a view, overlap trimmed.
    assert.equal(rb.insertOwned(1011, 1018, later).advance, 0);
    assert.equal(rb.insertOwned(1011, 1011, fill).advance, 9 + 5);
    assert.equal(rb.read(1 << 16, true), owned, 'the very same Buffer, not a copy');
    const gap = rb.read(1 << 16, true);
    assert.equal(gap.buffer, fill.buffer, 'the gap fill is a view of the Buffer handed over');
    const rest = rb.read(1 << 16, true);
    assert.equal(rest.buffer, later.buffer, 'so is the out-of-order piece');
    assert.equal(Buffer.from(rest).toString(), 'later');
    assert.equal(rb.readable, 0);
    assert.equal(rb.window, 1 << 16);
  });

  it('copies a segment once: the source may be reused, consecutive segments read as one chunk', () => {
    const rb = new ReceiveBuffer(65536);
    const source = pattern(1000);
    assert.deepEqual(rb.insert(100, 100, source), { advance: 1000, duplicate: false });
    source.fill(0); // the device reuses its read buffer
    rb.insert(1100, 1100, pattern(500, 1000));
    assert.equal(rb.readable, 1500);
    assert.equal(rb.window, 65536 - 1500);
    const chunks = drain(rb);
    assert.equal(chunks.length, 1);
    sameBytes(chunks[0], pattern(1500));
    assert.ok(Buffer.isBuffer(chunks[0]), 'a Buffer, pushed to a stream as it is');
    assert.equal(rb.window, 65536);
  });

  it('a chunk handed out is never written again', () => {
    const rb = new ReceiveBuffer(65536);
    rb.insert(0, 0, pattern(100));
    const first = rb.read(60, true);
    rb.insert(100, 100, pattern(100, 100));
    const rest = drain(rb);
    sameBytes(first, pattern(60));
    sameBytes(concat(rest), pattern(140, 60));
  });

  it('out-of-order pieces join the stream when the gap fills, overlaps counted once', () => {
    const rb = new ReceiveBuffer(65536);
    const all = pattern(4000);
    assert.deepEqual(rb.insert(0, 2000, all.subarray(2000, 3000)), { advance: 0, duplicate: false });
    assert.deepEqual(rb.insert(0, 1000, all.subarray(1000, 1500)), { advance: 0, duplicate: false });
    // Overlaps both pieces and the hole between them.
    assert.deepEqual(rb.insert(0, 1200, all.subarray(1200, 2500)), { advance: 0, duplicate: false });
    assert.deepEqual(rb.insert(0, 1500, all.subarray(1500, 2000)), { advance: 0, duplicate: true });
    assert.equal(rb.outOfOrderBytes, 2000);
    assert.deepEqual(rb.sackBlocks(4), [{ left: 1000, right: 3000 }]);
    // The gap fill overlaps the first piece.
    assert.deepEqual(rb.insert(0, 0, all.subarray(0, 1100)), { advance: 3000, duplicate: false });
    assert.equal(rb.hasOutOfOrder, false);
    assert.equal(rb.readable, 3000);
    rb.insert(3000, 3000, all.subarray(3000));
    sameBytes(concat(drain(rb)), all);
  });

  it('SACK blocks: the most recent first, then the others (RFC 2018 §4)', () => {
    const rb = new ReceiveBuffer(65536);
    rb.insert(0, 100, pattern(100));
    rb.insert(0, 300, pattern(100));
    rb.insert(0, 500, pattern(100));
    assert.deepEqual(rb.sackBlocks(3), [
      { left: 500, right: 600 },
      { left: 300, right: 400 },
      { left: 100, right: 200 },
    ]);
    rb.insert(0, 150, pattern(100, 50)); // extends the first block
    assert.deepEqual(rb.sackBlocks(2), [
      { left: 100, right: 250 },
      { left: 500, right: 600 },
    ]);
  });

  it('read(max) without oneChunk returns everything up to max, across slabs', () => {
    const rb = new ReceiveBuffer(1 << 20);
    const all = pattern(300_000);
    let seq = 0;
    for (let off = 0; off < all.length; off += 60_000) {
      const part = all.subarray(off, Math.min(all.length, off + 60_000));
      rb.insert(seq, seq, part);
      seq += part.length;
    }
    const got = rb.read(250_000);
    assert.equal(got.length, 250_000);
    sameBytes(got, all.subarray(0, 250_000));
    sameBytes(concat(drain(rb)), all.subarray(250_000));
  });

  it('sequence numbers wrap', () => {
    const rb = new ReceiveBuffer(65536);
    const start = 0xffffff00;
    rb.insert(start, (start + 300) >>> 0, pattern(100, 300));
    const r = rb.insert(start, start, pattern(300));
    assert.equal(r.advance, 400);
    sameBytes(concat(drain(rb)), pattern(400));
  });

  it('growing keeps the data and widens the window', () => {
    const rb = new ReceiveBuffer(4000);
    rb.insert(0, 0, pattern(3000));
    rb.grow(8000);
    assert.equal(rb.capacity, 8000);
    assert.equal(rb.window, 5000);
    sameBytes(concat(drain(rb)), pattern(3000));
  });
});

describe('receive window (RFC 9293 §3.8.6.2.2 receiver SWS avoidance)', () => {
  it('with a paused reader the window stays 0 until min(buffer/2, MSS) is free, then opens at once', () => {
    // Window scale 7 on our side (64 KiB buffer, 4 MiB allowed), MSS 1460, no timestamps.
    const f = TcpFixture.established(
      { windowScale: true, recvBufferSize: 65536, maxRecvBufferSize: 4 << 20, mss: 1460 },
      [{ type: 'mss', mss: 1460 }, { type: 'nop' }, { type: 'window-scale', shift: 7 }],
    );
    let seq = R;
    // The peer fills whatever we advertise; nobody reads.
    for (let i = 0; i < 100 && f.conn.info().rcvWnd > 0; i++) {
      const n = Math.min(1460, f.conn.info().rcvWnd);
      f.send({ flags: 'A', seq, ack: L, payload: pattern(n) });
      seq += n;
      f.collect();
    }
    assert.equal(f.conn.info().rcvWnd, 0);
    const filled = seq - R;
    assert.ok(filled > 65536 - 1460 && filled <= 65536, `filled ${filled}`);
    const probe = () => f.send({ flags: 'A', seq, ack: L, payload: pattern(1) });
    // 100 and then 600 bytes read: less than an MSS is free, so no update, and a zero-window
    // probe is answered with window 0, never with a sliver.
    f.conn.read(100);
    f.expectNothing();
    probe();
    f.expect({ flags: 'A', seq: L, ack: seq, window: 0 });
    f.conn.read(500);
    probe();
    f.expect({ flags: 'A', seq: L, ack: seq, window: 0 });
    // Another 900: now more than an MSS is free and the window opens with all of it (scaled).
    f.conn.read(900);
    const free = 65536 - filled + 1500;
    assert.ok(free >= 1460);
    probe();
    f.expect({ flags: 'A', seq: L, ack: seq, window: Math.floor(free / 128) });
    assert.equal(f.conn.info().rcvWnd, Math.floor(free / 128) * 128);
  });
});
