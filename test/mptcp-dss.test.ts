/**
 * DSS (RFC 8684 §3.3), packet by packet against a hand-played client: 32- and 64-bit DSNs and
 * DATA_ACKs, DATA_FIN alone and with data, mappings over several segments and segments over two
 * mappings, data-level reassembly across two subflows out of order, and a conflicting mapping
 * (packetdrill's mptcp/dss scripts are the checklist).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { it, describe as suite } from 'node:test';
import type { DssOption } from '../src/stack/wire/mptcp-options.js';
import { MP_TCPRST_REASON } from '../src/stack/wire/mptcp-options.js';
import { dss, expectMptcp, MptcpFixture, PeerMptcp, readNow } from './support/mptcp-fixture.js';
import { pattern } from './support/tcp-fixture.js';

const u32 = (x: bigint) => x & 0xffff_ffffn;

function established(mptcp: Parameters<MptcpFixture['listen']>[0] = true) {
  const f = new MptcpFixture();
  f.listen(mptcp);
  const k = new PeerMptcp();
  const { sf, socket } = f.serverEstablished(k);
  return { f, k, sf, socket };
}

suite('DSS from the peer', () => {
  for (const dsn64 of [false, true]) {
    it(`a ${dsn64 ? '64' : '32'}-bit DSN mapping is accepted and DATA_ACKed`, () => {
      const { f, k, sf, socket } = established();
      f.send(sf, {
        flags: 'PA',
        payload: 'abcd',
        options: [
          dss({ dataAck: k.ourDsn(0), dsn64, mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 4 } }),
        ],
      });
      assert.equal(readNow(socket).toString(), 'abcd');
      expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 5 }), {
        subtype: 'dss',
        dataAck: u32(k.peerDsn(4)),
      });
      assert.equal(f.mib.mappingInvalid + f.mib.DSSNotMatching + f.mib.DssFallback, 0);
    });
  }

  for (const dataAck64 of [false, true]) {
    it(`a ${dataAck64 ? '64' : '32'}-bit DATA_ACK frees the data-level send buffer`, () => {
      const { f, k, sf, socket } = established({ sendBufferSize: 1000 });
      socket.write(pattern(1500));
      const first = f.expectSegment(sf, { flags: 'PA', seq: 1, payloadLength: 1000 });
      expectMptcp<DssOption>(first, {
        subtype: 'dss',
        mapping: { dsn: k.ourDsn32(0), dataLevelLength: 1000 },
      });
      // A subflow-level ACK alone (DATA_ACK still at the start) frees nothing.
      f.send(sf, { flags: 'A', ack: 1001, options: [dss({ dataAck: k.ourDsn(0), dataAck64 })] });
      f.expectNothing();
      f.send(sf, { flags: 'A', ack: 1001, options: [dss({ dataAck: k.ourDsn(1000), dataAck64 })] });
      const next = f.expectSegment(sf, { flags: 'PA', seq: 1001, payloadLength: 500 });
      expectMptcp(next, {
        subtype: 'dss',
        mapping: { dsn: k.ourDsn32(1000), ssn: 1001, dataLevelLength: 500 },
      });
      assert.equal(f.mib.dataAckInvalid, 0);
    });
  }

  it('a DATA_ACK beyond what we sent is ignored and counted', () => {
    const { f, k, sf, socket } = established();
    socket.write('12345');
    f.expectSegment(sf, { flags: 'PA', payload: '12345' });
    f.send(sf, { flags: 'A', ack: 6, options: [dss({ dataAck: k.ourDsn(5000) })] });
    assert.equal(f.mib.dataAckInvalid, 1);
  });

  it('a DATA_FIN on its own (SSN 0, length 1) is DATA_ACKed one past it and ends the stream', async () => {
    const { f, k, sf, socket } = established();
    socket.on('data', () => undefined);
    const ended = once(socket, 'end');
    f.send(sf, {
      flags: 'PA',
      payload: 'abc',
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 3 } })],
    });
    f.take();
    f.send(sf, {
      flags: 'A',
      seq: 4,
      options: [
        dss({
          dataAck: k.ourDsn(0),
          dataFin: true,
          mapping: { dsn: k.peerDsn(3), ssn: 0, dataLevelLength: 1 },
        }),
      ],
    });
    const segs = f.takeOn(sf);
    const acks = segs.map((s) => expectMptcp<DssOption>(s, { subtype: 'dss' }).dataAck);
    assert.ok(acks.includes(u32(k.peerDsn(4))), `a DATA_ACK of the DATA_FIN: ${acks.join(', ')}`);
    await ended;
  });

  it('a DATA_FIN with data (the data-level length counts it) is DATA_ACKed past both', async () => {
    const { f, k, sf, socket } = established();
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = once(socket, 'end');
    f.send(sf, {
      flags: 'PA',
      payload: 'xyz',
      options: [
        dss({
          dataAck: k.ourDsn(0),
          dataFin: true,
          mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 4 },
        }),
      ],
    });
    const acks = f.takeOn(sf).map((s) => expectMptcp<DssOption>(s, { subtype: 'dss' }).dataAck);
    assert.ok(acks.includes(u32(k.peerDsn(4))), `a DATA_ACK past the DATA_FIN: ${acks.join(', ')}`);
    await ended;
    assert.equal(Buffer.concat(chunks).toString(), 'xyz');
  });

  it('one mapping spread over three segments: only the first carries it', () => {
    const { f, k, sf, socket } = established();
    const data = pattern(3000);
    f.send(sf, {
      flags: 'A',
      payload: data.subarray(0, 1000),
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 3000 } })],
    });
    expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 1001 }), {
      subtype: 'dss',
      dataAck: u32(k.peerDsn(1000)),
    });
    f.send(sf, {
      flags: 'A',
      seq: 1001,
      payload: data.subarray(1000, 2000),
      options: [dss({ dataAck: k.ourDsn(0) })],
    });
    expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 2001 }), {
      subtype: 'dss',
      dataAck: u32(k.peerDsn(2000)),
    });
    f.send(sf, { flags: 'PA', seq: 2001, payload: data.subarray(2000) });
    expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 3001 }), {
      subtype: 'dss',
      dataAck: u32(k.peerDsn(3000)),
    });
    assert.deepEqual(readNow(socket), Buffer.from(data));
    assert.equal(f.mib.DSSNoMatchTCP, 0);
  });

  it('one segment over two contiguous mappings (the second starts inside it)', () => {
    const { f, k, sf, socket } = established();
    const data = pattern(200);
    f.send(sf, {
      flags: 'A',
      payload: data.subarray(0, 100),
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 150 } })],
    });
    expectMptcp(f.expectSegment(sf, { ack: 101 }), { subtype: 'dss', dataAck: u32(k.peerDsn(100)) });
    f.send(sf, {
      flags: 'PA',
      seq: 101,
      payload: data.subarray(100),
      options: [
        dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(150), ssn: 151, dataLevelLength: 50 } }),
      ],
    });
    expectMptcp(f.expectSegment(sf, { ack: 201 }), { subtype: 'dss', dataAck: u32(k.peerDsn(200)) });
    assert.deepEqual(readNow(socket), Buffer.from(data));
  });

  it('data-level reassembly across two subflows, the later data first', () => {
    const { f, k, sf, socket } = established();
    const sf2 = f.subflow({ peer: '10.0.0.3', peerPort: 40001, peerIsn: 777 });
    f.serverJoinEstablished(k, sf2);
    const data = pattern(200);
    f.send(sf2, {
      flags: 'PA',
      payload: data.subarray(100),
      options: [
        dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(100), ssn: 1, dataLevelLength: 100 } }),
      ],
    });
    expectMptcp(f.expectSegment(sf2, { flags: 'A', ack: 101 }), {
      subtype: 'dss',
      dataAck: u32(k.peerDsn(0)),
    });
    assert.equal(readNow(socket).length, 0, 'nothing readable before the hole is filled');
    assert.equal(f.mib.OFOQueue, 1);
    f.send(sf, {
      flags: 'PA',
      payload: data.subarray(0, 100),
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 100 } })],
    });
    expectMptcp(f.expectSegment(sf, { flags: 'A', ack: 101 }), {
      subtype: 'dss',
      dataAck: u32(k.peerDsn(200)),
    });
    assert.deepEqual(readNow(socket), Buffer.from(data));
  });

  it('the same data again on another subflow is a duplicate, DATA_ACKed, not delivered twice', () => {
    const { f, k, sf, socket } = established();
    const sf2 = f.subflow({ peer: '10.0.0.3', peerPort: 40001, peerIsn: 777 });
    f.serverJoinEstablished(k, sf2);
    const map = dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 4 } });
    f.send(sf, { flags: 'PA', payload: 'once', options: [map] });
    f.send(sf2, { flags: 'PA', payload: 'once', options: [map] });
    assert.equal(readNow(socket).toString(), 'once');
    assert.equal(f.mib.DuplicateData, 1);
    expectMptcp(f.expectSegment(sf2, { flags: 'A', ack: 5 }), { subtype: 'dss', dataAck: u32(k.peerDsn(4)) });
  });

  it('a mapping that conflicts with a held one resets the subflow with MP_TCPRST (DSSNotMatching)', async () => {
    const { f, k, sf, socket } = established();
    const failed = once(socket, 'error');
    const data = pattern(200);
    f.send(sf, {
      flags: 'A',
      payload: data.subarray(0, 100),
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 200 } })],
    });
    f.take();
    f.send(sf, {
      flags: 'PA',
      seq: 101,
      payload: data.subarray(100),
      options: [
        dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(500), ssn: 101, dataLevelLength: 100 } }),
      ],
    });
    const rst = f.expectSegment(sf, { flags: 'RA' });
    expectMptcp(rst, { subtype: 'mp_tcprst', reason: MP_TCPRST_REASON.mptcpSpecific });
    assert.equal(f.mib.DSSNotMatching, 1);
    const [err] = (await failed) as [{ code: string }];
    assert.equal(err.code, 'ECONNRESET', 'its only subflow gone, the connection is reset');
  });
});
