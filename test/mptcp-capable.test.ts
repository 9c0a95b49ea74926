/**
 * MP_CAPABLE (RFC 8684 §3.1), packet by packet against a hand-played peer: the server's SYN/ACK
 * (key, C flag), the third ACK, data with the third ACK, the DSS checksum (A flag), and fallback
 * to plain TCP in every way the RFC lists (packetdrill's mptcp/mp_capable and fallback scripts
 * are the checklist).
 */
import assert from 'node:assert/strict';
import { it, describe as suite } from 'node:test';
import { keyMaterial } from '../src/stack/mptcp/crypto.js';
import { dssChecksum } from '../src/stack/wire/dss-checksum.js';
import type { DssOption, MpCapableOption } from '../src/stack/wire/mptcp-options.js';
import {
  dss,
  expectMptcp,
  MptcpFixture,
  mpc,
  mptcpInfo,
  mptcpOptions,
  PEER_KEY,
  PeerMptcp,
  readNow,
} from './support/mptcp-fixture.js';

const MSS = { type: 'mss', mss: 1460 } as const;

suite('MP_CAPABLE, our server', () => {
  it('answers an MP_CAPABLE SYN with SYN/ACK: version 1, our key, C and H set, no A', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const sf = f.subflow();
    const synAck = f.peerSyn(sf, k);
    const o = expectMptcp<MpCapableOption>(synAck, {
      subtype: 'mp_capable',
      version: 1,
      checksumRequired: false,
      extensibility: false,
      noJoinToSource: true,
      extensionFlags: 0,
      hmacSha256: true,
    });
    assert.equal(typeof o.senderKey, 'bigint', 'the SYN/ACK carries our key (12-byte form)');
    assert.equal(o.receiverKey, undefined);
    assert.equal(f.mib.MPCapableSYNRX, 1);
  });

  it('leaves C clear when the listener says cFlag: false', () => {
    const f = new MptcpFixture();
    f.listen({ cFlag: false });
    const synAck = f.peerSyn(f.subflow(), new PeerMptcp());
    expectMptcp(synAck, { subtype: 'mp_capable', noJoinToSource: false, hmacSha256: true });
  });

  it('the third ACK with both keys makes an MPTCP connection: tokens from the keys, no fallback', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { socket } = f.serverEstablished(k);
    f.expectNothing();
    assert.equal(f.mib.MPCapableACKRX, 1);
    const info = mptcpInfo(socket);
    assert.equal(info.fallback, false);
    assert.equal(info.remoteToken, keyMaterial(PEER_KEY).token);
    assert.equal(info.localToken, k.ourToken);
    assert.equal(info.subflows.length, 1);
    assert.equal(info.subflows[0]?.fullyEstablished, true);
  });

  it('our data after the handshake carries a DSS: 32-bit DSN IDSN+1, SSN 1, and a DATA_ACK', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    socket.write('world');
    const seg = f.expectSegment(sf, { flags: 'PA', seq: 1, ack: 1, payload: 'world' });
    expectMptcp<DssOption>(seg, {
      subtype: 'dss',
      dataFin: false,
      dsn64: false,
      dataAck64: false,
      dataAck: k.peerDsn(0) & 0xffff_ffffn,
      mapping: { dsn: k.ourDsn32(0), ssn: 1, dataLevelLength: 5 },
    });
  });

  it('takes data with the third ACK (MP_CAPABLE of 22 bytes with the data-level length)', () => {
    const f = new MptcpFixture();
    const got: string[] = [];
    f.listen();
    const k = new PeerMptcp();
    const sf = f.subflow();
    f.peerSyn(sf, k);
    f.send(sf, {
      flags: 'PA',
      payload: 'hello',
      options: [mpc({ senderKey: k.peerKey, receiverKey: k.ourKey, dataLevelLength: 5 })],
    });
    const socket = f.accepted[0];
    assert.ok(socket !== undefined, 'accepted on the data segment');
    got.push(readNow(socket).toString());
    assert.deepEqual(got, ['hello']);
    const ack = f.expectSegment(sf, { flags: 'A', seq: 1, ack: 6, payloadLength: 0 });
    expectMptcp(ack, { subtype: 'dss', dataAck: k.peerDsn(5) & 0xffff_ffffn });
    assert.equal(mptcpInfo(socket).fallback, false);
    assert.equal(f.mib.MPCapableACKRX, 1);
  });

  it('the peer asks for DSS checksums (A): our SYN/ACK has A, our mappings carry the checksum', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k, undefined, { checksum: true });
    assert.equal(mptcpInfo(socket).checksum, true);
    socket.write('checked');
    const seg = f.expectSegment(sf, { flags: 'PA', payload: 'checked' });
    const o = expectMptcp<DssOption>(seg, {
      subtype: 'dss',
      mapping: { dsn: k.ourDsn32(0), ssn: 1, dataLevelLength: 7 },
    });
    // The checksum covers the full 64-bit DSN whatever width the option carries (RFC 8684 §3.3.1).
    assert.equal(o.mapping?.checksum, dssChecksum(k.ourDsn(0), 1, 7, seg.payload));
  });

  it('the A flag in our SYN/ACK when checksums are required by our listener', () => {
    const f = new MptcpFixture();
    f.listen({ checksum: true });
    const synAck = f.peerSyn(f.subflow(), new PeerMptcp());
    expectMptcp(synAck, { subtype: 'mp_capable', checksumRequired: true, noJoinToSource: true });
  });

  it('with checksums: the peer data with a right checksum is delivered', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k, undefined, { checksum: true });
    const payload = new TextEncoder().encode('abcdef');
    const checksum = dssChecksum(k.peerDsn(0), 1, 6, payload);
    f.send(sf, {
      flags: 'PA',
      payload,
      options: [
        dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 6, checksum } }),
      ],
    });
    assert.equal(readNow(socket).toString(), 'abcdef');
    expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 7 }), {
      subtype: 'dss',
      dataAck: k.peerDsn(6) & 0xffff_ffffn,
    });
    assert.equal(f.mib.DataCsumErr, 0);
  });
});

