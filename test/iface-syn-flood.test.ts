import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/stack/device/prng.js';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpFields, type TcpOption } from '../src/stack/wire/tcp.js';
import { RawHarness, type RawSegment, tcpPacket } from './support/sim.js';

const US = '10.0.0.1';
const BACKLOG = 16;
const SYN_OPTIONS: TcpOption[] = [
  { type: 'mss', mss: 1460 },
  { type: 'sack-permitted' },
  { type: 'timestamps', tsVal: 1000, tsEcr: 0 },
  { type: 'nop' },
  { type: 'window-scale', shift: 7 },
];

function syn(over: Partial<TcpFields>): TcpFields {
  return {
    srcPort: 5555,
    dstPort: 80,
    seqNumber: 1000,
    ackNumber: 0,
    flags: TCP_SYN,
    window: 65535,
    options: SYN_OPTIONS,
    ...over,
  };
}

/** 10,000 SYNs from spoofed addresses and ports that never complete the handshake. */
function flood(h: RawHarness, check: () => void): void {
  const rng = new SeededRandom(9);
  for (let burst = 0; burst < 100; burst++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 100; i++) {
      const src = `10.${1 + rng.int(200)}.${rng.int(256)}.${1 + rng.int(254)}`;
      frames.push(tcpPacket(src, US, syn({ srcPort: 1024 + rng.int(60000), seqNumber: rng.nextU32() })));
    }
    h.send(...frames);
    check();
  }
}

function tsOf(seg: RawSegment): { tsVal: number; tsEcr: number } | undefined {
  const ts = seg.tcp.options.find((o) => o.type === 'timestamps');
  return ts?.type === 'timestamps' ? ts : undefined;
}

test('SYN flood: the connection table stays within the backlog, the rest is answered with cookies', () => {
  const h = new RawHarness({ synBacklog: BACKLOG });
  h.stack.listen({ port: 80 });
  let maxTable = 0;
  flood(h, () => {
    maxTable = Math.max(maxTable, h.stack.connectionCount);
  });
  assert.ok(maxTable <= BACKLOG, `table reached ${maxTable}`);
  const c = h.stack.stats().counters;
  assert.equal(c.passiveOpens, BACKLOG);
  assert.equal(c.synBacklogFull, 10_000 - BACKLOG);
  assert.equal(c.synCookiesSent, 10_000 - BACKLOG);
  const replies = h.take();
  assert.equal(replies.length, 10_000);
  assert.ok(replies.every((r) => r.tcp.flags === (TCP_SYN | TCP_ACK)));
});

test('SYN flood: a legitimate client still connects through a cookie, with its options', () => {
  const h = new RawHarness({ synBacklog: BACKLOG });
  let accepted: TcpSocket | undefined;
  h.stack.listen({ port: 80 }, (s) => {
    accepted = s;
  });
  flood(h, () => undefined);
  h.take();
  h.send(tcpPacket('10.250.0.1', US, syn({ seqNumber: 7000 })));
  const [synAck] = h.take();
  assert.equal(synAck?.tcp.flags, TCP_SYN | TCP_ACK);
  assert.equal(synAck?.tcp.ackNumber, 7001);
  const ts = tsOf(synAck!);
  assert.equal(ts?.tsEcr, 1000);
  const ack: TcpFields = {
    srcPort: 5555,
    dstPort: 80,
    seqNumber: 7001,
    ackNumber: (synAck!.tcp.seqNumber + 1) >>> 0,
    flags: TCP_ACK,
    window: 1000,
    options: [{ type: 'nop' }, { type: 'nop' }, { type: 'timestamps', tsVal: 1001, tsEcr: ts!.tsVal }],
  };
  h.send(tcpPacket('10.250.0.1', US, ack, new TextEncoder().encode('hello')));
  assert.ok(accepted !== undefined);
  assert.equal(accepted.remoteAddress, '10.250.0.1');
  const info = accepted.info();
  assert.equal(info.state, 'ESTABLISHED');
  assert.equal(info.sack, true);
  assert.equal(info.timestamps, true);
  assert.equal(info.sndWindowScale, 7);
  assert.equal(info.peerMss, 1460);
  assert.equal(h.stack.stats().counters.synCookiesValid, 1);
  assert.equal(accepted.read()?.toString(), 'hello');
});

