/**
 * ADD_ADDR (RFC 8684 §3.4.1), packet by packet: our server announces its unique address (IPv4,
 * IPv6, with a port) with the exact HMAC on a pure ACK of its own, retransmits it until echoed
 * (the original plus 3, as mptcp_join.sh's add_addr_timeout expects); our client echoes a valid
 * announcement and joins it, drops and counts a bad HMAC, and never joins an address+port the
 * peer marked with C (packetdrill's mptcp/add_addr scripts are the checklist).
 */
import assert from 'node:assert/strict';
import { it, describe as suite } from 'node:test';
import { addressBytes, parseAddress } from '../src/stack/iface/address.js';
import { addAddrHmac } from '../src/stack/mptcp/crypto.js';
import type { AddAddrOption, MpJoinSynOption } from '../src/stack/wire/mptcp-options.js';
import {
  expectMptcp,
  MptcpFixture,
  mp,
  mptcpInfo,
  mptcpOptions,
  PEER,
  PEER_PORT,
  PeerMptcp,
  type PeerSubflow,
} from './support/mptcp-fixture.js';

const UNIQUE = '10.0.0.9';
const UNIQUE6 = 'fd00::9';

function serverAnnouncing(announce: { address: string; port?: number }[]) {
  const f = new MptcpFixture();
  f.listen({
    announce: announce.map((a) => ({
      address: parseAddress(a.address),
      ...(a.port === undefined ? {} : { port: a.port }),
    })),
  });
  const k = new PeerMptcp();
  const { sf, socket } = f.serverEstablished(k);
  return { f, k, sf, socket };
}

function echo(addressId: number, address: string, port?: number) {
  return mp({
    subtype: 'add_addr',
    echo: true,
    addressId,
    address: addressBytes(parseAddress(address)),
    ...(port === undefined ? {} : { port }),
  });
}

function announcement(k: PeerMptcp, addressId: number, address: string, port?: number, hmacFlip = 0n) {
  const bytes = addressBytes(parseAddress(address));
  return mp({
    subtype: 'add_addr',
    echo: false,
    addressId,
    address: bytes,
    ...(port === undefined ? {} : { port }),
    truncatedHmac: addAddrHmac(k.peerKey, k.ourKey, addressId, bytes, port) ^ hmacFlip,
  });
}

/** The one ADD_ADDR segment on `sf`: a pure ACK with ADD_ADDR alone. */
function expectAnnouncement(f: MptcpFixture, sf: PeerSubflow): AddAddrOption {
  const seg = f.expectSegment(sf, { flags: 'A', seq: 1, ack: 1, payloadLength: 0 });
  assert.deepEqual(
    mptcpOptions(seg).map((o) => o.subtype),
    ['add_addr'],
    'ADD_ADDR goes alone on its ACK',
  );
  return expectMptcp<AddAddrOption>(seg, { subtype: 'add_addr' });
}

suite('ADD_ADDR, our server announces', () => {
  const cases: [string, { address: string; port?: number }][] = [
    ['an IPv4 address', { address: UNIQUE }],
    ['an IPv6 address', { address: UNIQUE6 }],
    ['an IPv4 address with a port', { address: UNIQUE, port: 8080 }],
  ];
  for (const [name, a] of cases) {
    it(`${name} after the handshake, with HMAC(KeyA||KeyB, ID||addr||port) rightmost 64 bits`, () => {
      const { f, k, sf } = serverAnnouncing([a]);
      const o = expectAnnouncement(f, sf);
      const bytes = addressBytes(parseAddress(a.address));
      matchAnnouncement(o, 1, bytes, a.port, addAddrHmac(k.ourKey, k.peerKey, 1, bytes, a.port));
      assert.equal(f.mib.AddAddrTx, 1);
    });
  }

  it('retransmits the announcement every 2 s until echoed: the original plus 3, then stops', () => {
    const { f, sf } = serverAnnouncing([{ address: UNIQUE }]);
    const first = expectAnnouncement(f, sf);
    for (let i = 1; i <= 3; i++) {
      f.advance(1999);
      f.expectNothing();
      f.advance(1);
      assert.deepEqual(expectAnnouncement(f, sf), first, `retransmission ${i}`);
    }
    f.advance(60_000);
    f.expectNothing();
    assert.equal(f.mib.AddAddrTx, 4);
  });

  it('stops retransmitting once the peer echoes it', () => {
    const { f, sf } = serverAnnouncing([{ address: UNIQUE }]);
    expectAnnouncement(f, sf);
    f.send(sf, { flags: 'A', options: [echo(1, UNIQUE)] });
    f.expectNothing();
    f.advance(60_000);
    f.expectNothing();
    assert.equal(f.mib.EchoAdd, 1);
    assert.equal(f.mib.AddAddrTx, 1);
  });

  it('an echo with another address does not stop the retransmission', () => {
    const { f, sf } = serverAnnouncing([{ address: UNIQUE }]);
    expectAnnouncement(f, sf);
    f.send(sf, { flags: 'A', options: [echo(1, '10.0.0.10')] });
    f.advance(2000);
    expectAnnouncement(f, sf);
  });
});

