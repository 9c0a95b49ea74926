/**
 * MPTCP between two of our stacks in the deterministic simulator: the handshake, data both ways
 * through DSS mappings, the C flag with ADD_ADDR of a unique address and the joins to it,
 * fallback against a plain-TCP server, and loss. Every transfer is checked by SHA-256.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseAddress } from '../src/stack/iface/address.js';
import { parseIpv4 } from '../src/stack/wire/ipv4.js';
import { parseTcp } from '../src/stack/wire/tcp.js';
import { SIM_SERVER, Sim, seededBytes, simTransfer } from './support/sim.js';

const UNIQUE = '10.0.0.4';
const CLIENT2 = '10.0.0.3';

/** Records client → server SYNs that carry MP_JOIN: [destination, token]. */
function watchJoins(sim: Sim): string[] {
  const joins: string[] = [];
  const dev = sim.clientFault as unknown as { write: (frames: { data: Uint8Array }[]) => boolean };
  const write = dev.write.bind(dev);
  dev.write = (frames) => {
    for (const f of frames) {
      const ip = parseIpv4(f.data, 0, false);
      if (!ip.ok) continue;
      const tcp = parseTcp(f.data, ip.value.headerLength, ip.value.totalLength);
      if (!tcp.ok || (tcp.value.flags & 0x12) !== 0x02) continue;
      if (tcp.value.options.some((o) => o.type === 'mptcp' && o.option.subtype === 'mp_join')) {
        const d = ip.value.dst;
        joins.push(`${d >>> 24}.${(d >>> 16) & 255}.${(d >>> 8) & 255}.${d & 255}`);
      }
    }
    return write(frames);
  };
  return joins;
}

