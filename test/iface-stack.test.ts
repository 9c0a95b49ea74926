import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/stack/device/prng.js';
import {
  fillTcpChecksumV4,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpFields,
} from '../src/stack/wire/tcp.js';
import { RawHarness, tcpPacket } from './support/sim.js';

const US = '10.0.0.1';
const PEER = '10.9.9.9';

function fields(over: Partial<TcpFields>): TcpFields {
  return {
    srcPort: 40000,
    dstPort: 80,
    seqNumber: 1000,
    ackNumber: 0,
    flags: TCP_SYN,
    window: 65535,
    options: [],
    ...over,
  };
}

test('a SYN to a closed port gets <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>', () => {
  const h = new RawHarness();
  h.send(tcpPacket(PEER, US, fields({ seqNumber: 5000 })));
  const [rst, ...rest] = h.take();
  assert.equal(rest.length, 0);
  assert.equal(rst?.src, US);
  assert.equal(rst?.dst, PEER);
  assert.equal(rst?.tcp.flags, TCP_RST | TCP_ACK);
  assert.equal(rst?.tcp.seqNumber, 0);
  assert.equal(rst?.tcp.ackNumber, 5001);
  assert.equal(rst?.tcp.srcPort, 80);
  assert.equal(rst?.tcp.dstPort, 40000);
  assert.equal(h.stack.stats().counters.rstSentNoConnection, 1);
});

test('an ACK with data to nowhere gets <SEQ=SEG.ACK><CTL=RST>', () => {
  const h = new RawHarness();
  h.send(tcpPacket(PEER, US, fields({ flags: TCP_ACK, seqNumber: 10, ackNumber: 777 }), new Uint8Array(100)));
  const [rst] = h.take();
  assert.equal(rst?.tcp.flags, TCP_RST);
  assert.equal(rst?.tcp.seqNumber, 777);
});

test('a FIN without ACK to nowhere: RST,ACK acknowledges payload plus FIN', () => {
  const h = new RawHarness();
  h.send(tcpPacket(PEER, US, fields({ flags: TCP_FIN, seqNumber: 10 }), new Uint8Array(5)));
  assert.equal(h.take()[0]?.tcp.ackNumber, 16);
});

test('IPv6: a SYN to a closed port is reset from the address it was sent to', () => {
  const h = new RawHarness();
  h.send(tcpPacket('fd00::99', 'fd00::1', fields({})));
  const [rst] = h.take();
  assert.equal(rst?.family, 6);
  assert.equal(rst?.src, 'fd00::1');
  assert.equal(rst?.dst, 'fd00::99');
  assert.equal(rst?.tcp.flags, TCP_RST | TCP_ACK);
});

test('a RST flood to nowhere is counted and never answered', () => {
  const h = new RawHarness();
  const rng = new SeededRandom(1);
  for (let burst = 0; burst < 100; burst++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 100; i++) {
      frames.push(
        tcpPacket(
          PEER,
          US,
          fields({
            flags: rng.chance(0.5) ? TCP_RST : TCP_RST | TCP_ACK,
            seqNumber: rng.nextU32(),
            ackNumber: rng.nextU32(),
            srcPort: 1 + rng.int(65535),
          }),
        ),
      );
    }
    h.send(...frames);
  }
  assert.equal(h.take().length, 0);
  assert.equal(h.stack.stats().counters.dropRstNoConnection, 10_000);
});

test('a bad TCP checksum is counted and dropped, not answered', () => {
  const h = new RawHarness();
  const pkt = tcpPacket(PEER, US, fields({}));
  pkt[20 + 16]! ^= 0x01; // one bit of the TCP checksum field
  h.send(pkt);
  assert.equal(h.take().length, 0);
  assert.equal(h.stack.stats().counters.dropBadTcpChecksum, 1);
});

test('a bad IPv4 header checksum is counted by reason', () => {
  const h = new RawHarness();
  const pkt = tcpPacket(PEER, US, fields({}));
  pkt[10]! ^= 0xff;
  h.send(pkt);
  const stats = h.stack.stats();
  assert.equal(stats.counters.dropBadIp, 1);
  assert.equal(stats.parseErrors['ipv4.bad-checksum'], 1);
  assert.equal(h.take().length, 0);
});

test('truncated packets are counted by reason and dropped', () => {
  const h = new RawHarness();
  const pkt = tcpPacket(PEER, US, fields({}));
  h.send(pkt.subarray(0, 10), pkt.subarray(0, 30));
  const stats = h.stack.stats();
  assert.equal(stats.counters.dropBadIp, 2);
  assert.equal(stats.parseErrors['ipv4.truncated'], 2);
  assert.equal(h.take().length, 0);
});