suite('MP_CAPABLE, our server falls back to plain TCP', () => {
  const cases: [string, () => import('../src/stack/wire/tcp.js').TcpOption[]][] = [
    ['a SYN without MPTCP', () => [MSS]],
    ['a SYN with B (extensibility) set', () => [MSS, mpc({ extensibility: true })]],
    ['a SYN without H (no known crypto algorithm)', () => [MSS, mpc({ hmacSha256: false })]],
    [
      'a version 0 SYN (RFC 6824: 12 bytes with a key; the codec gives mptcp-invalid)',
      () => [
        MSS,
        {
          type: 'unknown',
          kind: 30,
          data: new Uint8Array([0x00, 0x81, 1, 2, 3, 4, 5, 6, 7, 8]),
        },
      ],
    ],
  ];
  for (const [name, options] of cases) {
    it(`answers ${name} with a plain SYN/ACK, and the connection is plain TCP`, () => {
      const f = new MptcpFixture();
      f.listen();
      const sf = f.subflow();
      f.send(sf, { flags: 'S', seq: 0, options: options() });
      const synAck = f.expectSegment(sf, { flags: 'SA', ack: 1, noMptcp: true });
      sf.ourIsn = synAck.tcp.seqNumber;
      f.send(sf, { flags: 'A' });
      const socket = f.accepted[0];
      assert.ok(socket !== undefined);
      f.send(sf, { flags: 'PA', payload: 'plain' });
      assert.equal(readNow(socket).toString(), 'plain');
      f.expectSegment(sf, { flags: 'A', seq: 1, ack: 6, noMptcp: true });
      socket.write('reply');
      f.expectSegment(sf, { flags: 'PA', seq: 1, payload: 'reply', noMptcp: true });
      assert.equal('mptcp' in socket.info(), false, 'a plain TCP connection, no MPTCP state');
    });
  }

  it('counts the refused forms: B or no H as MPCapableFallbackSYNACK, v0 as mptcpOptionInvalid', () => {
    const f = new MptcpFixture();
    f.listen();
    f.send(f.subflow({ peerPort: 1001 }), { flags: 'S', seq: 0, options: [mpc({ extensibility: true })] });
    f.send(f.subflow({ peerPort: 1002 }), { flags: 'S', seq: 0, options: [mpc({ hmacSha256: false })] });
    f.send(f.subflow({ peerPort: 1003 }), {
      flags: 'S',
      seq: 0,
      options: [{ type: 'unknown', kind: 30, data: new Uint8Array([0x00, 0x81, 1, 2, 3, 4, 5, 6, 7, 8]) }],
    });
    assert.equal(f.mib.MPCapableFallbackSYNACK, 2);
    assert.equal(f.mib.mptcpOptionInvalid, 1);
    assert.ok(f.take().every((s) => mptcpOptions(s).length === 0));
  });

  it('falls back when the third ACK carries no MP_CAPABLE (stripped by a middlebox)', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const sf = f.subflow();
    f.peerSyn(sf, k);
    f.send(sf, { flags: 'A' });
    const socket = f.accepted[0];
    assert.ok(socket !== undefined);
    assert.equal(f.mib.MPCapableFallbackACK, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    socket.write('x');
    f.expectSegment(sf, { flags: 'PA', payload: 'x', noMptcp: true });
  });

  it('falls back when the first data after the handshake has no DSS', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    f.send(sf, { flags: 'PA', payload: 'nodss' });
    assert.equal(readNow(socket).toString(), 'nodss');
    f.expectSegment(sf, { flags: 'A', ack: 6, noMptcp: true });
    assert.equal(f.mib.DssFallback, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
  });
});

