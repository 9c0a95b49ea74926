/**
 * MP_JOIN (RFC 8684 §3.2), packet by packet: our server answers a join with the exact SYN/ACK
 * HMAC, checks the third ACK's HMAC and sends the fourth ACK, resets bad HMACs and unknown
 * tokens with MP_TCPRST; our client joins an announced address with the right token, checks the
 * SYN/ACK HMAC, retransmits its third ACK until the fourth ACK and sends no data before it
 * (packetdrill's mptcp/mp_join scripts and mptcp_join.sh are the checklist).
 */
import assert from 'node:assert/strict';
import { it, describe as suite } from 'node:test';
import { addAddrHmac, joinAckHmac, joinSynAckHmac } from '../src/stack/mptcp/crypto.js';
import type {
  MpJoinAckOption,
  MpJoinSynAckOption,
  MpJoinSynOption,
} from '../src/stack/wire/mptcp-options.js';
import { MP_TCPRST_REASON } from '../src/stack/wire/mptcp-options.js';
import { TCP_RST } from '../src/stack/wire/tcp.js';
import {
  dss,
  expectMptcp,
  MptcpFixture,
  mp,
  mptcpInfo,
  mptcpOptions,
  PEER,
  PeerMptcp,
  type PeerSubflow,
  readNow,
  US,
} from './support/mptcp-fixture.js';

const MSS = { type: 'mss', mss: 1460 } as const;
const PEER2 = '10.0.0.3';
const R_A = 0x11223344;
const UNIQUE = '10.0.0.9';

function joinSyn(token: number, nonce = R_A, addressId = 2, backup = false) {
  return mp({ subtype: 'mp_join', form: 'syn', backup, addressId, receiverToken: token, senderNonce: nonce });
}

/** Server side: an MPTCP connection, then the peer's join SYN from PEER2; returns our SYN/ACK's R_B. */
function serverJoin(
  f: MptcpFixture,
  k: PeerMptcp,
): { sf2: PeerSubflow; rB: number; synAck: MpJoinSynAckOption } {
  const sf2 = f.subflow({ peer: PEER2, peerPort: 40001, peerIsn: 90000 });
  f.send(sf2, { flags: 'S', seq: 0, options: [MSS, joinSyn(k.ourToken)] });
  const seg = f.expectSegment(sf2, { flags: 'SA', ack: 1 });
  sf2.ourIsn = seg.tcp.seqNumber;
  const o = expectMptcp<MpJoinSynAckOption>(seg, { subtype: 'mp_join', form: 'syn_ack', backup: false });
  return { sf2, rB: o.senderNonce, synAck: o };
}