describe('MPTCP in the simulator', () => {
  it('one path: MP_CAPABLE handshake, 4 MB with SHA-256 equal, no fallback', async () => {
    const sim = new Sim({
      seed: 1,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
    });
    const data = seededBytes(1, 4 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, {
      listen: { mptcp: true },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const s = sim.server.stats().mptcp!;
    const c = sim.client.stats().mptcp!;
    assert.equal(c.MPCapableSYNTX, 1);
    assert.equal(s.MPCapableSYNRX, 1);
    assert.equal(s.MPCapableACKRX, 1);
    assert.equal(c.MPCapableSYNACKRX, 1);
    assert.equal(s.MPCapableFallbackACK + c.MPCapableFallbackSYNACK + s.DssFallback + c.DssFallback, 0);
  });

  it('C flag + ADD_ADDR: the client joins the unique address from both its addresses, never the VIP', async () => {
    const sim = new Sim({
      seed: 2,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
    });
    const joins = watchJoins(sim);
    const data = seededBytes(2, 8 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress(UNIQUE) }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const s = sim.server.stats().mptcp!;
    const c = sim.client.stats().mptcp!;
    assert.equal(s.AddAddrTx >= 1, true);
    assert.equal(c.AddAddr, 1);
    assert.equal(s.EchoAdd, 1);
    assert.deepEqual(joins.sort(), [UNIQUE, UNIQUE]);
    assert.ok(!joins.includes(SIM_SERVER));
    assert.equal(s.MPJoinAckRx, 2);
    assert.equal(c.MPJoinSynAckRx, 2);
    assert.equal(s.MPJoinNoTokenFound, 0);
  });

  it('a plain-TCP server: the client falls back and the transfer completes', async () => {
    const sim = new Sim({
      seed: 3,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
    });
    const data = seededBytes(3, 2 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, { connect: { mptcp: true } });
    assert.equal(r.receivedSha256, r.sentSha256);
    assert.equal(sim.client.stats().mptcp!.MPCapableFallbackSYNACK, 1);
  });

  it('a plain-TCP client at an MPTCP server is served as TCP', async () => {
    const sim = new Sim({
      seed: 4,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
    });
    const data = seededBytes(4, 2 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, { listen: { mptcp: true } });
    assert.equal(r.receivedSha256, r.sentSha256);
  });

  it('1% loss both ways over two paths: SHA-256 equal', async () => {
    const sim = new Sim({
      seed: 5,
      forward: { rateBytesPerSec: 6.25e6, delayMs: 10, drop: 0.01 },
      reverse: { delayMs: 10, drop: 0.01 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
    });
    const data = seededBytes(5, 4 << 20);
    const r = await simTransfer(sim, data, 120_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress(UNIQUE) }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
  });

  it('both directions at once: an echo of 4 MB over three subflows, DATA_FIN both ways', async () => {
    const sim = new Sim({
      seed: 6,
      forward: { rateBytesPerSec: 6.25e6, delayMs: 5 },
      reverse: { rateBytesPerSec: 6.25e6, delayMs: 5 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
    });
    const data = seededBytes(6, 4 << 20);
    const server = sim.server.listen(
      { port: 7, allowHalfOpen: true, mptcp: { announce: [{ address: parseAddress(UNIQUE) }] } },
      (socket) => {
        socket.on('data', (chunk: Buffer) => {
          if (!socket.write(chunk)) socket.pause();
        });
        socket.on('drain', () => socket.resume());
        socket.on('end', () => socket.end());
      },
    );
    const client = sim.client.connect({ host: SIM_SERVER, port: 7, allowHalfOpen: true, mptcp: true });
    const got = createHash('sha256');
    let received = 0;
    let ended = false;
    let closed = false;
    client.on('data', (chunk: Buffer) => {
      got.update(chunk);
      received += chunk.length;
    });
    client.on('end', () => {
      ended = true;
    });
    client.on('close', () => {
      closed = true;
    });
    client.end(data);
    await sim.run(() => ended, 120_000);
    assert.equal(received, data.length);
    assert.equal(got.digest('hex'), createHash('sha256').update(data).digest('hex'));
    const info = (client.info() as { mptcp?: { subflows: unknown[]; fallback: boolean } }).mptcp;
    assert.equal(info?.fallback, false);
    // Both DATA_FINs went through: every subflow closes in order, the socket closes cleanly.
    await sim.runFor(130_000);
    assert.ok(closed, 'the client socket closed');
    assert.equal(sim.client.connectionCount, 0);
    assert.equal(sim.server.connectionCount, 0);
    server.close();
  });

  it('a reader that stops: the data-level window closes, then reopens, nothing lost', async () => {
    const sim = new Sim({
      seed: 7,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
    });
    const data = seededBytes(7, 12 << 20);
    const got = createHash('sha256');
    let received = 0;
    let ended = false;
    const server = sim.server.listen(
      { port: 9, mptcp: { announce: [{ address: parseAddress(UNIQUE) }], recvBufferSize: 1 << 20 } },
      (socket) => {
        socket.pause();
        // The application reads nothing for 3 s: the 1 MB connection-level window fills up.
        sim.clock.setTimer(sim.clock.now() + 3000, () => {
          socket.on('data', (chunk: Buffer) => {
            got.update(chunk);
            received += chunk.length;
          });
          socket.on('end', () => {
            ended = true;
          });
          socket.resume();
        });
      },
    );
    const client = sim.client.connect({ host: SIM_SERVER, port: 9, mptcp: true });
    client.resume();
    client.end(data);
    await sim.run(() => ended, 120_000);
    assert.equal(received, data.length);
    assert.equal(got.digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.equal(sim.server.stats().mptcp?.rcvBufferFullDrops, 0);
    server.close();
  });

  it('DSS checksums (the server asks, A flag): 4 MB over three subflows with 1% loss, SHA-256 equal', async () => {
    const sim = new Sim({
      seed: 8,
      forward: { rateBytesPerSec: 6.25e6, delayMs: 10, drop: 0.01 },
      reverse: { delayMs: 10, drop: 0.01 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
    });
    const data = seededBytes(8, 4 << 20);
    const r = await simTransfer(sim, data, 120_000, 5001, {
      listen: { mptcp: { checksum: true, announce: [{ address: parseAddress(UNIQUE) }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const s = sim.server.stats().mptcp!;
    assert.equal(s.DataCsumErr, 0);
    assert.equal(s.MPJoinAckRx, 2);
  });

  it('IPv6: C flag, ADD_ADDR of an IPv6 unique address, joins from both client addresses', async () => {
    const sim = new Sim({
      seed: 9,
      ipv6: true,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      clientAddresses: ['fd00::3'],
      serverAddresses: ['fd00::4'],
    });
    const data = seededBytes(9, 4 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress('fd00::4') }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const s = sim.server.stats().mptcp!;
    const c = sim.client.stats().mptcp!;
    assert.equal(c.AddAddr, 1);
    assert.equal(s.EchoAdd, 1);
    // From fd00::1 and fd00::3 (the IPv4 address is of the other family).
    assert.equal(s.MPJoinAckRx, 2);
    assert.equal(s.AddAddrTxDrop, 0);
  });

  it('SYN cookies: an MPTCP connection rebuilt from the third ACK keeps MPTCP, and joins still land', async () => {
    const sim = new Sim({
      seed: 10,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      clientAddresses: [CLIENT2],
      serverAddresses: [UNIQUE],
      stack: { synBacklog: 0 }, // every SYN past the (empty) backlog gets a cookie
    });
    const data = seededBytes(10, 4 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress(UNIQUE) }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const stats = sim.server.stats();
    assert.equal(stats.counters.synCookiesValid, 1);
    assert.equal(stats.mptcp?.MPCapableACKRX, 1);
    assert.equal(stats.mptcp?.MPJoinAckRx, 2);
    assert.equal(sim.client.stats().mptcp?.MPCapableFallbackSYNACK, 0);
  });
});
