import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpEvent } from '../src/stack/tcp/connection.js';
import { LOCAL_ISN, pattern, REMOTE_ISN, TcpFixture } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;

describe('TCP timers and probes', () => {
  it('zero window: the persist timer probes with one byte, backing off (RFC 9293 §3.8.6.1)', () => {
    const f = TcpFixture.established({}, [MSS]);
    f.send({ flags: 'A', seq: R, ack: L, window: 0 });
    const data = pattern(100);
    f.conn.write(data);
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 200);
    f.advanceToPoll();
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1) });
    // The peer still has no room: it acknowledges nothing new.
    f.send({ flags: 'A', seq: R, ack: L, window: 0 });
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 600);
    f.advanceToPoll();
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1) });
    assert.equal(f.conn.pollAt(), 1400);
    assert.equal(f.conn.counters.zeroWindowProbes, 2);
    assert.equal(f.conn.counters.dupAcksIn, 0);
    // The window opens: the probe byte is taken and the rest flows.
    f.send({ flags: 'A', seq: R, ack: L + 1, window: 65535 });
    f.expect({ flags: 'PA', seq: L + 1, ack: R, payload: data.subarray(1) });
    assert.equal(f.conn.counters.rtoExpired, 0);
  });

  it('small window: SWS avoidance holds data back; the persist timer overrides it (RFC 9293 §3.8.6.2.1)', () => {
    const f = TcpFixture.established({}, [MSS]);
    // A paused reader: everything is acknowledged and the peer offers 128 bytes.
    f.send({ flags: 'A', seq: R, ack: L, window: 128 });
    const data = pattern(4000);
    f.conn.write(data);
    // 128 bytes: less than a segment, than the queued data and than half the largest window seen.
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 200, 'the persist timer runs: a lost window update cannot stall us');
    f.advanceToPoll();
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 128) });
    assert.equal(f.conn.counters.swsOverrides, 1);
    // Still 128 bytes of room: the timer runs again.
    f.send({ flags: 'A', seq: R, ack: L + 128, window: 128 });
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 400);
    // The window opens: the rest flows.
    f.send({ flags: 'A', seq: R, ack: L + 128, window: 65535 });
    f.expect(
      { flags: 'A', seq: L + 128, ack: R, payload: data.subarray(128, 1588) },
      { flags: 'A', seq: L + 1588, ack: R, payload: data.subarray(1588, 3048) },
      { flags: 'PA', seq: L + 3048, ack: R, payload: data.subarray(3048) },
    );
    assert.equal(f.conn.counters.zeroWindowProbes, 0);
  });

  it('a peer whose window never reaches a segment gets pieces of half its largest window (SWS, Fs = 1/2)', () => {
    const f = TcpFixture.established({}, [MSS], 1000);
    const data = pattern(4000);
    f.conn.write(data);
    // The largest window seen is 1000 bytes: 1000 and then 600 are worth sending, ...
    f.expect({ flags: 'A', seq: L, ack: R, window: 65535, payload: data.subarray(0, 1000) });
    f.send({ flags: 'A', seq: R, ack: L + 1000, window: 600 });
    f.expect({ flags: 'A', seq: L + 1000, ack: R, payload: data.subarray(1000, 1600) });
    // ... 300 is not: it waits for a window update, or for the persist timer's override.
    f.send({ flags: 'A', seq: R, ack: L + 1600, window: 300 });
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 200);
    f.advanceToPoll();
    f.expect({ flags: 'A', seq: L + 1600, ack: R, payload: data.subarray(1600, 1900) });
  });

  it('keepalive: probes after the idle time, an answer resets it', () => {
    const f = TcpFixture.established({ keepalive: { idleMs: 1000, intervalMs: 100, count: 3 } });
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 1000);
    f.advanceToPoll();
    f.expect({ flags: 'A', seq: L - 1, ack: R });
    assert.equal(f.conn.pollAt(), 1100);
    f.send({ flags: 'A', seq: R, ack: L });
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 2000);
    assert.equal(f.conn.counters.keepalivesSent, 1);
  });

  it('keepalive: unanswered probes time the connection out (ETIMEDOUT)', () => {
    const f = TcpFixture.established({ keepalive: { idleMs: 1000, intervalMs: 100, count: 3 } });
    for (const at of [1000, 1100, 1200]) {
      f.advanceToPoll();
      assert.equal(f.now, at);
      f.expect({ flags: 'A', seq: L - 1, ack: R });
    }
    f.advanceToPoll();
    assert.equal(f.now, 1300);
    f.expectNothing();
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, 'ETIMEDOUT');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED | TcpEvent.TIMEOUT);
    assert.equal(f.conn.counters.keepaliveTimeouts, 1);
  });

  it('keepalive is off by default', () => {
    const f = TcpFixture.established();
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
  });
});
