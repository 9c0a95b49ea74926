/**
 * Hostile input the engine must shrug off (found by driving the stack as an attacker would):
 * a segment with an unacceptable ACK must not move TS.Recent, and unacceptable segments without
 * data are answered at most once per invalidAckIntervalMs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LOCAL_ISN, REMOTE_ISN, TcpFixture, ts } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;

function establishedWithTimestamps(): TcpFixture {
  return TcpFixture.established({ timestamps: true }, [MSS, { type: 'timestamps', tsVal: 100, tsEcr: 0 }]);
}

describe('TCP hardening', () => {
  it('an unacceptable ACK leaves TS.Recent alone, and a later valid segment is accepted', () => {
    const f = establishedWithTimestamps();
    f.advance(5);
    // At RCV.NXT, in the window, with a TSval far ahead, but acknowledging data never sent.
    f.send({ flags: 'A', seq: R, ack: L + 100_000, options: ts(0x7000_0000, 0) });
    assert.equal(f.conn.counters.dropAckUnsent, 1);
    // The one answer still echoes the old TS.Recent.
    f.expect({ flags: 'A', seq: L, ack: R, window: 65535, options: ts(5, 100) });
    f.send({ flags: 'PA', seq: R, ack: L, options: ts(200, 0), payload: 'legit' });
    assert.equal(f.conn.counters.dropPawsReject, 0);
    assert.equal(f.conn.readableLength, 5);
    f.expect({ flags: 'A', seq: L, ack: R + 5, window: 65530, options: ts(5, 200) });
  });

  it('the same holds for a too-old ACK', () => {
    const f = establishedWithTimestamps();
    f.send({ flags: 'A', seq: R, ack: L - 200_000, options: ts(0x7000_0000, 0) });
    assert.equal(f.conn.counters.dropOldAck, 1);
    f.collect();
    f.send({ flags: 'PA', seq: R, ack: L, options: ts(101, 0), payload: 'ok' });
    assert.equal(f.conn.counters.dropPawsReject, 0);
    assert.equal(f.conn.readableLength, 2);
  });

  it('1,000 ACKs for unsent data draw at most a handful of replies', () => {
    const f = TcpFixture.established();
    let replies = 0;
    for (let i = 0; i < 1000; i++) {
      f.send({ flags: 'A', seq: R, ack: L + 10_000 + i });
      replies += f.collect().length;
      f.advance(1);
    }
    // One second of attack at a 500 ms limit: the first, then one per interval.
    assert.ok(replies >= 1 && replies <= 3, `${replies} replies`);
    assert.equal(f.conn.counters.dropAckUnsent, 1000);
    assert.equal(f.conn.counters.invalidAckRateLimited, 1000 - replies);
    assert.equal(f.conn.state, 'ESTABLISHED');
  });

  it('out-of-window pure ACKs and PAWS rejects share the limit; data out of window is always answered', () => {
    const f = establishedWithTimestamps();
    f.send({ flags: 'PA', seq: R, ack: L, options: ts(200, 0), payload: 'abc' });
    f.collect();
    let replies = 0;
    for (let i = 0; i < 50; i++) {
      f.send({ flags: 'A', seq: R + 3 + 1_000_000, ack: L, options: ts(201, 0) }); // out of window
      f.send({ flags: 'A', seq: R + 3, ack: L, options: ts(150, 0) }); // PAWS
      replies += f.collect().length;
    }
    assert.equal(replies, 1);
    assert.equal(f.conn.counters.invalidAckRateLimited, 99);
    // A retransmitted duplicate (data below RCV.NXT) still gets its duplicate ACK every time.
    for (let i = 0; i < 3; i++) {
      f.send({ flags: 'PA', seq: R, ack: L, options: ts(202, 0), payload: 'abc' });
      assert.equal(f.collect().length, 1);
    }
    // After the interval an unacceptable pure ACK is answered again.
    f.advance(500);
    f.send({ flags: 'A', seq: R + 3 + 1_000_000, ack: L, options: ts(203, 0) });
    assert.equal(f.collect().length, 1);
  });
});
