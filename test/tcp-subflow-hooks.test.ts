/**
 * The subflow seam of the TCP engine (SubflowHooks, SendQueue, the congestion factory): what
 * MPTCP needs from TCP, driven packet by packet with a recording hook.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCongestionControl } from '../src/stack/tcp/congestion.js';
import {
  type HookVerdict,
  type ReceivedKind,
  type SendQueue,
  type SubflowHooks,
  type TcpConfig,
  TcpConnection,
} from '../src/stack/tcp/connection.js';
import { SendBuffer } from '../src/stack/tcp/send-buffer.js';
import type { MptcpOption } from '../src/stack/wire/mptcp-options.js';
import { type TcpFields, type TcpOption, tcpOptionsLength } from '../src/stack/wire/tcp.js';
import { header, LOCAL_ISN, pattern, REMOTE_ISN, sack, TcpFixture, ts } from './support/tcp-fixture.js';

const L = LOCAL_ISN + 1;
const R = REMOTE_ISN + 1;
const MSS = { type: 'mss', mss: 1460 } as const;
const MPC_SYN: MptcpOption = {
  subtype: 'mp_capable',
  version: 1,
  checksumRequired: false,
  extensibility: false,
  noJoinToSource: false,
  extensionFlags: 0,
  hmacSha256: true,
};
const MPC_SYNACK: MptcpOption = { ...MPC_SYN, noJoinToSource: true, senderKey: 0x1122334455667788n };
const DATA_ACK: MptcpOption = { subtype: 'dss', dataFin: false, dataAck64: false, dsn64: false, dataAck: 7n };

interface Received {
  kind: ReceivedKind;
  flags: number;
  seq: number;
  payloadLength: number;
  mptcp: MptcpOption[];
}

/** Records what it sees; answers with `verdict`; adds `add(header, len)`'s options on send. */
class RecordingHooks implements SubflowHooks {
  received: Received[] = [];
  sent: { flags: number; seq: number; payloadLength: number; spaceLeft: number }[] = [];
  verdict: (kind: ReceivedKind) => HookVerdict = () => 'accept';
  add: (h: TcpFields, payloadLength: number) => MptcpOption[] = () => [];
  space: number | undefined;
  constructor(readonly dataOptionSpace = 0) {}

  onSend(h: TcpFields, payloadLength: number, spaceLeft: number): void {
    this.sent.push({ flags: h.flags, seq: h.seqNumber, payloadLength, spaceLeft });
    for (const option of this.add(h, payloadLength)) h.options.push({ type: 'mptcp', option });
    assert.ok(tcpOptionsLength(h.options) <= 40, 'the hook stayed within its space');
  }

  onReceive(h: import('../src/stack/wire/tcp.js').TcpHeader, payloadLength: number, kind: ReceivedKind) {
    const mptcp = h.options.flatMap((o) => (o.type === 'mptcp' ? [o.option] : []));
    this.received.push({ kind, flags: h.flags, seq: h.seqNumber, payloadLength, mptcp });
    return this.verdict(kind);
  }

  receiveSpace(): number {
    return this.space ?? Number.POSITIVE_INFINITY;
  }
}

function mp(option: MptcpOption): TcpOption {
  return { type: 'mptcp', option };
}

function accepting(hooks: SubflowHooks, config: Partial<TcpConfig> = {}, synOptions: TcpOption[] = []) {
  const syn = header({ flags: 'S', seq: REMOTE_ISN, options: synOptions });
  return new TcpFixture(TcpConnection.accept(syn, { ...TcpFixture.params(config), hooks }));
}

