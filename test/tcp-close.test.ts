import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpEvent } from '../src/stack/tcp/connection.js';
import { header, LOCAL_ISN, REMOTE_ISN, TcpFixture } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;

describe('TCP close', () => {
  it('active close: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, then CLOSED after 2*MSL', () => {
    const f = TcpFixture.established({ timeWaitMs: 4000 });
    f.conn.shutdown();
    assert.equal(f.conn.state, 'FIN-WAIT-1');
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'A', seq: R, ack: L + 1 });
    assert.equal(f.conn.state, 'FIN-WAIT-2');
    f.expectNothing();
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    assert.equal(f.conn.state, 'TIME-WAIT');
    assert.equal(f.conn.takeEvents(), TcpEvent.PEER_FIN | TcpEvent.READABLE);
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
    assert.equal(f.conn.pollAt(), 4000);
    f.advance(3999);
    f.expectNothing();
    assert.equal(f.conn.state, 'TIME-WAIT');
    f.advance(1);
    f.expectNothing();
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, undefined);
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED);
    assert.equal(f.conn.counters.timeWaitExpired, 1);
  });

  it('passive close: CLOSE-WAIT, then LAST-ACK, then CLOSED', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'FA', seq: R, ack: L });
    assert.equal(f.conn.state, 'CLOSE-WAIT');
    assert.equal(f.conn.takeEvents(), TcpEvent.PEER_FIN | TcpEvent.READABLE);
    assert.ok(f.conn.peerFinished);
    f.expect({ flags: 'A', seq: L, ack: R + 1, window: 65534 });
    f.conn.shutdown();
    assert.equal(f.conn.state, 'LAST-ACK');
    f.expect({ flags: 'FA', seq: L, ack: R + 1, window: 65534 });
    f.send({ flags: 'A', seq: R + 1, ack: L + 1 });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED);
    f.expectNothing();
  });

  it('simultaneous close: FINs cross, CLOSING, then TIME-WAIT', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'FA', seq: R, ack: L });
    assert.equal(f.conn.state, 'CLOSING');
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
    f.send({ flags: 'A', seq: R + 1, ack: L + 1 });
    assert.equal(f.conn.state, 'TIME-WAIT');
  });

  it('FIN that also acknowledges our FIN: FIN-WAIT-1 straight to TIME-WAIT', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    assert.equal(f.conn.state, 'TIME-WAIT');
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
  });

  it('the FIN follows queued data, on the last data segment', () => {
    const f = TcpFixture.established();
    assert.equal(f.conn.write(new TextEncoder().encode('bye')), 3);
    f.conn.shutdown();
    assert.equal(f.conn.write(new Uint8Array(1)), 0, 'no writes after shutdown');
    f.expect({ flags: 'FPA', seq: L, ack: R, payload: 'bye' });
    f.send({ flags: 'A', seq: R, ack: L + 4 });
    assert.equal(f.conn.state, 'FIN-WAIT-2');
  });

  it('half-close, our side first: data from the peer still flows in FIN-WAIT-2', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'A', seq: R, ack: L + 1 });
    f.send({ flags: 'PA', seq: R, ack: L + 1, payload: 'more' });
    // 4 unread bytes: the window shrinks by them (RFC 9293 §3.8.6.2.2 keeps the right edge).
    f.expect({ flags: 'A', seq: L + 1, ack: R + 4, window: 65531 });
    assert.equal(new TextDecoder().decode(f.conn.read()), 'more');
    assert.equal(f.conn.state, 'FIN-WAIT-2');
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY, 'a half-close waits as long as the peer likes');
  });

  it('orphaned FIN-WAIT-2: after close() the peer has finWait2TimeoutMs to finish, then a RST', () => {
    const f = TcpFixture.established({ finWait2TimeoutMs: 5000 });
    f.conn.close();
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'A', seq: R, ack: L + 1 });
    assert.equal(f.conn.state, 'FIN-WAIT-2');
    f.expectNothing();
    assert.equal(f.conn.pollAt(), 5000);
    f.advance(4999);
    f.expectNothing();
    f.advance(1);
    f.expect({ flags: 'RA', seq: L + 1, ack: R, window: 0 });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, undefined);
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED);
    assert.equal(f.conn.counters.finWait2Timeouts, 1);
  });

  it('half-close, peer first: we keep sending in CLOSE-WAIT', () => {
    const f = TcpFixture.established();
    f.send({ flags: 'FA', seq: R, ack: L });
    f.expect({ flags: 'A', seq: L, ack: R + 1, window: 65534 });
    assert.equal(f.conn.write(new TextEncoder().encode('reply')), 5);
    f.expect({ flags: 'PA', seq: L, ack: R + 1, window: 65534, payload: 'reply' });
    f.send({ flags: 'A', seq: R + 1, ack: L + 5 });
    assert.equal(f.conn.state, 'CLOSE-WAIT');
    assert.equal(f.conn.read(), undefined);
  });

  it('TIME-WAIT: a retransmitted FIN is acknowledged and restarts the 2*MSL timer', () => {
    const f = TcpFixture.established({ timeWaitMs: 4000 });
    f.conn.shutdown();
    f.collect();
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    f.collect();
    f.advance(3000);
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
    assert.equal(f.conn.pollAt(), 7000);
    assert.equal(f.conn.state, 'TIME-WAIT');
  });

  it('TIME-WAIT: a new SYN above RCV.NXT may reopen, an old one gets a challenge ACK', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.collect();
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    f.collect();
    assert.ok(f.conn.canReopen(header({ flags: 'S', seq: R + 100000 })));
    assert.ok(!f.conn.canReopen(header({ flags: 'S', seq: R - 10 })));
    f.send({ flags: 'S', seq: R - 10 });
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
    assert.equal(f.conn.counters.challengeAckSent, 1);
    assert.equal(f.conn.state, 'TIME-WAIT');
  });

  it('TIME-WAIT: a data segment is answered with an ACK and not delivered', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.collect();
    f.send({ flags: 'FA', seq: R, ack: L + 1 });
    f.collect();
    f.conn.takeEvents();
    f.send({ flags: 'PA', seq: R + 1, ack: L + 1, payload: 'late' });
    f.expect({ flags: 'A', seq: L + 1, ack: R + 1, window: 65534 });
    assert.equal(f.conn.state, 'TIME-WAIT');
    assert.equal(f.conn.readableLength, 0);
    assert.equal(f.conn.takeEvents(), 0);
  });

  it('shutdown in SYN-RECEIVED: the FIN follows the handshake (FIN-WAIT-1)', () => {
    const f = TcpFixture.accepting();
    f.collect();
    f.conn.shutdown();
    assert.equal(f.conn.state, 'SYN-RECEIVED');
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: L });
    assert.equal(f.conn.state, 'FIN-WAIT-1');
    assert.equal(f.conn.takeEvents(), TcpEvent.CONNECTED);
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.send({ flags: 'A', seq: R, ack: L + 1 });
    assert.equal(f.conn.state, 'FIN-WAIT-2');
  });

  it('FIN on the ACK that completes the handshake: SYN-RECEIVED to CLOSE-WAIT', () => {
    const f = TcpFixture.accepting();
    f.collect();
    f.send({ flags: 'FA', seq: R, ack: L });
    assert.equal(f.conn.state, 'CLOSE-WAIT');
    assert.equal(f.conn.takeEvents(), TcpEvent.CONNECTED | TcpEvent.PEER_FIN | TcpEvent.READABLE);
    f.expect({ flags: 'A', seq: L, ack: R + 1, window: 65534 });
  });

  it('shutdown in SYN-SENT just closes', () => {
    const f = TcpFixture.connecting();
    f.collect();
    f.conn.shutdown();
    assert.equal(f.conn.state, 'CLOSED');
    f.expectNothing();
  });

  it('the FIN is retransmitted on RTO', () => {
    const f = TcpFixture.established();
    f.conn.shutdown();
    f.expect({ flags: 'FA', seq: L, ack: R });
    f.advanceToPoll();
    assert.equal(f.now, 200, 'RTO from the handshake sample (0 ms) is the 200 ms floor');
    f.expect({ flags: 'FA', seq: L, ack: R });
    assert.equal(f.conn.counters.rtoExpired, 1);
  });
});