suite('MP_JOIN, our server', () => {
  it('answers a join SYN with SYN/ACK: HMAC(KeyB||KeyA, R_B||R_A) leftmost 64 bits, its nonce', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    f.serverEstablished(k);
    const before = f.stack.connectionCount;
    const { rB, synAck } = serverJoin(f, k);
    assert.equal(synAck.senderTruncatedHmac, joinSynAckHmac(k.ourKey, k.peerKey, rB, R_A));
    assert.equal(synAck.addressId, 0, 'the initial address has ID 0');
    assert.equal(f.stack.connectionCount, before + 1);
    assert.equal(f.mib.MPJoinSynRx, 1);
  });

  it('checks the third ACK HMAC, sends the fourth ACK, then takes data on the new subflow', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { socket } = f.serverEstablished(k);
    const { sf2, rB } = serverJoin(f, k);
    f.send(sf2, {
      flags: 'A',
      options: [
        mp({ subtype: 'mp_join', form: 'ack', senderHmac: joinAckHmac(k.peerKey, k.ourKey, R_A, rB) }),
      ],
    });
    const fourth = f.expectSegment(sf2, { flags: 'A', seq: 1, ack: 1, payloadLength: 0 });
    expectMptcp(fourth, { subtype: 'dss', dataAck: k.peerDsn(0) & 0xffff_ffffn });
    assert.equal(f.mib.MPJoinAckRx, 1);
    const sub = mptcpInfo(socket).subflows.find((s) => s.role === 'join');
    assert.equal(sub?.fullyEstablished, true);
    f.send(sf2, {
      flags: 'PA',
      payload: 'via join',
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 8 } })],
    });
    assert.equal(readNow(socket).toString(), 'via join');
    expectMptcp(f.expectSegment(sf2, { flags: 'A', ack: 9 }), {
      subtype: 'dss',
      dataAck: k.peerDsn(8) & 0xffff_ffffn,
    });
  });

  it('a third ACK with a wrong HMAC is reset with MP_TCPRST and counted (MPJoinAckHMacFailure)', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    const { sf2, rB } = serverJoin(f, k);
    const bad = joinAckHmac(k.peerKey, k.ourKey, R_A, rB);
    bad[19] = (bad[19] ?? 0) ^ 1;
    f.send(sf2, { flags: 'A', options: [mp({ subtype: 'mp_join', form: 'ack', senderHmac: bad })] });
    const rst = f.expectSegment(sf2, { flags: 'RA', seq: 1 });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.MPJoinAckHMacFailure, 1);
    assert.equal(f.mib.MPJoinAckRx, 0);
    // The connection lives on over its initial subflow.
    assert.equal(mptcpInfo(socket).subflows.length, 1);
    socket.write('still here');
    f.expectSegment(sf, { flags: 'PA', payload: 'still here' });
  });

  it("a third ACK without MP_JOIN (Linux's, when a DATA_FIN takes its place) is reset and counted the same", () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { socket } = f.serverEstablished(k);
    const { sf2 } = serverJoin(f, k);
    f.send(sf2, { flags: 'A', options: [dss({ dataAck: k.ourDsn(0) })] });
    const rst = f.expectSegment(sf2, { flags: 'RA', seq: 1 });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.MPJoinAckHMacFailure, 1);
    assert.equal(f.mib.MPJoinAckRx, 0);
    assert.equal(mptcpInfo(socket).subflows.length, 1);
  });

  it('an unknown token is answered with RST + MP_TCPRST, counted, nothing allocated', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    f.serverEstablished(k);
    const before = f.stack.connectionCount;
    const sf2 = f.subflow({ peer: PEER2, peerPort: 40001, peerIsn: 90000 });
    f.send(sf2, { flags: 'S', seq: 0, options: [MSS, joinSyn((k.ourToken ^ 0x5a5a5a5a) >>> 0)] });
    const rst = f.expectSegment(sf2, { flags: 'RA', seq: 0, ack: 1 });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.MPJoinNoTokenFound, 1);
    assert.equal(f.stack.connectionCount, before);
  });

  it('a join SYN before any MPTCP connection exists (no endpoint state) is reset the same way', () => {
    const f = new MptcpFixture();
    f.listen();
    // The listener made the endpoint on first use: one plain connection attempt first.
    f.peerSyn(f.subflow({ peerPort: 1 }), new PeerMptcp());
    f.take();
    const before = f.stack.connectionCount;
    const sf2 = f.subflow({ peer: PEER2, peerPort: 40001 });
    f.send(sf2, { flags: 'S', seq: 0, options: [MSS, joinSyn(0xdeadbeef)] });
    expectMptcp(f.expectSegment(sf2, { flags: 'RA' }), { subtype: 'mp_tcprst' });
    assert.equal(f.stack.connectionCount, before);
  });
});

