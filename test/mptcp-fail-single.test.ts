/**
 * MP_FAIL and the infinite mapping on a connection that only ever had one subflow (RFC 8684 §3.7):
 * a checksum failure falls back to plain TCP instead of resetting.
 */
import assert from 'node:assert/strict';
import { it, describe as suite } from 'node:test';
import { dssChecksum } from '../src/stack/wire/dss-checksum.js';
import type { DssOption, MpFailOption } from '../src/stack/wire/mptcp-options.js';
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

function mapped(k: PeerMptcp, off: number, ssn: number, payload: Uint8Array, corrupt = false) {
  const checksum = dssChecksum(k.peerDsn(off), ssn, payload.length, payload) ^ (corrupt ? 0x0101 : 0);
  return dss({
    dataAck: k.ourDsn(0),
    mapping: { dsn: k.peerDsn(off), ssn, dataLevelLength: payload.length, checksum },
  });
}

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
