import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpEvent } from '../src/stack/tcp/connection.js';
import { LOCAL_ISN, REMOTE_ISN, TcpFixture } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;

describe('TCP resets and RFC 5961 checks', () => {
  it('RST exactly at RCV.NXT resets the connection (ECONNRESET)', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'R', seq: R });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, 'ECONNRESET');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED | TcpEvent.RESET);
    assert.equal(f.conn.counters.rstAccepted, 1);
    f.expectNothing();
  });

  it('RST out of the window is ignored', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'R', seq: R + 70000 });
    f.send({ flags: 'R', seq: R - 1 });
    assert.equal(f.conn.state, 'ESTABLISHED');
    assert.equal(f.conn.counters.rstOutOfWindow, 2);
    f.expectNothing();
  });

  it('RST in the window but not at RCV.NXT draws a challenge ACK (RFC 5961 §3.2)', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'R', seq: R + 100 });
    assert.equal(f.conn.state, 'ESTABLISHED');
    f.expect({ flags: 'A', seq: L, ack: R });
    assert.equal(f.conn.counters.challengeAckSent, 1);
  });

  it('SYN in ESTABLISHED draws a challenge ACK and changes nothing (RFC 5961 §4.2)', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'S', seq: R + 5 });
    f.expect({ flags: 'A', seq: L, ack: R });
    f.send({ flags: 'S', seq: R + 1_000_000 });
    f.expect({ flags: 'A', seq: L, ack: R });
    assert.equal(f.conn.state, 'ESTABLISHED');
    assert.equal(f.conn.counters.dropSyn, 2);
    assert.equal(f.conn.counters.challengeAckSent, 2);
  });

  it('challenge ACKs are rate-limited per second (RFC 5961 §7)', () => {
    const f = TcpFixture.established({ challengeAckLimit: 2 });
    for (let i = 0; i < 2; i++) {
      f.send({ flags: 'R', seq: R + 10 + i });
      f.expect({ flags: 'A', seq: L, ack: R });
    }
    f.send({ flags: 'R', seq: R + 20 });
    f.expectNothing();
    assert.equal(f.conn.counters.challengeAckRateLimited, 1);
    f.advance(1000);
    f.send({ flags: 'R', seq: R + 30 });
    f.expect({ flags: 'A', seq: L, ack: R });
  });

  it('abort() sends RST with SND.NXT and closes', () => {
    const f = TcpFixture.established();
    f.conn.write(new TextEncoder().encode('abc'));
    f.expect({ flags: 'PA', seq: L, ack: R, payload: 'abc' });
    f.conn.abort();
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED);
    assert.equal(f.conn.pollAt(), 0);
    f.expect({ flags: 'RA', seq: L + 3, ack: R, window: 0 });
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
    f.send({ flags: 'A', seq: R, ack: L + 3 });
    assert.equal(f.conn.counters.dropAfterClose, 1);
  });

  it('abort() in SYN-SENT sends nothing', () => {
    const f = TcpFixture.connecting();
    f.collect();
    f.conn.abort();
    f.expectNothing();
    assert.equal(f.conn.state, 'CLOSED');
  });

  it('RST in SYN-RECEIVED of a passive open closes quietly', () => {
    const f = TcpFixture.accepting();
    f.collect();
    f.send({ flags: 'R', seq: R });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, undefined);
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED);
  });

  it('RST in TIME-WAIT closes', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.collect();
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    f.collect();
    f.send({ flags: 'R', seq: R + 1 });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, undefined);
  });

  it('data outside the window is dropped with an ACK', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'PA', seq: R + 70000, ack: L, payload: 'far' });
    f.expect({ flags: 'A', seq: L, ack: R });
    assert.equal(f.conn.counters.dropOutOfWindow, 1);
    assert.equal(f.conn.readableLength, 0);
  });

  it('an ACK for data never sent is dropped with an ACK (RFC 5961 §5.2)', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'PA', seq: R, ack: L + 500, payload: 'xyz' });
    f.expect({ flags: 'A', seq: L, ack: R });
    assert.equal(f.conn.counters.dropAckUnsent, 1);
    assert.equal(f.conn.readableLength, 0, 'the data of such a segment is not taken');
  });

  it('a segment without ACK in ESTABLISHED is dropped', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'P', seq: R, payload: 'x' });
    f.expectNothing();
    assert.equal(f.conn.counters.dropNoAckFlag, 1);
  });

  it('impossible options or flags are counted and dropped, never thrown', () => {
    const f = TcpFixture.established();
    f.send({
      flags: 'A',
      seq: R,
      ack: L,
      options: [
        { type: 'mss', mss: 1000 },
        { type: 'mss', mss: 1400 },
      ],
    });
    f.send({
      flags: 'A',
      seq: R,
      ack: L,
      options: [
        { type: 'timestamps', tsVal: 1, tsEcr: 0 },
        { type: 'timestamps', tsVal: 2, tsEcr: 0 },
      ],
    });
    f.send({ flags: 'SF', seq: R });
    f.send({ flags: 'SR', seq: R });
    f.expectNothing();
    assert.equal(f.conn.counters.dropBadOptions, 2);
    assert.equal(f.conn.counters.dropBadFlags, 2);
    assert.equal(f.conn.state, 'ESTABLISHED');
  });
});
