import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpEvent } from '../src/stack/tcp/connection.js';
import { LOCAL_ISN, pattern, REMOTE_ISN, sack, TcpFixture } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;

describe('TCP data transfer', () => {
  it('sends at most the peer window', () => {
    const f = TcpFixture.established({}, [MSS], 1000);
    const data = pattern(3000);
    assert.equal(f.conn.write(data), 3000);
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1000) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: L + 1000, window: 2000 });
    f.expect(
      { flags: 'A', seq: L + 1000, ack: R, payload: data.subarray(1000, 2460) },
      { flags: 'PA', seq: L + 2460, ack: R, payload: data.subarray(2460, 3000) },
    );
  });

  it('the initial congestion window is 10 segments (RFC 6928)', () => {
    const f = TcpFixture.established({}, [MSS]);
    const data = pattern(12 * 1460);
    f.conn.write(data);
    const segs = f.collect();
    assert.equal(segs.length, 10);
    assert.deepEqual(
      segs.map((s) => s.seq),
      Array.from({ length: 10 }, (_, i) => L + i * 1460),
    );
    f.expectNothing();
  });

  it('super-segments: one payload of many MSS with gsoSize = MSS, still within cwnd', () => {
    const f = TcpFixture.established({ maxPayload: 65536 }, [MSS]);
    const data = pattern(12 * 1460);
    f.conn.write(data);
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 14600), gsoSize: 1460 });
    f.send({ flags: 'A', seq: R, ack: L + 14600 });
    f.expect({ flags: 'PA', seq: L + 14600, ack: R, payload: data.subarray(14600), gsoSize: 1460 });
  });

  it('Nagle holds a small segment while an earlier small one is unacknowledged', () => {
    const f = TcpFixture.established({}, [MSS]);
    f.conn.write(new TextEncoder().encode('one'));
    f.expect({ flags: 'PA', seq: L, ack: R, payload: 'one' });
    f.conn.write(new TextEncoder().encode('two'));
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 200, 'only the RTO is pending');
    f.send({ flags: 'A', seq: R, ack: L + 3 });
    f.expect({ flags: 'PA', seq: L + 3, ack: R, payload: 'two' });
  });

  it('with Nagle off small segments go at once', () => {
    const f = TcpFixture.established({ nagle: false }, [MSS]);
    f.conn.write(new TextEncoder().encode('one'));
    f.expect({ flags: 'PA', seq: L, ack: R, payload: 'one' });
    f.conn.write(new TextEncoder().encode('two'));
    f.expect({ flags: 'PA', seq: L + 3, ack: R, payload: 'two' });
  });

  it('write takes what the send buffer holds; WRITABLE when ACKs free room', () => {
    const f = TcpFixture.established({ sendBufferSize: 100 }, [MSS]);
    assert.equal(f.conn.write(pattern(150)), 100);
    assert.equal(f.conn.write(pattern(1)), 0);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L + 60 });
    assert.equal(f.conn.takeEvents(), TcpEvent.WRITABLE);
    assert.equal(f.conn.writableLength, 60);
  });

  it('delayed ACK: one segment is acknowledged after the timer, two at once', () => {
    const f = TcpFixture.established({ delayedAckMs: 40, mss: 1000 }, [MSS]);
    f.send({ flags: 'PA', seq: R, ack: L, payload: pattern(1000) });
    assert.equal(f.conn.takeEvents(), TcpEvent.READABLE);
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 40);
    f.advance(40);
    f.expect({ flags: 'A', seq: L, ack: R + 1000, window: 64535 });
    f.send({ flags: 'A', seq: R + 1000, ack: L, payload: pattern(1000) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R + 2000, ack: L, payload: pattern(1000) });
    f.expect({ flags: 'A', seq: L, ack: R + 3000, window: 62535 });
    assert.equal(f.conn.counters.delayedAcks, 1);
  });

  it('delayed ACK: a steady flow of a few segments per round trip has every segment ACKed at once', () => {
    const f = TcpFixture.accepting({ delayedAckMs: 40, mss: 1000 }, [MSS]);
    f.collect();
    f.advance(50); // the handshake measures a 50 ms RTT
    f.send({ flags: 'A', seq: R, ack: L });
    f.collect();
    // First round trip: three segments; the third waits for the delayed-ACK timer.
    f.send({ flags: 'A', seq: R, ack: L, payload: pattern(1000) });
    f.send({ flags: 'A', seq: R + 1000, ack: L, payload: pattern(1000) });
    f.expect({ flags: 'A', seq: L, ack: R + 2000, window: 63535 });
    f.send({ flags: 'A', seq: R + 2000, ack: L, payload: pattern(1000) });
    f.expectNothing();
    f.advance(40);
    f.expect({ flags: 'A', seq: L, ack: R + 3000, window: 62535 });
    // A round trip later the flow is known to be a small window: no segment waits.
    f.advance(10);
    f.send({ flags: 'A', seq: R + 3000, ack: L, payload: pattern(1000) });
    f.expect({ flags: 'A', seq: L, ack: R + 4000, window: 61535 });
    assert.equal(f.conn.counters.delayedAcks, 1);
  });

  it('the window reflects unread data; reading reopens it with a window update', () => {
    const f = TcpFixture.established({ recvBufferSize: 4000, mss: 1000 }, [MSS]);
    f.send({ flags: 'A', seq: R, ack: L, window: 65535, payload: pattern(1000) });
    f.send({ flags: 'A', seq: R + 1000, ack: L, payload: pattern(1000) });
    // The handshake advertised 4000; two unread segments leave 2000.
    f.expect({ flags: 'A', seq: L, ack: R + 2000, window: 2000 });
    f.send({ flags: 'A', seq: R + 2000, ack: L, payload: pattern(2000) });
    f.expect({ flags: 'A', seq: L, ack: R + 4000, window: 0 });
    f.send({ flags: 'A', seq: R + 4000, ack: L, payload: pattern(1) });
    f.expect({ flags: 'A', seq: L, ack: R + 4000, window: 0 });
    assert.equal(f.conn.counters.dropOutOfWindow, 1);
    assert.equal(f.conn.read(1500)?.length, 1500);
    f.expectNothing(); // 1500 < 2 * MSS: not worth an update yet
    assert.equal(f.conn.read(1500)?.length, 1500);
    f.expect({ flags: 'A', seq: L, ack: R + 4000, window: 3000 });
  });

  it('out-of-order data is ACKed at once with a SACK block; the gap fill too', () => {
    const f = TcpFixture.established({ sack: true, delayedAckMs: 40 }, [MSS, { type: 'sack-permitted' }]);
    f.send({ flags: 'A', seq: R + 100, ack: L, payload: pattern(100) });
    f.expect({ flags: 'A', seq: L, ack: R, options: sack([R + 100, R + 200]) });
    f.send({ flags: 'A', seq: R + 300, ack: L, payload: pattern(100) });
    // Most recent block first (RFC 2018 §4).
    f.expect({ flags: 'A', seq: L, ack: R, options: sack([R + 300, R + 400], [R + 100, R + 200]) });
    f.send({ flags: 'A', seq: R, ack: L, payload: pattern(100) });
    f.expect({ flags: 'A', seq: L, ack: R + 200, window: 65335, options: sack([R + 300, R + 400]) });
    f.send({ flags: 'A', seq: R + 200, ack: L, payload: pattern(100) });
    f.expect({ flags: 'A', seq: L, ack: R + 400, window: 65135 });
    assert.equal(f.conn.readableLength, 400);
    assert.equal(f.conn.counters.outOfOrderSegments, 2);
  });

  it('receive buffer autotuning grows the window while the application keeps up', () => {
    const f = TcpFixture.established(
      { windowScale: true, recvBufferSize: 16384, maxRecvBufferSize: 1 << 20, mss: 1000 },
      [MSS, { type: 'nop' }, { type: 'window-scale', shift: 0 }],
    );
    let seq = R;
    for (let round = 0; round < 6; round++) {
      // The peer fills the advertised window every round trip; we read it all each time.
      const segments = Math.floor(f.conn.info().rcvWnd / 1000);
      for (let i = 0; i < segments; i++) {
        f.send({ flags: 'A', seq, ack: L, payload: pattern(1000) });
        seq += 1000;
      }
      f.collect();
      f.conn.read();
      f.collect(); // the window update
      f.advance(100);
    }
    assert.ok(f.conn.counters.windowGrowths >= 2, `grew ${f.conn.counters.windowGrowths} times`);
    assert.ok(f.conn.info().rcvWnd > 16384, `window ${f.conn.info().rcvWnd}`);
  });

  it('autotuning grows it too when the peer sends each window as one super-segment (the kernel over a TUN)', () => {
    const f = TcpFixture.established(
      { windowScale: true, recvBufferSize: 16384, maxRecvBufferSize: 1 << 20, mss: 1000 },
      [MSS, { type: 'nop' }, { type: 'window-scale', shift: 0 }],
    );
    let seq = R;
    for (let round = 0; round < 6; round++) {
      const window = f.conn.info().rcvWnd;
      f.send({ flags: 'A', seq, ack: L, payload: pattern(window), gsoSize: 1000 });
      seq += window;
      f.collect();
      f.conn.read();
      f.collect();
      f.advance(100);
    }
    // Each arrival fills the whole buffer, yet the application had read everything before it.
    assert.ok(f.conn.counters.windowGrowths >= 4, `grew ${f.conn.counters.windowGrowths} times`);
    assert.ok(f.conn.info().rcvWnd >= 16384 * 16, `window ${f.conn.info().rcvWnd}`);
  });
});