/** Client side: connected with C set; the peer announces UNIQUE; returns the join SYN's subflow. */
function clientJoin(
  f: MptcpFixture,
  k: PeerMptcp,
  window = 65535,
): {
  sf: PeerSubflow;
  sf2: PeerSubflow;
  syn: MpJoinSynOption;
  socket: import('../src/stack/iface/tcp-socket.js').TcpSocket;
} {
  const { sf, socket } = f.clientEstablished(k, undefined, { cFlag: true, window });
  const addr = new Uint8Array([10, 0, 0, 9]);
  f.send(sf, {
    flags: 'A',
    window,
    options: [
      mp({
        subtype: 'add_addr',
        echo: false,
        addressId: 1,
        address: addr,
        truncatedHmac: addAddrHmac(k.peerKey, k.ourKey, 1, addr),
      }),
    ],
  });
  const { sf: sf2, syn } = f.takeSynTo(UNIQUE);
  const o = expectMptcp<MpJoinSynOption>(syn, { subtype: 'mp_join', form: 'syn' });
  return { sf, sf2, syn: o, socket };
}

suite('MP_JOIN, our client', () => {
  it('joins the announced address with the server token, a nonce, address ID 0, no MP_CAPABLE', () => {
    const f = new MptcpFixture();
    const k = new PeerMptcp();
    const { sf2, syn } = clientJoin(f, k);
    assert.equal(sf2.us, US);
    assert.equal(syn.receiverToken, k.peerToken);
    assert.equal(syn.addressId, 0);
    assert.equal(syn.backup, false);
    assert.equal(typeof syn.senderNonce, 'number');
    assert.equal(f.mib.MPJoinSynTx, 1);
  });

  it('a SYN/ACK with a wrong HMAC is reset with MP_TCPRST (MPJoinSynAckHMacFailure)', () => {
    const f = new MptcpFixture();
    const k = new PeerMptcp();
    const { sf2, syn, socket } = clientJoin(f, k);
    const rB = 0x55667788;
    const hmac = joinSynAckHmac(k.peerKey, k.ourKey, rB, syn.senderNonce) ^ 1n;
    f.send(sf2, {
      flags: 'SA',
      seq: 0,
      ack: 1,
      options: [
        MSS,
        mp({
          subtype: 'mp_join',
          form: 'syn_ack',
          backup: false,
          addressId: 1,
          senderTruncatedHmac: hmac,
          senderNonce: rB,
        }),
      ],
    });
    const rst = f.expectSegment(sf2, { flags: 'R' });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.MPJoinSynAckHMacFailure, 1);
    assert.equal(mptcpInfo(socket).subflows.length, 1);
  });

  it('retransmits the third ACK until the fourth ACK, and sends no data on the join before it', () => {
    const f = new MptcpFixture();
    const k = new PeerMptcp();
    // The initial subflow's window is small, so data waits for a subflow that can carry it.
    const { sf, sf2, syn, socket } = clientJoin(f, k, 100);
    f.take();
    const rB = 0x55667788;
    f.send(sf2, {
      flags: 'SA',
      seq: 0,
      ack: 1,
      options: [
        MSS,
        mp({
          subtype: 'mp_join',
          form: 'syn_ack',
          backup: false,
          addressId: 1,
          senderTruncatedHmac: joinSynAckHmac(k.peerKey, k.ourKey, rB, syn.senderNonce),
          senderNonce: rB,
        }),
      ],
    });
    const hmac = joinAckHmac(k.ourKey, k.peerKey, syn.senderNonce, rB);
    const third = f.expectSegment(sf2, { flags: 'A', seq: 1, ack: 1, payloadLength: 0 });
    expectMptcp<MpJoinAckOption>(third, { subtype: 'mp_join', form: 'ack', senderHmac: hmac });
    assert.equal(f.mib.MPJoinSynAckRx, 1);
    socket.write(new Uint8Array(3000).fill(0x61));
    const first = f.takeOn(sf);
    assert.equal(
      first.reduce((n, s) => n + s.payload.length, 0),
      100,
      'the initial subflow carries what its window allows',
    );
    f.advance(500);
    const again = f.takeOn(sf2);
    assert.deepEqual(
      again.map((s) => [s.payload.length, mptcpOptions(s).map((o) => o.subtype)]),
      [[0, ['mp_join']]],
      'the third ACK again, no data',
    );
    // The fourth ACK: a plain ACK with a DATA_ACK that also opens the data-level window.
    f.send(sf2, { flags: 'A', ack: 1, options: [dss({ dataAck: k.ourDsn(0) })] });
    const after = f.takeOn(sf2);
    assert.ok(after.length > 0, 'data goes on the join once it is fully established');
    assert.ok(
      after.every((s) => s.payload.length > 0 && !mptcpOptions(s).some((o) => o.subtype === 'mp_join')),
    );
    expectMptcp(after[0]!, { subtype: 'dss', mapping: { dsn: k.ourDsn32(100), ssn: 1 } });
    f.advance(10_000);
    assert.ok(
      f.takeOn(sf2).every((s) => !mptcpOptions(s).some((o) => o.subtype === 'mp_join')),
      'no third ACK after the fourth',
    );
  });

  it('never joins the peer initial address when the peer set C, even from another address of ours', () => {
    const f = new MptcpFixture({ addresses: [US, '10.0.0.5'] });
    const k = new PeerMptcp();
    const { sf } = f.clientEstablished(k, undefined, { cFlag: true });
    f.send(sf, { flags: 'A', options: [dss({ dataAck: k.ourDsn(0) })] });
    assert.deepEqual(f.takeSyns(), []);
    assert.equal(f.mib.joinsSkippedCFlag, 1);
  });

  it('joins the peer initial address from its other address when the peer did not set C, once it is fully established', () => {
    const f = new MptcpFixture({ addresses: [US, '10.0.0.5'] });
    const k = new PeerMptcp();
    const { sf } = f.clientEstablished(k, undefined, { cFlag: false });
    // A join sent with the third ACK races it: a server that has not seen the third ACK yet does
    // not hold the connection (Linux: MPJoinNoTokenFound; ours: MPJoinRejected). Like Linux, the
    // path manager waits until the peer speaks MPTCP after the handshake (a DSS).
    assert.deepEqual(f.takeSyns(), []);
    f.send(sf, { flags: 'A', options: [dss({ dataAck: k.ourDsn(0) })] });
    const { sf: sf2, syn } = f.takeSynTo(PEER);
    assert.equal(sf2.us, '10.0.0.5');
    expectMptcp<MpJoinSynOption>(syn, {
      subtype: 'mp_join',
      form: 'syn',
      receiverToken: k.peerToken,
      addressId: 2,
    });
  });
});

