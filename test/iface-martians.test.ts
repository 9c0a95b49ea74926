/**
 * Martian input to the iface: segments from loopback, from or to one of our subnets' directed
 * broadcast, or from our own address (LAND) are dropped and counted, never answered; an
 * ordinary SYN next to them still gets its SYN/ACK. Packet-driven over the in-memory pair.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import { parseInterfaceAddress } from '../src/stack/iface/address.js';
import type { StackCounterName } from '../src/stack/iface/stack.js';
import { TCP_ACK, TCP_SYN, type TcpFields } from '../src/stack/wire/tcp.js';
import { RawHarness, tcpPacket } from './support/sim.js';

const US = '10.0.0.1';
const US6 = 'fd00::1';
const ADDRESSES = [`${US}/24`, US6];

function segment(over: Partial<TcpFields> = {}): TcpFields {
  return {
    srcPort: 5555,
    dstPort: 80,
    seqNumber: 1000,
    ackNumber: 0,
    flags: TCP_SYN,
    window: 65535,
    options: [{ type: 'mss', mss: 1460 }],
    ...over,
  };
}

function listening(addresses = ADDRESSES): RawHarness {
  const h = new RawHarness({ addresses });
  h.stack.listen({ port: 80 });
  return h;
}

/** Sends one packet; asserts it drew no reply, bumped `counter` by one and made no connection. */
function assertDropped(h: RawHarness, packet: Uint8Array, counter: StackCounterName): void {
  const before = h.stack.stats().counters;
  h.send(packet);
  assert.deepEqual(h.take(), [], `${counter}: the stack answered`);
  const after = h.stack.stats().counters;
  assert.equal(after[counter], before[counter] + 1, counter);
  assert.equal(after.passiveOpens, before.passiveOpens);
  assert.equal(after.rstSentNoConnection, before.rstSentNoConnection);
  assert.equal(h.stack.connectionCount, 0);
}

function assertSynAck(h: RawHarness, src: string, dst: string): void {
  h.send(tcpPacket(src, dst, segment()));
  const replies = h.take();
  assert.equal(replies.length, 1, `${src} -> ${dst}`);
  assert.equal(replies[0]!.tcp.flags, TCP_SYN | TCP_ACK);
  assert.equal(replies[0]!.tcp.ackNumber, 1001);
}

test('SYNs from loopback (127.0.0.0/8, ::1) are dropped as dropLoopbackSource', () => {
  const h = listening();
  assertDropped(h, tcpPacket('127.0.0.1', US, segment()), 'dropLoopbackSource');
  assertDropped(h, tcpPacket('127.200.3.4', US, segment()), 'dropLoopbackSource');
  assertDropped(h, tcpPacket('::1', US6, segment()), 'dropLoopbackSource');
  assertSynAck(h, '10.0.0.7', US);
  assertSynAck(h, 'fd00::7', US6);
});

test('SYNs from or to the subnet broadcast are dropped as dropBroadcastAddress', () => {
  const h = listening();
  assertDropped(h, tcpPacket('10.0.0.255', US, segment()), 'dropBroadcastAddress');
  assertSynAck(h, '10.0.0.254', US);
  // An intercepting listener takes any destination, but not our subnet's broadcast.
  const t = new RawHarness({ addresses: ADDRESSES });
  t.stack.listen({ anyDestination: true });
  assertDropped(t, tcpPacket('10.0.0.9', '10.0.0.255', segment()), 'dropBroadcastAddress');
  assertSynAck(t, '10.0.0.9', '10.0.1.255');
});

test('LAND: SYNs from our own address are dropped as dropOwnSource', () => {
  const h = listening();
  assertDropped(h, tcpPacket(US, US, segment({ srcPort: 80 })), 'dropOwnSource');
  assertDropped(h, tcpPacket(US, US, segment()), 'dropOwnSource');
  assertDropped(h, tcpPacket(US6, US6, segment()), 'dropOwnSource');
  assertSynAck(h, '10.0.0.2', US);
});

test('a martian that is not a SYN draws no RST either', () => {
  const h = new RawHarness({ addresses: ADDRESSES });
  const ack = segment({ dstPort: 81, flags: TCP_ACK, ackNumber: 77 });
  assertDropped(h, tcpPacket('127.0.0.1', US, ack), 'dropLoopbackSource');
  assertDropped(h, tcpPacket('10.0.0.255', US, ack), 'dropBroadcastAddress');
  assertDropped(h, tcpPacket(US, US, ack), 'dropOwnSource');
  // The same ACK from an ordinary peer is a stray and gets its RST.
  h.send(tcpPacket('10.0.0.3', US, ack));
  assert.equal(h.take().length, 1);
  assert.equal(h.stack.stats().counters.rstSentNoConnection, 1);
});

test('/31, /32 and IPv6 prefixes have no broadcast; /30 does', () => {
  const p31 = listening(['10.0.0.2/31', 'fd00::1/64']);
  assertSynAck(p31, '10.0.0.3', '10.0.0.2');
  assertSynAck(p31, 'fd00::ffff:ffff:ffff:ffff', 'fd00::1');
  const p32 = listening(['10.0.0.2/32']);
  assertSynAck(p32, '10.0.0.255', '10.0.0.2');
  const p30 = listening(['10.0.0.1/30']);
  assertDropped(p30, tcpPacket('10.0.0.3', '10.0.0.1', segment()), 'dropBroadcastAddress');
  assertSynAck(p30, '10.0.0.2', '10.0.0.1');
  assert.equal(parseInterfaceAddress('10.7.0.2/24').broadcast, (10 << 24) + (7 << 16) + 255);
  assert.equal(parseInterfaceAddress('10.7.0.2').prefix, undefined);
  assert.equal(parseInterfaceAddress('10.7.0.2/0').broadcast, 0xffffffff);
});

test('bad prefixes are rejected with messages that say what is wrong', () => {
  const cases: [string, RegExp][] = [
    [
      '10.0.0.1/33',
      /'10\.0\.0\.1\/33': the prefix after '\/' must be a whole number 0-32 for IPv4, got '33'/,
    ],
    ['10.0.0.1/', /must be a whole number 0-32 for IPv4, got nothing/],
    ['10.0.0.1/24/8', /got '24\/8'/],
    ['10.0.0.1/-1', /got '-1'/],
    ['10.0.0.1/ 24', /got ' 24'/],
    ['fd00::1/129', /0-128 for IPv6, got '129'/],
    ['10.0.0.256/24', /not an IP address or IP\/PREFIX: '10\.0\.0\.256\/24'/],
    ['10.0.0.255/24', /'10\.0\.0\.255\/24' is the broadcast address of its subnet/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => new RawHarness({ addresses: [text] }),
      (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message),
      text,
    );
  }
});