function matchAnnouncement(
  o: AddAddrOption,
  id: number,
  bytes: Uint8Array,
  port: number | undefined,
  hmac: bigint,
) {
  assert.equal(o.echo, false);
  assert.equal(o.addressId, id);
  assert.deepEqual([...o.address], [...bytes]);
  assert.equal(o.port, port);
  assert.equal(o.echo === false ? o.truncatedHmac : undefined, hmac);
}

suite('ADD_ADDR, our client receives', () => {
  function client(addresses?: string[], cFlag = true) {
    const f = new MptcpFixture(addresses === undefined ? {} : { addresses });
    const k = new PeerMptcp();
    const { sf, socket } = f.clientEstablished(k, undefined, { cFlag });
    return { f, k, sf, socket };
  }

  it('an announcement before any DSS makes the initial subflow fully established (as Linux): the echo goes at once', () => {
    const { f, k, sf, socket } = client();
    f.send(sf, { flags: 'A', options: [announcement(k, 3, UNIQUE)] });
    f.takeSyns();
    const seg = f.expectSegment(sf, { flags: 'A', payloadLength: 0 });
    assert.deepEqual(
      mptcpOptions(seg).map((o) => o.subtype),
      ['add_addr'],
      'the echo, not a repeated MP_CAPABLE',
    );
    assert.equal(mptcpInfo(socket).subflows[0]?.fullyEstablished, true);
    socket.write('data');
    expectMptcp(f.expectSegment(sf, { flags: 'PA', payload: 'data' }), {
      subtype: 'dss',
      mapping: { dsn: k.ourDsn32(0), ssn: 1 },
    });
  });

  it('echoes a valid IPv4 announcement (E set, no HMAC) on a pure ACK and joins it', () => {
    const { f, k, sf } = client();
    f.send(sf, { flags: 'A', options: [announcement(k, 3, UNIQUE)] });
    const { syn } = f.takeSynTo(UNIQUE);
    expectMptcp<MpJoinSynOption>(syn, { subtype: 'mp_join', form: 'syn', receiverToken: k.peerToken });
    const seg = f.expectSegment(sf, { flags: 'A', payloadLength: 0 });
    assert.deepEqual(
      mptcpOptions(seg).map((o) => o.subtype),
      ['add_addr'],
    );
    const o = expectMptcp<AddAddrOption>(seg, {
      subtype: 'add_addr',
      echo: true,
      addressId: 3,
      address: new Uint8Array([10, 0, 0, 9]),
    });
    assert.equal(o.port, undefined);
    assert.equal(f.mib.AddAddr, 1);
    assert.equal(f.mib.EchoAddTx, 1);
  });

  it('an IPv6 announcement is echoed and joined from our IPv6 address', () => {
    const { f, k, sf } = client(['10.0.0.1', 'fd00::1']);
    f.send(sf, { flags: 'A', options: [announcement(k, 4, UNIQUE6)] });
    const { sf: sf2 } = f.takeSynTo(UNIQUE6);
    assert.equal(sf2.us, 'fd00::1');
    const o = expectMptcp<AddAddrOption>(f.expectSegment(sf, { flags: 'A' }), {
      subtype: 'add_addr',
      echo: true,
      addressId: 4,
    });
    assert.equal(o.address.length, 16);
  });

  it('an announcement with a port: the echo carries the port, the join goes to it', () => {
    const { f, k, sf } = client();
    f.send(sf, { flags: 'A', options: [announcement(k, 5, UNIQUE, 8443)] });
    f.takeSynTo(UNIQUE, 8443);
    expectMptcp(f.expectSegment(sf, { flags: 'A' }), {
      subtype: 'add_addr',
      echo: true,
      addressId: 5,
      port: 8443,
    });
    assert.equal(f.mib.PortAdd, 1);
  });

  it('a bad HMAC is dropped and counted: no echo, no join', () => {
    const { f, k, sf } = client();
    f.send(sf, { flags: 'A', options: [announcement(k, 3, UNIQUE, undefined, 1n)] });
    f.expectNothing();
    assert.equal(f.mib.addAddrBadHmac, 1);
    assert.equal(f.mib.AddAddrDrop, 1);
    assert.equal(f.mib.AddAddr, 0);
  });

  it('an announcement of the C-flagged address and port is echoed but never joined', () => {
    const { f, k, sf } = client(['10.0.0.1', '10.0.0.5']);
    f.send(sf, { flags: 'A', options: [announcement(k, 6, PEER)] });
    expectMptcp(f.expectSegment(sf, { flags: 'A' }), { subtype: 'add_addr', echo: true, addressId: 6 });
    assert.deepEqual(f.takeSyns(), []);
    assert.ok(f.mib.joinsSkippedCFlag >= 1);
  });

  it('the C-flagged address with another port may be joined', () => {
    const { f, k, sf } = client();
    f.send(sf, { flags: 'A', options: [announcement(k, 7, PEER, PEER_PORT + 1)] });
    f.takeSynTo(PEER, PEER_PORT + 1);
    expectMptcp(f.expectSegment(sf, { flags: 'A' }), { subtype: 'add_addr', echo: true });
  });
});