suite('MP_JOIN, limits and breakage', () => {
  it('data without a DSS on a join subflow resets that subflow (a join cannot fall back)', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { socket } = f.serverEstablished(k);
    const sf2 = f.subflow({ peer: PEER2, peerPort: 40001, peerIsn: 777 });
    f.serverJoinEstablished(k, sf2);
    f.send(sf2, { flags: 'PA', payload: 'nodss' });
    const rst = f.takeOn(sf2).find((s) => (s.tcp.flags & TCP_RST) !== 0);
    assert.ok(rst !== undefined, 'a RST on the join');
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(mptcpInfo(socket).fallback, false);
    assert.equal(mptcpInfo(socket).subflows.length, 1);
  });

  it('a join beyond maxSubflows is refused with RST + MP_TCPRST (lack of resources, transient)', () => {
    const f = new MptcpFixture();
    f.listen({ maxSubflows: 1 });
    const k = new PeerMptcp();
    f.serverEstablished(k);
    const before = f.stack.connectionCount;
    const sf2 = f.subflow({ peer: PEER2, peerPort: 40001, peerIsn: 777 });
    f.send(sf2, { flags: 'S', seq: 0, options: [MSS, joinSyn(k.ourToken)] });
    const rst = f.expectSegment(sf2, { flags: 'RA' });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.lackOfResources, transient: true });
    assert.equal(f.mib.MPJoinRejected, 1);
    assert.equal(f.stack.connectionCount, before);
  });
});
