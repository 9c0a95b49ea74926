/**
 * Ending subflows and connections (RFC 8684 §3.5, §3.6, §3.4.2, §3.3.8), packet by packet:
 * MP_FASTCLOSE both ways, MP_TCPRST on a subflow, REMOVE_ADDR closing the subflows of an address,
 * MP_PRIO making a subflow a backup (packetdrill's mptcp/fastclose, mp_reset, mp_prio and
 * mptcp_join.sh's remove/backup/fastclose families are the checklist).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { it, describe as suite } from 'node:test';
import type { DssOption, MpFastcloseOption } from '../src/stack/wire/mptcp-options.js';
import { MP_TCPRST_REASON } from '../src/stack/wire/mptcp-options.js';
import { TCP_FIN, TCP_RST } from '../src/stack/wire/tcp.js';
import {
  dss,
  expectMptcp,
  MptcpFixture,
  mp,
  mptcpInfo,
  PeerMptcp,
  readNow,
} from './support/mptcp-fixture.js';
import { lettersOf } from './support/tcp-fixture.js';

function twoSubflows() {
  const f = new MptcpFixture();
  f.listen();
  const k = new PeerMptcp();
  const { sf, socket } = f.serverEstablished(k);
  const sf2 = f.subflow({ peer: '10.0.0.3', peerPort: 40001, peerIsn: 777 });
  f.serverJoinEstablished(k, sf2, 0x0a0b0c0d, 2);
  return { f, k, sf, sf2, socket };
}

const tcprst = (reason: number = MP_TCPRST_REASON.unspecified) =>
  mp({ subtype: 'mp_tcprst', flagU: false, flagV: false, flagW: false, transient: false, reason });

suite('MP_FASTCLOSE', () => {
  it('from the peer with our key: a RST on every subflow at once, nothing left, ECONNRESET', async () => {
    const { f, k, sf, sf2, socket } = twoSubflows();
    const failed = once(socket, 'error');
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'mp_fastclose', receiverKey: k.ourKey })] });
    for (const s of [sf, sf2]) {
      const rst = f.expectSegment(s, {});
      assert.ok((rst.tcp.flags & TCP_RST) !== 0, `a RST on ${s.peer}: ${lettersOf(rst.tcp.flags)}`);
    }
    assert.equal(f.mib.MPFastcloseRx, 1);
    assert.equal(f.stack.connectionCount, 0, 'both subflows left the table');
    const [err] = (await failed) as [{ code: string }];
    assert.equal(err.code, 'ECONNRESET');
  });

  it('with a key that is not ours: ignored, the connection goes on', () => {
    const { f, k, sf, socket } = twoSubflows();
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'mp_fastclose', receiverKey: k.ourKey ^ 1n })] });
    f.expectNothing();
    assert.equal(mptcpInfo(socket).subflows.length, 2);
    socket.write('alive');
    assert.equal(f.take().filter((s) => s.payload.length > 0).length, 1, 'data still goes out');
  });

  it('socket.destroy(): RST with MP_FASTCLOSE carrying the peer key on every subflow', () => {
    const { f, k, sf, sf2, socket } = twoSubflows();
    socket.on('error', () => undefined);
    socket.destroy();
    for (const s of [sf, sf2]) {
      const rst = f.expectSegment(s, {});
      assert.ok((rst.tcp.flags & TCP_RST) !== 0, 'a RST');
      expectMptcp<MpFastcloseOption>(rst, { subtype: 'mp_fastclose', receiverKey: k.peerKey });
    }
    assert.equal(f.mib.MPFastcloseTx, 2);
  });
});

suite('MP_TCPRST and subflow resets', () => {
  it('a RST with MP_TCPRST on a join closes only that subflow; data goes on over the other', () => {
    const { f, k, sf, sf2, socket } = twoSubflows();
    f.send(sf2, { flags: 'RA', options: [tcprst(MP_TCPRST_REASON.administrativelyProhibited)] });
    f.expectNothing();
    assert.equal(f.mib.MPRstRx, 1);
    assert.equal(mptcpInfo(socket).subflows.length, 1);
    socket.write('on');
    expectMptcp(f.expectSegment(sf, { flags: 'PA', payload: 'on' }), {
      subtype: 'dss',
      mapping: { dsn: k.ourDsn32(0) },
    });
  });

  it('a RST on the last subflow ends the connection with ECONNRESET', async () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    const failed = once(socket, 'error');
    f.send(sf, { flags: 'RA', options: [tcprst()] });
    const [err] = (await failed) as [{ code: string }];
    assert.equal(err.code, 'ECONNRESET');
  });
});

suite('REMOVE_ADDR', () => {
  it('the peer removes the address of a join: that subflow is reset, the initial one lives', () => {
    const { f, k, sf, sf2, socket } = twoSubflows();
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'remove_addr', addressIds: [2] })] });
    const rst = f.expectSegment(sf2, {});
    assert.ok(
      (rst.tcp.flags & TCP_RST) !== 0,
      `a RST on the removed address's subflow: ${lettersOf(rst.tcp.flags)}`,
    );
    assert.equal(f.mib.RmAddr, 1);
    assert.equal(f.mib.RmSubflow, 1);
    f.send(sf, {
      flags: 'PA',
      payload: 'still',
      options: [dss({ dataAck: k.ourDsn(0), mapping: { dsn: k.peerDsn(0), ssn: 1, dataLevelLength: 5 } })],
    });
    assert.equal(readNow(socket).toString(), 'still');
    assert.equal(mptcpInfo(socket).subflows.length, 1);
  });

  it('an address ID no subflow uses closes nothing', () => {
    const { f, sf, socket } = twoSubflows();
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'remove_addr', addressIds: [9] })] });
    f.expectNothing();
    assert.equal(mptcpInfo(socket).subflows.length, 2);
    assert.equal(f.mib.RmSubflow, 0);
  });
});

suite('MP_PRIO', () => {
  it('the peer makes the initial subflow a backup: our data goes on the regular join', () => {
    const { f, sf, sf2, socket } = twoSubflows();
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'mp_prio', backup: true })] });
    assert.equal(f.mib.MPPrioRx, 1);
    assert.equal(mptcpInfo(socket).subflows.find((s) => s.role === 'initial')?.backup, true);
    f.take();
    socket.write(new Uint8Array(4000).fill(1));
    const out = f.take().filter((s) => s.payload.length > 0);
    assert.ok(out.length > 0);
    assert.deepEqual([...new Set(out.map((s) => s.dst))], [sf2.peer], 'data only on the regular subflow');
  });

  it('a backup subflow carries data when it is the only one that can', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    f.send(sf, { flags: 'A', options: [mp({ subtype: 'mp_prio', backup: true })] });
    f.take();
    socket.write('only');
    f.expectSegment(sf, { flags: 'PA', payload: 'only' });
  });
});

suite('DATA_FIN', () => {
  it('our DATA_FIN goes on an ACK (SSN 0, length 1); once both are acknowledged the subflow sends FIN', () => {
    const f = new MptcpFixture();
    f.listen();
    const k = new PeerMptcp();
    const { sf, socket } = f.serverEstablished(k);
    socket.end();
    const fin = f.expectSegment(sf, { flags: 'A', payloadLength: 0 });
    expectMptcp<DssOption>(fin, {
      subtype: 'dss',
      dataFin: true,
      mapping: { dsn: k.ourDsn(0), ssn: 0, dataLevelLength: 1 },
    });
    f.send(sf, {
      flags: 'A',
      options: [
        dss({
          dataAck: k.ourDsn(1),
          dataFin: true,
          mapping: { dsn: k.peerDsn(0), ssn: 0, dataLevelLength: 1 },
        }),
      ],
    });
    socket.resume();
    const out = f.takeOn(sf);
    assert.ok(
      out.some((s) => (s.tcp.flags & TCP_FIN) !== 0),
      `a subflow FIN: ${out.map((s) => lettersOf(s.tcp.flags)).join(' ')}`,
    );
  });
});
