import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TcpEvent } from '../src/stack/tcp/connection.js';
import { LOCAL_ISN, pattern, REMOTE_ISN, sack, TcpFixture, ts } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;
const SACK_OK = { type: 'sack-permitted' } as const;

describe('TCP loss recovery', () => {
  it('RTO retransmits with exponential backoff (RFC 6298 §5.5)', () => {
    const f = TcpFixture.established();
    f.conn.write(pattern(100));
    f.expect({ flags: 'PA', seq: L, ack: R, payload: pattern(100) });
    assert.equal(f.conn.pollAt(), 200);
    f.advanceToPoll();
    f.expect({ flags: 'PA', seq: L, ack: R, payload: pattern(100) });
    assert.equal(f.conn.pollAt(), 600);
    f.advanceToPoll();
    f.expect({ flags: 'PA', seq: L, ack: R, payload: pattern(100) });
    assert.equal(f.conn.pollAt(), 1400);
    assert.equal(f.conn.counters.rtoExpired, 2);
    assert.equal(f.conn.counters.retransmitSegments, 2);
    f.send({ flags: 'A', seq: R, ack: L + 100 });
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
  });

  it('data retransmission gives up with ETIMEDOUT', () => {
    const f = TcpFixture.established({ maxRetransmits: 2 });
    f.conn.write(pattern(10));
    f.collect();
    f.advanceToPoll();
    f.collect();
    f.advanceToPoll();
    f.collect();
    f.advanceToPoll();
    f.expectNothing();
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.error, 'ETIMEDOUT');
    assert.equal(f.conn.takeEvents(), TcpEvent.CLOSED | TcpEvent.TIMEOUT);
  });

  it('SACK: three duplicate ACKs retransmit exactly the lost segment, no RTO (RFC 6675)', () => {
    const f = TcpFixture.established({ sack: true }, [MSS, SACK_OK]);
    const data = pattern(4 * 1460);
    f.conn.write(data);
    assert.equal(f.collect().length, 4);
    f.advance(10);
    // Segment 1 is lost; 2, 3 and 4 arrive and are SACKed.
    f.send({ flags: 'A', seq: R, ack: L, options: sack([L + 1460, L + 2920]) });
    f.send({ flags: 'A', seq: R, ack: L, options: sack([L + 1460, L + 4380]) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: L, options: sack([L + 1460, L + 5840]) });
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: L + 5840 });
    f.expectNothing();
    assert.equal(f.conn.counters.sackRecoveries, 1);
    assert.equal(f.conn.counters.fastRetransmits, 1);
    assert.equal(f.conn.counters.retransmitSegments, 1);
    assert.equal(f.conn.counters.rtoExpired, 0);
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
  });

  it('SACK: a lost piece of a super-segment is resent alone, MSS-sized', () => {
    const f = TcpFixture.established({ sack: true, maxPayload: 65536 }, [MSS, SACK_OK]);
    const data = pattern(10 * 1460);
    f.conn.write(data);
    f.expect({ flags: 'PA', seq: L, ack: R, payload: data, gsoSize: 1460 });
    // The third packet of the super-segment is lost.
    f.send({ flags: 'A', seq: R, ack: L + 2920, options: sack([L + 4380, L + 7300]) });
    f.send({ flags: 'A', seq: R, ack: L + 2920, options: sack([L + 4380, L + 11680]) });
    f.send({ flags: 'A', seq: R, ack: L + 2920, options: sack([L + 4380, L + 14600]) });
    f.expect({ flags: 'A', seq: L + 2920, ack: R, payload: data.subarray(2920, 4380) });
    f.send({ flags: 'A', seq: R, ack: L + 14600 });
    f.expectNothing();
    assert.equal(f.conn.counters.retransmitBytes, 1460);
    assert.equal(f.conn.counters.rtoExpired, 0);
  });

  it('SACK: a lost retransmission is found and resent without waiting for the RTO', () => {
    const f = TcpFixture.established({ sack: true }, [MSS, SACK_OK], 7300);
    const data = pattern(6 * 1460);
    f.conn.write(data);
    assert.equal(f.collect().length, 5, 'the peer window takes five segments');
    f.send({ flags: 'A', seq: R, ack: L, window: 7300, options: sack([L + 1460, L + 2920]) });
    f.send({ flags: 'A', seq: R, ack: L, window: 7300, options: sack([L + 1460, L + 4380]) });
    f.send({ flags: 'A', seq: R, ack: L, window: 7300, options: sack([L + 1460, L + 5840]) });
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) });
    // The fifth segment arrives and the window opens by a segment: new data goes out for it.
    f.send({ flags: 'A', seq: R, ack: L, window: 8760, options: sack([L + 1460, L + 7300]) });
    f.expect({ flags: 'PA', seq: L + 7300, ack: R, payload: data.subarray(7300) });
    // That new segment arrives while the retransmission does not: it was lost too.
    f.send({ flags: 'A', seq: R, ack: L, window: 8760, options: sack([L + 1460, L + 8760]) });
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) });
    assert.equal(f.conn.counters.lostRetransmits, 1);
    f.send({ flags: 'A', seq: R, ack: L + 8760, window: 8760 });
    assert.equal(f.conn.counters.rtoExpired, 0);
    assert.equal(f.conn.pollAt(), Number.POSITIVE_INFINITY);
  });

  it('SACK recovery: Proportional Rate Reduction spreads the cut over the ACKs (RFC 9937)', () => {
    const f = TcpFixture.established({ sack: true }, [MSS, SACK_OK]);
    const data = pattern(40 * 1460);
    f.conn.write(data);
    assert.equal(f.collect().length, 10, 'the initial window');
    // Slow start: five ACKs of two segments each grow cwnd to 20 segments, all in flight.
    for (let i = 1; i <= 5; i++) {
      f.send({ flags: 'A', seq: R, ack: L + 2 * i * 1460 });
      assert.equal(f.collect().length, 4);
    }
    assert.equal(f.conn.info().cwnd, 20 * 1460);
    const una = L + 10 * 1460;
    const seg = (k: number) => data.subarray(k * 1460, (k + 1) * 1460);
    // Segment 10 (the first of the 20) is lost; the next three are SACKed one ACK at a time.
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 2920]) });
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 4380]) });
    f.collect(); // Limited Transmit
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 5840]) });
    f.expect({ flags: 'A', seq: una, ack: R, payload: seg(10) });
    assert.equal(f.conn.info().ssthresh, 14 * 1460);
    // Pipe is 18 segments (22 sent, 3 SACKed, 1 lost, 1 resent), above ssthresh (14): one new
    // segment for every 20/14 delivered, on the second and fourth SACK after the retransmission,
    // where RFC 6675 (cwnd 14) would send nothing until pipe had fallen below it, five ACKs on.
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 7300]) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 8760]) });
    f.expect({ flags: 'A', seq: L + 32 * 1460, ack: R, payload: seg(32) });
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 10220]) });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: una, options: sack([una + 1460, una + 11680]) });
    f.expect({ flags: 'A', seq: L + 33 * 1460, ack: R, payload: seg(33) });
    assert.equal(f.conn.counters.rtoExpired, 0);
  });

  it('SACK negotiated but duplicate ACKs carry no blocks: the head is still resent', () => {
    const f = TcpFixture.established({ sack: true }, [MSS, SACK_OK]);
    const data = pattern(4 * 1460);
    f.conn.write(data);
    f.collect();
    for (let i = 0; i < 3; i++) f.send({ flags: 'A', seq: R, ack: L });
    // The head (RFC 6675 §5 step 4.3), then rule 4's one rescue retransmission of the tail.
    f.expect(
      { flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) },
      { flags: 'PA', seq: L + 4380, ack: R, payload: data.subarray(4380) },
    );
    f.send({ flags: 'A', seq: R, ack: L });
    f.expectNothing();
    assert.equal(f.conn.counters.fastRetransmits, 1);
  });

  it('Limited Transmit: the first two duplicate ACKs each release a new segment (RFC 3042)', () => {
    const f = TcpFixture.established({}, [MSS]);
    const data = pattern(13 * 1460);
    f.conn.write(data);
    assert.equal(f.collect().length, 10, 'the initial window');
    f.send({ flags: 'A', seq: R, ack: L });
    f.expect({ flags: 'A', seq: L + 10 * 1460, ack: R, payload: data.subarray(10 * 1460, 11 * 1460) });
    f.send({ flags: 'A', seq: R, ack: L });
    f.expect({ flags: 'A', seq: L + 11 * 1460, ack: R, payload: data.subarray(11 * 1460, 12 * 1460) });
    // The third one starts fast recovery: the head is resent.
    f.send({ flags: 'A', seq: R, ack: L });
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) });
  });

  it('NewReno without SACK: partial ACK retransmits the next hole (RFC 6582)', () => {
    const f = TcpFixture.established({ congestion: 'newreno' }, [MSS]);
    const data = pattern(6 * 1460);
    f.conn.write(data);
    assert.equal(f.collect().length, 6);
    // Segments 1 and 3 are lost: 2, 4, 5 and 6 bring duplicate ACKs.
    f.send({ flags: 'A', seq: R, ack: L });
    f.send({ flags: 'A', seq: R, ack: L });
    f.expectNothing();
    f.send({ flags: 'A', seq: R, ack: L });
    f.expect({ flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1460) });
    f.send({ flags: 'A', seq: R, ack: L });
    f.expectNothing();
    // The retransmission fills the first hole: a partial ACK up to the second one.
    f.send({ flags: 'A', seq: R, ack: L + 2920 });
    f.expect({ flags: 'A', seq: L + 2920, ack: R, payload: data.subarray(2920, 4380) });
    f.send({ flags: 'A', seq: R, ack: L + 6 * 1460 });
    f.expectNothing();
    assert.equal(f.conn.counters.newRenoRecoveries, 1);
    assert.equal(f.conn.counters.newRenoPartialAcks, 1);
    assert.equal(f.conn.counters.rtoExpired, 0);
    assert.equal(f.conn.info().cwnd, f.conn.info().ssthresh);
  });

  it('a spurious RTO is detected from the echoed timestamp (Eifel, RFC 3522)', () => {
    const f = TcpFixture.established({ timestamps: true }, [
      MSS,
      { type: 'timestamps', tsVal: 50, tsEcr: 0 },
    ]);
    f.advance(1000);
    f.conn.write(pattern(100));
    f.expect({ flags: 'PA', seq: L, ack: R, options: ts(1000, 50), payload: pattern(100) });
    f.advanceToPoll();
    assert.equal(f.now, 1200);
    f.expect({ flags: 'PA', seq: L, ack: R, options: ts(1200, 50), payload: pattern(100) });
    // The ACK of the original arrives late: it echoes TSval 1000.
    f.send({ flags: 'A', seq: R, ack: L + 100, options: ts(60, 1000) });
    assert.equal(f.conn.counters.spuriousRetransmits, 1);
  });
});