test('a TCP header shorter than 20 bytes inside a valid IP packet is dropped as truncated', () => {
  const h = new RawHarness();
  const full = tcpPacket(PEER, US, fields({}));
  // Rewrite the IP total length to cut the TCP header at 12 bytes, keeping the IP checksum valid.
  const pkt = full.slice(0, 32);
  pkt[2] = 0;
  pkt[3] = 32;
  pkt[10] = 0;
  pkt[11] = 0;
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (pkt[i]! << 8) | pkt[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const csum = ~sum & 0xffff;
  pkt[10] = csum >>> 8;
  pkt[11] = csum & 0xff;
  h.send(pkt);
  assert.equal(h.stack.stats().parseErrors['tcp.truncated'], 1);
  assert.equal(h.take().length, 0);
});

test('an impossible option length is counted as a bad TCP header and never answered', () => {
  const h = new RawHarness();
  // MSS option with length 3: the codec rejects it; rebuild the checksum over the edited bytes.
  const pkt = tcpPacket(PEER, US, fields({ options: [{ type: 'mss', mss: 1460 }] }));
  pkt[20 + 21] = 3;
  fillTcpChecksumV4(pkt, 20, pkt.length, 0x0a090909, 0x0a000001);
  h.send(pkt);
  const stats = h.stack.stats();
  assert.equal(stats.counters.dropBadTcp, 1);
  assert.equal(stats.parseErrors['tcp.bad-mss-length'], 1);
  assert.equal(h.take().length, 0);
});

test('packets for other addresses, other protocols and fragments are counted and dropped', () => {
  const h = new RawHarness();
  const other = tcpPacket(PEER, '10.0.0.77', fields({}));
  const udp = tcpPacket(PEER, US, fields({}));
  udp[9] = 17;
  udp[10] = 0;
  udp[11] = 0;
  const frag = tcpPacket(PEER, US, fields({}));
  frag[6] = 0x20; // MF
  frag[10] = 0;
  frag[11] = 0;
  for (const p of [udp, frag]) {
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    p[10] = c >>> 8;
    p[11] = c & 0xff;
  }
  h.send(other, udp, frag);
  const c = h.stack.stats().counters;
  assert.equal(c.dropNotForUs, 1);
  assert.equal(c.dropNotTcp, 1);
  assert.equal(c.dropFragment, 1);
  assert.equal(h.take().length, 0);
});

test('random bytes never throw: every frame is counted', () => {
  const h = new RawHarness();
  const rng = new SeededRandom(42);
  const base = tcpPacket(
    PEER,
    US,
    fields({ options: [{ type: 'mss', mss: 1460 }, { type: 'sack-permitted' }] }),
  );
  for (let burst = 0; burst < 50; burst++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 100; i++) {
      // Half pure noise, half a valid packet with a few bytes flipped.
      if (rng.chance(0.5)) {
        frames.push(Uint8Array.from({ length: 1 + rng.int(120) }, () => rng.int(256)));
      } else {
        const p = base.slice();
        for (let k = 0; k < 3; k++) p[rng.int(p.length)] = rng.int(256);
        frames.push(p);
      }
    }
    h.send(...frames);
  }
  assert.equal(h.stack.stats().counters.framesIn, 5000);
});

test('keepalive: a silent peer ends the connection with ETIMEDOUT on the socket', async () => {
  const h = new RawHarness({ tcp: { keepalive: { idleMs: 1000, intervalMs: 100, count: 3 } } });
  const socket = h.stack.connect({ host: '10.250.0.7', port: 80 });
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (e: NodeJS.ErrnoException) => {
    error = e;
  });
  h.clock.advance(0);
  const [synSeg] = h.take();
  assert.equal(synSeg?.tcp.flags, TCP_SYN);
  h.send(
    tcpPacket('10.250.0.7', US, {
      srcPort: 80,
      dstPort: synSeg!.tcp.srcPort,
      seqNumber: 5000,
      ackNumber: (synSeg!.tcp.seqNumber + 1) >>> 0,
      flags: TCP_SYN | TCP_ACK,
      window: 65535,
      options: [{ type: 'mss', mss: 1460 }],
    }),
  );
  assert.equal(socket.pending, false);
  h.clock.runUntilIdle();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(error?.code, 'ETIMEDOUT');
  const probes = h.take().filter((s) => s.tcp.flags === TCP_ACK && s.payload.length <= 1);
  assert.ok(probes.length >= 3, `${probes.length} keepalive probes`);
  assert.equal(h.stack.stats().tcp.keepaliveTimeouts, 1);
});
