import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpConnection, TcpEvent } from '../src/stack/tcp/connection.js';
import { header, LOCAL_ISN, REMOTE_ISN, TcpFixture, ts } from './support/tcp-fixture.js';

const MSS_1460 = { type: 'mss', mss: 1460 } as const;

describe('TCP handshake', () => {
  it('active open: SYN, SYN-ACK, ACK -> ESTABLISHED', () => {
    const f = TcpFixture.connecting();
    assert.equal(f.conn.state, 'SYN-SENT');
    f.expect({ flags: 'S', seq: LOCAL_ISN, window: 65535, options: [MSS_1460] });
    f.expectNothing();
    f.send({ flags: 'SA', seq: REMOTE_ISN, ack: LOCAL_ISN + 1, window: 30000, options: [MSS_1460] });
    assert.equal(f.conn.state, 'ESTABLISHED');
    assert.equal(f.conn.takeEvents() & TcpEvent.CONNECTED, TcpEvent.CONNECTED);
    f.expect({ flags: 'A', seq: LOCAL_ISN + 1, ack: REMOTE_ISN + 1 });
    f.expectNothing();
  });

  it('data written in SYN-SENT goes out with the handshake ACK', () => {
    const f = TcpFixture.connecting();
    assert.equal(f.conn.write(new TextEncoder().encode('early')), 5);
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    f.send({ flags: 'SA', seq: REMOTE_ISN, ack: LOCAL_ISN + 1, options: [MSS_1460] });
    f.expect({ flags: 'PA', seq: LOCAL_ISN + 1, ack: REMOTE_ISN + 1, payload: 'early' });
  });

  it('passive open: SYN -> SYN-ACK, ACK -> ESTABLISHED', () => {
    const f = TcpFixture.accepting({}, [MSS_1460]);
    assert.equal(f.conn.state, 'SYN-RECEIVED');
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    f.send({ flags: 'A', seq: REMOTE_ISN + 1, ack: LOCAL_ISN + 1 });
    assert.equal(f.conn.state, 'ESTABLISHED');
    assert.equal(f.conn.takeEvents(), TcpEvent.CONNECTED);
    f.expectNothing();
  });

  it('simultaneous open: SYNs cross, SYN-ACKs cross, both ESTABLISHED', () => {
    const f = TcpFixture.connecting();
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    f.send({ flags: 'S', seq: REMOTE_ISN, options: [MSS_1460] });
    assert.equal(f.conn.state, 'SYN-RECEIVED');
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    f.send({ flags: 'SA', seq: REMOTE_ISN, ack: LOCAL_ISN + 1, options: [MSS_1460] });
    assert.equal(f.conn.state, 'ESTABLISHED');
    assert.equal(f.conn.takeEvents() & TcpEvent.CONNECTED, TcpEvent.CONNECTED);
    f.expect({ flags: 'A', seq: LOCAL_ISN + 1, ack: REMOTE_ISN + 1 });
  });

  it('a retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again', () => {
    const f = TcpFixture.accepting({}, [MSS_1460]);
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    f.send({ flags: 'S', seq: REMOTE_ISN, options: [MSS_1460] });
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    assert.equal(f.conn.state, 'SYN-RECEIVED');
  });

  it('SYN is retransmitted with exponential backoff (RFC 6298 §5.5)', () => {
    const f = TcpFixture.connecting();
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    assert.equal(f.conn.pollAt(), 1000);
    f.advance(999);
    f.expectNothing();
    f.advance(1);
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    assert.equal(f.conn.pollAt(), 3000);
    f.advanceToPoll();
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    assert.equal(f.conn.pollAt(), 7000);
    assert.equal(f.conn.counters.synRetransmits, 2);
  });

  it('the SYN-ACK is retransmitted on RTO too', () => {
    const f = TcpFixture.accepting({}, [MSS_1460]);
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    f.advanceToPoll();
    assert.equal(f.now, 1000);
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: REMOTE_ISN + 1, options: [MSS_1460] });
    assert.equal(f.conn.pollAt(), 3000);
  });

  it('connection timeout: ETIMEDOUT after the SYN retries', () => {
    const f = TcpFixture.connecting({ synRetries: 2 });
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    f.advanceToPoll();
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    f.advanceToPoll();
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS_1460] });
    assert.equal(f.now, 3000);
    f.advanceToPoll();
    assert.equal(f.now, 7000);
    f.expectNothing();
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, 'ETIMEDOUT');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED | TcpEvent.TIMEOUT);
    assert.equal(f.conn.counters.connectionTimeouts, 1);
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
  });

  it('RST with an acceptable ACK in SYN-SENT: ECONNREFUSED', () => {
    const f = TcpFixture.connecting();
    f.collect();
    f.send({ flags: 'RA', seq: 0, ack: LOCAL_ISN + 1, window: 0 });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, 'ECONNREFUSED');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED | TcpEvent.RESET);
    f.expectNothing();
  });

  it('SYN-ACK acknowledging something else in SYN-SENT draws a RST and is ignored', () => {
    const f = TcpFixture.connecting();
    f.collect();
    f.send({ flags: 'SA', seq: REMOTE_ISN, ack: LOCAL_ISN + 77 });
    assert.equal(f.conn.state, 'SYN-SENT');
    f.expect({ flags: 'R', seq: LOCAL_ISN + 77, window: 0 });
    assert.equal(f.conn.counters.dropBadAck, 1);
  });

  it('bad ACK in SYN-RECEIVED draws a RST and keeps the connection', () => {
    const f = TcpFixture.accepting();
    f.collect();
    f.send({ flags: 'A', seq: REMOTE_ISN + 1, ack: LOCAL_ISN + 500 });
    assert.equal(f.conn.state, 'SYN-RECEIVED');
    f.expect({ flags: 'R', seq: LOCAL_ISN + 500, window: 0 });
  });

  it('negotiates MSS, window scale, SACK and timestamps; the MSS is clamped', () => {
    const f = TcpFixture.accepting(
      { timestamps: true, sack: true, windowScale: true, mssClamp: 1000, maxRecvBufferSize: 1 << 20 },
      [
        MSS_1460,
        { type: 'sack-permitted' },
        { type: 'timestamps', tsVal: 777, tsEcr: 0 },
        { type: 'nop' },
        { type: 'window-scale', shift: 7 },
      ],
    );
    f.expect({
      flags: 'SA',
      seq: LOCAL_ISN,
      ack: REMOTE_ISN + 1,
      options: [
        MSS_1460,
        { type: 'sack-permitted' },
        { type: 'timestamps', tsVal: 0, tsEcr: 777 },
        { type: 'nop' },
        { type: 'window-scale', shift: 5 },
      ],
    });
    f.advance(10);
    f.send({ flags: 'A', seq: REMOTE_ISN + 1, ack: LOCAL_ISN + 1, window: 100, options: ts(780, 0) });
    const info = f.conn.info();
    assert.equal(info.state, 'ESTABLISHED');
    assert.equal(info.peerMss, 1460);
    assert.equal(info.sendMss, 1000 - 12); // clamp, less the timestamps option
    assert.equal(info.sndWindowScale, 7);
    assert.equal(info.rcvWindowScale, 5);
    assert.equal(info.sndWnd, 100 << 7);
    assert.ok(info.sack && info.timestamps);
    assert.equal(info.srtt, 10);
  });

  it('without an MSS option the peer MSS is 536 (RFC 9293 §3.7.1)', () => {
    const f = TcpFixture.established();
    assert.equal(f.conn.info().peerMss, 536);
    assert.equal(f.conn.info().sendMss, 536);
  });

  it('a SYN cookie ACK rebuilds an ESTABLISHED connection with the encoded options', () => {
    const ack = header({
      flags: 'PA',
      seq: REMOTE_ISN + 1,
      ack: LOCAL_ISN + 1,
      window: 1000,
      options: ts(500, 42),
    });
    const conn = TcpConnection.fromCookie(
      ack,
      new TextEncoder().encode('hello'),
      { mss: 1400, peerWindowScale: 2, sackPermitted: true, timestamps: true },
      TcpFixture.params({ windowScale: true, sack: true, timestamps: true }),
    );
    assert.equal(conn.state, 'ESTABLISHED');
    assert.equal(conn.takeEvents(), TcpEvent.CONNECTED | TcpEvent.READABLE);
    const info = conn.info();
    assert.equal(info.sendMss, 1400 - 12);
    assert.equal(info.sndWnd, 4000);
    assert.ok(info.sack && info.timestamps);
    assert.equal(new TextDecoder().decode(conn.read()), 'hello');
  });
});