test('SYN cookie without timestamps: the connection has no window scaling and no SACK', () => {
  const h = new RawHarness({ synBacklog: 0 });
  let accepted: TcpSocket | undefined;
  h.stack.listen({ port: 80 }, (s) => {
    accepted = s;
  });
  h.send(
    tcpPacket(
      '10.250.0.2',
      US,
      syn({
        options: [
          { type: 'mss', mss: 1300 },
          { type: 'window-scale', shift: 5 },
        ],
      }),
    ),
  );
  const [synAck] = h.take();
  assert.deepEqual(
    synAck?.tcp.options.filter((o) => o.type !== 'nop').map((o) => o.type),
    ['mss'],
    'the cookie SYN-ACK offers what the cookie can carry, nothing more',
  );
  h.send(
    tcpPacket('10.250.0.2', US, {
      srcPort: 5555,
      dstPort: 80,
      seqNumber: 1001,
      ackNumber: (synAck!.tcp.seqNumber + 1) >>> 0,
      flags: TCP_ACK,
      window: 1000,
      options: [],
    }),
  );
  const info = accepted?.info();
  assert.equal(info?.sndWindowScale, undefined);
  assert.equal(info?.sack, false);
  assert.equal(info?.peerMss, 1300);
});

test('an ACK with a forged cookie is counted invalid and reset', () => {
  const h = new RawHarness({ synBacklog: 0 });
  h.stack.listen({ port: 80 });
  h.send(tcpPacket('10.250.0.3', US, syn({})));
  const [synAck] = h.take();
  h.send(
    tcpPacket('10.250.0.3', US, {
      srcPort: 5555,
      dstPort: 80,
      seqNumber: 1001,
      ackNumber: (synAck!.tcp.seqNumber + 2) >>> 0,
      flags: TCP_ACK,
      window: 1000,
      options: [],
    }),
  );
  const [rst] = h.take();
  assert.equal(rst?.tcp.flags, TCP_RST);
  assert.equal(rst?.tcp.seqNumber, (synAck!.tcp.seqNumber + 2) >>> 0);
  const c = h.stack.stats().counters;
  assert.equal(c.synCookiesInvalid, 1);
  assert.equal(c.rstSentListenAck, 1);
  assert.equal(h.stack.connectionCount, 0);
});

test('with cookies off a full backlog drops SYNs silently', () => {
  const h = new RawHarness({ synBacklog: 1, synCookies: false });
  h.stack.listen({ port: 80 });
  h.send(tcpPacket('10.250.0.4', US, syn({})), tcpPacket('10.250.0.5', US, syn({})));
  assert.equal(h.take().length, 1);
  assert.equal(h.stack.stats().counters.synDropped, 1);
});

test('the half-open connections of a flood expire with their SYN-ACK retries and free the backlog', () => {
  const h = new RawHarness({ synBacklog: BACKLOG });
  h.stack.listen({ port: 80 });
  flood(h, () => undefined);
  assert.equal(h.stack.connectionCount, BACKLOG);
  h.clock.runUntilIdle();
  assert.equal(h.stack.connectionCount, 0);
});

test('any-destination listener: a SYN to a foreign address and port is accepted as that destination', () => {
  const h = new RawHarness();
  let accepted: TcpSocket | undefined;
  h.stack.listen({ anyDestination: true }, (s) => {
    accepted = s;
  });
  h.send(tcpPacket('10.250.0.9', '93.184.216.34', syn({ dstPort: 443, seqNumber: 1 })));
  const [synAck] = h.take();
  assert.equal(synAck?.src, '93.184.216.34');
  assert.equal(synAck?.tcp.srcPort, 443);
  const ts = tsOf(synAck!);
  h.send(
    tcpPacket('10.250.0.9', '93.184.216.34', {
      srcPort: 5555,
      dstPort: 443,
      seqNumber: 2,
      ackNumber: (synAck!.tcp.seqNumber + 1) >>> 0,
      flags: TCP_ACK,
      window: 1000,
      options: [{ type: 'nop' }, { type: 'nop' }, { type: 'timestamps', tsVal: 1001, tsEcr: ts!.tsVal }],
    }),
  );
  assert.equal(accepted?.localAddress, '93.184.216.34');
  assert.equal(accepted?.localPort, 443);
  assert.equal(accepted?.remoteAddress, '10.250.0.9');
});