describe('TCP subflow hooks', () => {
  it('a passive open shows the hook the SYN, the third ACK and later segments; the SYN-ACK carries its option', () => {
    const hooks = new RecordingHooks();
    hooks.add = (h) => ((h.flags & 0x12) === 0x12 ? [MPC_SYNACK] : []);
    const f = accepting(hooks, {}, [MSS, mp(MPC_SYN)]);
    assert.deepEqual(
      hooks.received.map((r) => [r.kind, r.mptcp]),
      [['syn', [MPC_SYN]]],
    );
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: R, options: [MSS, mp(MPC_SYNACK)] });
    f.send({ flags: 'A', seq: R, ack: L });
    f.send({ flags: 'PA', seq: R, ack: L, payload: 'hi' });
    assert.deepEqual(
      hooks.received.map((r) => r.kind),
      ['syn', 'third-ack', 'segment'],
    );
    assert.equal(f.conn.state, 'ESTABLISHED');
  });

  it('an active open: the SYN passes through onSend, the SYN-ACK reaches onReceive before ESTABLISHED', () => {
    const hooks = new RecordingHooks();
    hooks.add = (h) => ((h.flags & 0x12) === 0x02 ? [MPC_SYN] : []);
    let stateSeen = '';
    hooks.verdict = (kind) => {
      stateSeen = `${kind}:${conn.state}`;
      return 'accept';
    };
    const conn = TcpConnection.connect({ ...TcpFixture.params(), hooks });
    const f = new TcpFixture(conn);
    f.expect({ flags: 'S', seq: LOCAL_ISN, options: [MSS, mp(MPC_SYN)] });
    f.send({ flags: 'SA', seq: REMOTE_ISN, ack: L, options: [MSS, mp(MPC_SYNACK)] });
    assert.equal(stateSeen, 'syn-ack:SYN-SENT');
    assert.equal(conn.state, 'ESTABLISHED');
  });

  it('a reset verdict on the third ACK sends a RST carrying the hook option and never establishes', () => {
    const hooks = new RecordingHooks();
    const rst: MptcpOption = {
      subtype: 'mp_tcprst',
      flagU: false,
      flagV: false,
      flagW: false,
      transient: false,
      reason: 1,
    };
    hooks.verdict = (kind) => (kind === 'third-ack' ? 'reset' : 'accept');
    hooks.add = (h) => ((h.flags & 0x04) !== 0 ? [rst] : []);
    const f = accepting(hooks);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L });
    assert.equal(f.conn.state, 'CLOSED');
    assert.equal(f.conn.counters.resetByHook, 1);
    f.expect({ flags: 'RA', seq: L, ack: R, window: 0, options: [mp(rst)] });
  });

  it('a drop verdict discards the segment: no data, no ACK, counted', () => {
    const hooks = new RecordingHooks();
    const f = accepting(hooks);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L });
    hooks.verdict = () => 'drop';
    f.send({ flags: 'PA', seq: R, ack: L, payload: 'nope' });
    assert.equal(f.conn.readableLength, 0);
    assert.equal(f.conn.counters.dropVetoed, 1);
    f.expectNothing();
  });

  it('segments that fail TCP checks never reach the hook', () => {
    const hooks = new RecordingHooks();
    const f = accepting(hooks, { timestamps: true }, [MSS, { type: 'timestamps', tsVal: 100, tsEcr: 0 }]);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L, options: ts(100, 0) });
    const before = hooks.received.length;
    f.send({ flags: 'PA', seq: R + 1_000_000, ack: L, options: ts(101, 0), payload: 'x' }); // out of window
    f.send({ flags: 'PA', seq: R, ack: L, options: ts(50, 0), payload: 'x' }); // PAWS
    f.send({ flags: 'A', seq: R, ack: L + 99_999, options: ts(102, 0) }); // ACK of unsent data
    f.send({ flags: 'R', seq: R + 17 }); // RST in the window but not exact: challenge ACK
    assert.equal(hooks.received.length, before);
    assert.equal(f.conn.state, 'ESTABLISHED');
  });

  it('an accepted RST reaches the hook with kind rst', () => {
    const hooks = new RecordingHooks();
    const f = accepting(hooks);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L });
    f.send({ flags: 'R', seq: R });
    assert.equal(hooks.received.at(-1)?.kind, 'rst');
    assert.equal(f.conn.state, 'CLOSED');
  });

  it('options go timestamps, then MPTCP, then SACK blocks in what is left', () => {
    const hooks = new RecordingHooks();
    hooks.add = (_h, len) => (len === 0 ? [DATA_ACK] : []);
    const f = accepting(hooks, { timestamps: true, sack: true }, [
      MSS,
      { type: 'sack-permitted' },
      { type: 'timestamps', tsVal: 100, tsEcr: 0 },
    ]);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L, options: ts(100, 0) });
    // Three holes: three SACK blocks would fit beside timestamps alone; with the DSS, two.
    f.send({ flags: 'PA', seq: R + 10, ack: L, options: ts(101, 0), payload: 'a' });
    f.send({ flags: 'PA', seq: R + 20, ack: L, options: ts(102, 0), payload: 'b' });
    f.send({ flags: 'PA', seq: R + 30, ack: L, options: ts(103, 0), payload: 'c' });
    const out = f.collect();
    const last = out.at(-1)!;
    assert.deepEqual(last.options, [
      ...ts(0, 100),
      mp(DATA_ACK),
      ...sack([R + 30, R + 31], [R + 20, R + 21]),
    ]);
    assert.equal(hooks.sent.at(-1)?.spaceLeft, 28);
  });

  it('the send MSS leaves the hook its data option space; no SACK then fits on data segments', () => {
    const hooks = new RecordingHooks(24);
    const f = accepting(hooks, { timestamps: true, sack: true }, [
      MSS,
      { type: 'sack-permitted' },
      { type: 'timestamps', tsVal: 100, tsEcr: 0 },
    ]);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L, options: ts(100, 0) });
    assert.equal(f.conn.info().sendMss, 1460 - 12 - 24);
    f.send({ flags: 'PA', seq: R + 10, ack: L, options: ts(101, 0), payload: 'a' }); // a hole
    f.collect();
    f.conn.write(pattern(2000));
    const data = f.collect().filter((s) => s.payload !== '');
    assert.ok(data.length > 0);
    for (const s of data) assert.ok(!s.options.some((o) => o.type === 'sack'), 'no SACK on a data segment');
  });

  it('a segment never spans two DSS mappings: the send queue sets the limits', () => {
    // A queue whose "mappings" are 1000 bytes each.
    const ring = new SendBuffer(1 << 16);
    const queue: SendQueue = {
      get length() {
        return ring.length;
      },
      get free() {
        return ring.free;
      },
      write: (d) => ring.write(d),
      ack: (n) => ring.ack(n),
      view: (o, n) => ring.view(o, n),
      segmentLimit: (offset) => 1000 - (offset % 1000),
    };
    const f = new TcpFixture(
      TcpConnection.accept(header({ flags: 'S', seq: REMOTE_ISN, options: [MSS] }), {
        ...TcpFixture.params(),
        sendQueue: queue,
      }),
    );
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L });
    f.conn.write(pattern(2500));
    const sizes = f.collect().map((s) => Number.parseInt(s.payload, 10));
    assert.deepEqual(sizes, [1000, 1000, 500]);
  });

  it('the advertised window is the smaller of our buffer and the hook receive space', () => {
    const hooks = new RecordingHooks();
    hooks.space = 5000;
    const f = accepting(hooks);
    f.expect({ flags: 'SA', seq: LOCAL_ISN, ack: R, window: 5000, options: [MSS] });
    f.send({ flags: 'A', seq: R, ack: L });
    f.send({ flags: 'PA', seq: R, ack: L, payload: 'abc' });
    hooks.space = 100_000;
    f.expect({ flags: 'A', seq: L, ack: R + 3, window: 65532 });
  });

  it('congestion control comes from the factory, built with the send MSS', () => {
    const seen: number[] = [];
    const syn = header({ flags: 'S', seq: REMOTE_ISN, options: [MSS] });
    const conn = TcpConnection.accept(syn, {
      ...TcpFixture.params(),
      congestion: (mss) => {
        seen.push(mss);
        return createCongestionControl('newreno', mss, { initialCwndSegments: 3 });
      },
    });
    const f = new TcpFixture(conn);
    f.collect();
    f.send({ flags: 'A', seq: R, ack: L });
    assert.equal(conn.info().congestion, 'newreno');
    assert.equal(conn.info().cwnd, 3 * 1460);
    assert.ok(seen.includes(1460));
  });

  it('a SYN-cookie connection shows the hook its first segment as the third ACK', () => {
    const hooks = new RecordingHooks();
    const ack = header({ flags: 'PA', seq: R, ack: L, payload: 'hey' });
    TcpConnection.fromCookie(
      ack,
      new TextEncoder().encode('hey'),
      { mss: 1400, peerWindowScale: undefined, sackPermitted: false, timestamps: false },
      { ...TcpFixture.params(), hooks },
    );
    assert.deepEqual(
      hooks.received.map((r) => [r.kind, r.payloadLength]),
      [['third-ack', 3]],
    );
  });
});
