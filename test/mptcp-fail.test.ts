/**
 * MP_FAIL and the infinite mapping (RFC 8684 §3.7), packet by packet, with DSS checksums on: a
 * bad checksum on one of several subflows resets that subflow with MP_FAIL; on the only subflow
 * there ever was it is MP_FAIL on an ACK and fallback, and the peer's MP_FAIL is answered with an
 * infinite mapping; an infinite mapping from the peer is fallback at its DSN (packetdrill's mptcp/mp_fail and mptcp_join.sh's "fail"
 * family are the checklist).
 */
import assert from 'node:assert/strict';
import { it, describe as suite } from 'node:test';
import { dssChecksum } from '../src/stack/wire/dss-checksum.js';
import type { DssOption, MpFailOption } from '../src/stack/wire/mptcp-options.js';
import { MP_TCPRST_REASON } from '../src/stack/wire/mptcp-options.js';
import { TCP_RST } from '../src/stack/wire/tcp.js';
import {
  dss,
  expectMptcp,
  MptcpFixture,
  mp,
  mptcpInfo,
  mptcpOptions,
  PeerMptcp,
  readNow,
} from './support/mptcp-fixture.js';
import { pattern } from './support/tcp-fixture.js';

function checksummed() {
  const f = new MptcpFixture();
  f.listen();
  const k = new PeerMptcp();
  const { sf, socket } = f.serverEstablished(k, undefined, { checksum: true });
  return { f, k, sf, socket };
}

/** A data segment of `payload` at data offset `off`, subflow seq `ssn`, with a right (or wrong) checksum. */
function mapped(k: PeerMptcp, off: number, ssn: number, payload: Uint8Array, corrupt = false) {
  const checksum = dssChecksum(k.peerDsn(off), ssn, payload.length, payload) ^ (corrupt ? 0x0101 : 0);
  return dss({
    dataAck: k.ourDsn(0),
    mapping: { dsn: k.peerDsn(off), ssn, dataLevelLength: payload.length, checksum },
  });
}

suite('MP_FAIL', () => {
  it('a bad DSS checksum on a join (other subflows exist): RST with MP_FAIL at the mapping DSN', () => {
    const { f, k, sf, socket } = checksummed();
    const sf2 = f.subflow({ peer: '10.0.0.3', peerPort: 40001, peerIsn: 777 });
    f.serverJoinEstablished(k, sf2);
    // Good data on the initial subflow first, so the failure is not in the first mapping.
    const first = pattern(10);
    f.send(sf, { flags: 'PA', payload: first, options: [mapped(k, 0, 1, first)] });
    f.take();
    const bad = pattern(20, 7);
    f.send(sf2, { flags: 'PA', payload: bad, options: [mapped(k, 10, 1, bad, true)] });
    const rst = f.expectSegment(sf2, {});
    assert.ok((rst.tcp.flags & TCP_RST) !== 0, 'the subflow is reset');
    expectMptcp<MpFailOption>(rst, { subtype: 'mp_fail', dsn: k.peerDsn(10) });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.DataCsumErr, 1);
    assert.equal(f.mib.MPFailTx, 1);
    assert.deepEqual(readNow(socket), Buffer.from(first), 'the bad bytes are not delivered');
    assert.equal(mptcpInfo(socket).subflows.length, 1, 'the connection lives on');
    // The peer resends those bytes on the initial subflow: delivered.
    f.send(sf, { flags: 'PA', seq: 11, payload: bad, options: [mapped(k, 10, 11, bad)] });
    assert.deepEqual(readNow(socket), Buffer.from(bad));
  });
});

suite('infinite mapping', () => {
  it('from the peer on the only subflow: fallback at its DSN, later data without DSS delivered', () => {
    const { f, k, sf, socket } = checksummed();
    const a = pattern(10);
    f.send(sf, { flags: 'PA', payload: a, options: [mapped(k, 0, 1, a)] });
    f.take();
    const b = pattern(30, 50);
    f.send(sf, {
      flags: 'PA',
      seq: 11,
      payload: b,
      options: [
        dss({
          dataAck: k.ourDsn(0),
          mapping: { dsn: k.peerDsn(10), ssn: 11, dataLevelLength: 0, checksum: 0 },
        }),
      ],
    });
    f.send(sf, { flags: 'PA', seq: 41, payload: 'plain' });
    assert.equal(f.mib.InfiniteMapRx, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    assert.deepEqual(readNow(socket), Buffer.concat([Buffer.from(a), Buffer.from(b), Buffer.from('plain')]));
    const acks = f.take();
    assert.ok(acks.length > 0);
    assert.ok(
      acks.every((s) => mptcpOptions(s).length === 0),
      'no MPTCP option after the fallback',
    );
  });
});

suite('RFC 8684 §3.7 on the only subflow: MP_FAIL and the infinite mapping', () => {
  it('a bad DSS checksum on the only subflow: MP_FAIL on an ACK, not a reset (then the peer sends an infinite mapping)', () => {
    const { f, k, sf, socket } = checksummed();
    socket.on('error', () => undefined);
    const a = pattern(10);
    f.send(sf, { flags: 'PA', payload: a, options: [mapped(k, 0, 1, a)] });
    f.take();
    const bad = pattern(20, 7);
    f.send(sf, { flags: 'PA', seq: 11, payload: bad, options: [mapped(k, 10, 11, bad, true)] });
    const seg = f.expectSegment(sf, {});
    assert.equal(
      seg.tcp.flags & TCP_RST,
      0,
      'no RST: with one subflow the receiver answers MP_FAIL on an ACK',
    );
    expectMptcp<MpFailOption>(seg, { subtype: 'mp_fail', dsn: k.peerDsn(10) });
    assert.equal(f.mib.DSSCorruptionFallback, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    // The peer answers with an infinite mapping, then plain TCP: every byte reaches the reader in
    // order, the failed mapping's as they arrived (what plain TCP would have delivered).
    const more = pattern(30, 50);
    f.send(sf, {
      flags: 'PA',
      seq: 31,
      payload: more.subarray(0, 10),
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(30), ssn: 31, dataLevelLength: 0 } })],
    });
    f.send(sf, { flags: 'PA', seq: 41, payload: more.subarray(10) });
    assert.deepEqual(readNow(socket), Buffer.concat([a, bad, more]));
    assert.equal(f.mib.InfiniteMapRx, 0); // already fallen back: the option is no longer read
  });

  it('MP_FAIL from the peer on the only subflow: we answer with an infinite mapping and fall back', () => {
    const { f, k, sf, socket } = checksummed();
    socket.write('abcdefghij');
    f.expectSegment(sf, { flags: 'PA', payloadLength: 10 });
    f.send(sf, { flags: 'A', ack: 11, options: [mp({ subtype: 'mp_fail', dsn: k.ourDsn(0) })] });
    assert.equal(f.mib.MPFailRx, 1);
    socket.write('klmno');
    const out = f.take().filter((s) => s.payload.length > 0 || mptcpOptions(s).length > 0);
    const infinite = out.some((s) =>
      mptcpOptions(s).some((o) => o.subtype === 'dss' && (o as DssOption).mapping?.dataLevelLength === 0),
    );
    assert.ok(
      infinite,
      `an infinite mapping (DSS with data-level length 0) after MP_FAIL: ${out.length} segments`,
    );
    assert.equal(f.mib.InfiniteMapTx, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    readNow(socket);
  });
});
