import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LOCAL_ISN, pattern, REMOTE_ISN, TcpFixture, ts } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;

describe('TCP options in use', () => {
  it('PAWS: a segment with an old timestamp is dropped and ACKed (RFC 7323 §5.3)', () => {
    const f = TcpFixture.established({ timestamps: true }, [
      MSS,
      { type: 'timestamps', tsVal: 100, tsEcr: 0 },
    ]);
    f.advance(5);
    f.send({ flags: 'PA', seq: R, ack: L, options: ts(200, 0), payload: 'new' });
    f.expect({ flags: 'A', seq: L, ack: R + 3, window: 65532, options: ts(5, 200) });
    f.send({ flags: 'PA', seq: R + 3, ack: L, options: ts(150, 0), payload: 'old' });
    f.expect({ flags: 'A', seq: L, ack: R + 3, window: 65532, options: ts(5, 200) });
    assert.equal(f.conn.counters.dropPawsReject, 1);
    assert.equal(f.conn.readableLength, 3);
  });

  it('PAWS does not apply to RST', () => {
    const f = TcpFixture.established({ timestamps: true }, [
      MSS,
      { type: 'timestamps', tsVal: 100, tsEcr: 0 },
    ]);
    f.send({ flags: 'R', seq: R, options: ts(1, 0) });
    assert.equal(f.conn.state, 'CLOSED');
  });

  it('window scale: the peer window is shifted, ours is advertised shifted', () => {
    const f = TcpFixture.established(
      { windowScale: true, recvBufferSize: 262144, maxRecvBufferSize: 1 << 20 },
      [MSS, { type: 'nop' }, { type: 'window-scale', shift: 3 }],
      100,
    );
    // The handshake ACK's window 100 is scaled: 800 bytes.
    assert.equal(f.conn.info().sndWnd, 800);
    const data = pattern(2000);
    f.conn.write(data);
    // Our buffer 262144 with shift 5 (1 MiB max) is advertised as 8192.
    f.expect({ flags: 'A', seq: L, ack: R, window: 8192, payload: data.subarray(0, 800) });
    f.expectNothing();
  });

  it('info().rcvWnd is the window last advertised, in bytes after scaling', () => {
    const f = TcpFixture.established({ windowScale: true, recvBufferSize: 65536, delayedAckMs: 40 }, [
      MSS,
      { type: 'nop' },
      { type: 'window-scale', shift: 7 },
    ]);
    // A 64 KiB buffer growing to 4 MiB: shift 7. The SYN-ACK's window is never scaled.
    assert.equal(f.conn.info().rcvWindowScale, 7);
    assert.equal(f.conn.info().rcvWnd, 65535);
    // Data whose ACK is delayed: nothing new was advertised yet.
    f.send({ flags: 'PA', seq: R, ack: L, payload: pattern(1000) });
    assert.equal(f.conn.info().rcvWnd, 65535);
    f.advance(40);
    f.expect({ flags: 'A', seq: L, ack: R + 1000, window: 504 });
    assert.equal(f.conn.info().rcvWnd, 504 * 128);
  });

  it('MSS clamp: segments never exceed the clamp even if the peer allows more', () => {
    const f = TcpFixture.established({ mssClamp: 1000 }, [MSS]);
    const data = pattern(2500);
    f.conn.write(data);
    f.expect(
      { flags: 'A', seq: L, ack: R, payload: data.subarray(0, 1000) },
      { flags: 'A', seq: L + 1000, ack: R, payload: data.subarray(1000, 2000) },
      { flags: 'PA', seq: L + 2000, ack: R, payload: data.subarray(2000) },
    );
  });
});