suite('MP_CAPABLE, our client', () => {
  it('sends MP_CAPABLE of 4 bytes (H, no key) on its SYN and on the retransmitted SYN', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const { syn } = f.connect(sf);
    const o = expectMptcp<MpCapableOption>(syn, {
      subtype: 'mp_capable',
      version: 1,
      hmacSha256: true,
      checksumRequired: false,
      noJoinToSource: false,
    });
    assert.equal(o.senderKey, undefined);
    f.advance(999);
    f.expectNothing();
    f.advance(1);
    const again = f.expectSegment(sf, { flags: 'S', seq: 0 });
    expectMptcp(again, { subtype: 'mp_capable', version: 1, hmacSha256: true });
    assert.equal(f.mib.MPCapableSYNTX, 2);
  });

  it('after two unanswered SYNs the next goes without MP_CAPABLE, and a plain SYN/ACK is plain TCP', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const { socket } = f.connect(sf);
    f.advance(1000); // RTO 1 s, then 2 s: the second and third SYN still offer MPTCP
    expectMptcp(f.expectSegment(sf, { flags: 'S', seq: 0 }), { subtype: 'mp_capable' });
    f.advance(2000);
    expectMptcp(f.expectSegment(sf, { flags: 'S', seq: 0 }), { subtype: 'mp_capable' });
    f.advance(4000);
    f.expectSegment(sf, { flags: 'S', seq: 0, noMptcp: true });
    assert.equal(f.mib.MPCapableSYNTX, 3);
    assert.equal(f.mib.MPCapableSYNTXDrop, 1);
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS] });
    assert.equal(mptcpInfo(socket).fallback, true);
    f.expectSegment(sf, { flags: 'A', seq: 1, ack: 1, payloadLength: 0, noMptcp: true });
    socket.write('plain');
    f.expectSegment(sf, { flags: 'PA', seq: 1, payloadLength: 5, noMptcp: true });
  });

  it('third ACK: MP_CAPABLE of 20 bytes with our key and the server key; C recorded', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const k = new PeerMptcp();
    const { socket } = f.connect(sf);
    f.send(sf, {
      flags: 'SA',
      seq: 0,
      ack: 1,
      options: [MSS, mpc({ senderKey: k.peerKey, noJoinToSource: true })],
    });
    const ack = f.expectSegment(sf, { flags: 'A', seq: 1, ack: 1, payloadLength: 0 });
    const o = expectMptcp<MpCapableOption>(ack, {
      subtype: 'mp_capable',
      version: 1,
      hmacSha256: true,
      receiverKey: k.peerKey,
    });
    assert.equal(o.dataLevelLength, undefined);
    k.ourKey = o.senderKey ?? 0n;
    assert.equal(keyMaterial(k.ourKey).token, mptcpInfo(socket).localToken);
    assert.equal(mptcpInfo(socket).peerCFlag, true);
    assert.equal(f.mib.MPCapableSYNACKRX, 1);
  });

  it('its first data before the server spoke MPTCP carries MP_CAPABLE with the data-level length', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const k = new PeerMptcp();
    const { socket } = f.connect(sf);
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS, mpc({ senderKey: k.peerKey })] });
    const third = f.expectSegment(sf, { flags: 'A' });
    k.ourKey = expectMptcp<MpCapableOption>(third, { subtype: 'mp_capable' }).senderKey ?? 0n;
    socket.write('first');
    const seg = f.expectSegment(sf, { flags: 'PA', seq: 1, payload: 'first' });
    expectMptcp(seg, {
      subtype: 'mp_capable',
      senderKey: k.ourKey,
      receiverKey: k.peerKey,
      dataLevelLength: 5,
    });
    // The server answers with a DSS: from now on our mappings are DSS options.
    f.send(sf, { flags: 'A', ack: 6, options: [dss({ dataAck: k.ourDsn(5) })] });
    f.expectNothing();
    socket.write('second');
    const next = f.expectSegment(sf, { flags: 'PA', seq: 6, payload: 'second' });
    expectMptcp(next, { subtype: 'dss', mapping: { dsn: k.ourDsn32(5), ssn: 6, dataLevelLength: 6 } });
    assert.equal(mptcpInfo(socket).fallback, false);
  });

  it('packets are full: the mapping on its first segment only, its DATA_ACK only while it has news, MP_CAPABLE first', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const k = new PeerMptcp();
    const { socket } = f.connect(sf);
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS, mpc({ senderKey: k.peerKey })] });
    const third = f.expectSegment(sf, { flags: 'A' });
    k.ourKey = expectMptcp<MpCapableOption>(third, { subtype: 'mp_capable' }).senderKey ?? 0n;
    const dataOf = () => f.takeOn(sf).filter((s) => s.payload.length > 0);
    // Options and payload of a packet: MSS 1460 (no timestamps here) when full.
    const packet = (s: { tcp: { headerLength: number }; payload: Uint8Array }) =>
      s.tcp.headerLength - 20 + s.payload.length;
    const sizes = (segs: { payload: Uint8Array }[]) => segs.map((s) => s.payload.length).join(' ');
    // Until the server speaks MPTCP: room for MP_CAPABLE with keys and length (24 bytes) on
    // every segment, and every one carries its mapping.
    socket.write(Buffer.alloc(4 * 1436, 1));
    const first = dataOf();
    assert.equal(sizes(first), '1436 1436 1436 1436');
    expectMptcp(first[0]!, { subtype: 'mp_capable', dataLevelLength: 1436 });
    assert.equal(packet(first[0]!), 1460);
    expectMptcp(first[1]!, { subtype: 'dss', dsn64: false, dataAck: k.peerDsn(0) & 0xffff_ffffn });
    let sent = 4 * 1436;
    // Fully established, everything acknowledged: the DATA_ACK has no news. A mapping's first
    // segment carries the 16-byte mapping, the next one no MPTCP option at all (RFC 8684 §3.3.1).
    f.send(sf, { flags: 'A', ack: 1 + sent, options: [dss({ dataAck: k.ourDsn(sent) })] });
    socket.write(Buffer.alloc(1444 + 1460, 2));
    const lean = dataOf();
    assert.equal(sizes(lean), '1444 1460');
    for (const s of lean) assert.equal(packet(s), 1460);
    const head = expectMptcp<DssOption>(lean[0]!, { subtype: 'dss', dsn64: false });
    assert.equal(head.dataAck, undefined);
    assert.equal(head.mapping?.dataLevelLength, 1444 + 1460);
    assert.deepEqual(mptcpOptions(lean[1]!), []);
    sent += 1444 + 1460;
    // The peer's data moves our DATA_ACK: data segments carry it (an 8-byte DSS of its own
    // inside the mapping, 4 bytes beside it on the first) until a segment with it is acknowledged.
    f.send(sf, {
      flags: 'PA',
      ack: 1 + sent,
      payload: 'news',
      options: [dss({ dataAck: k.ourDsn(sent), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 4 } })],
    });
    f.take();
    socket.write(Buffer.alloc(1440 + 1452, 3));
    const acking = dataOf();
    assert.equal(sizes(acking), '1440 1452');
    for (const s of acking) {
      assert.equal(packet(s), 1460);
      expectMptcp(s, { subtype: 'dss', dataAck: k.peerDsn(4) & 0xffff_ffffn });
    }
    assert.equal(expectMptcp<DssOption>(acking[1]!, { subtype: 'dss' }).mapping, undefined);
    sent += 1440 + 1452;
    f.send(sf, { flags: 'A', seq: 5, ack: 1 + sent, options: [dss({ dataAck: k.ourDsn(sent) })] });
    socket.write(Buffer.alloc(1444, 4));
    const after = dataOf();
    assert.equal(sizes(after), '1444');
    assert.equal(expectMptcp<DssOption>(after[0]!, { subtype: 'dss' }).dataAck, undefined);
  });

  it('falls back when the SYN/ACK has no MP_CAPABLE: plain third ACK, plain data', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const { socket } = f.connect(sf);
    f.advance(1000);
    expectMptcp(f.expectSegment(sf, { flags: 'S', seq: 0 }), { subtype: 'mp_capable' });
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS] });
    f.expectSegment(sf, { flags: 'A', seq: 1, ack: 1, noMptcp: true });
    assert.equal(f.mib.MPCapableFallbackSYNACK, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    socket.write('plain');
    f.expectSegment(sf, { flags: 'PA', seq: 1, payload: 'plain', noMptcp: true });
  });

  it('falls back when the server first data carries no DSS', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const k = new PeerMptcp();
    const { socket } = f.connect(sf);
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS, mpc({ senderKey: k.peerKey })] });
    f.expectSegment(sf, { flags: 'A' });
    f.send(sf, { flags: 'PA', payload: 'stripped' });
    assert.equal(readNow(socket).toString(), 'stripped');
    f.expectSegment(sf, { flags: 'A', ack: 9, noMptcp: true });
    assert.equal(f.mib.DssFallback, 1);
    assert.equal(mptcpInfo(socket).fallback, true);
    socket.write('after');
    f.expectSegment(sf, { flags: 'PA', seq: 1, payload: 'after', noMptcp: true });
  });
});

suite('after fallback', () => {
  it('every later segment from the peer reaches the application, in order (client, plain SYN/ACK)', () => {
    const f = new MptcpFixture();
    const sf = f.subflow();
    const { socket } = f.connect(sf);
    f.send(sf, { flags: 'SA', seq: 0, ack: 1, options: [MSS] });
    f.take();
    const got: string[] = [];
    let seq = 1;
    for (const part of ['one', 'two', 'three']) {
      f.send(sf, { flags: 'PA', seq, payload: part });
      seq += part.length;
      got.push(readNow(socket).toString());
      f.expectSegment(sf, { flags: 'A', ack: seq, noMptcp: true });
    }
    assert.deepEqual(got, ['one', 'two', 'three']);
    assert.equal(f.mib.OFOQueue, 0);
  });

  it('every later segment reaches the application (server, first data without DSS)', () => {
    const f = new MptcpFixture();
    f.listen();
    const { sf, socket } = f.serverEstablished(new PeerMptcp());
    const got: string[] = [];
    let seq = 1;
    for (const part of ['alpha', 'beta', 'gamma']) {
      f.send(sf, { flags: 'PA', seq, payload: part });
      seq += part.length;
      got.push(readNow(socket).toString());
    }
    assert.deepEqual(got, ['alpha', 'beta', 'gamma']);
    assert.equal(f.mib.DssFallback, 1);
  });
});
