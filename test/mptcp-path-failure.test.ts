/**
 * A path that dies mid-transfer (every packet from or to one client address lost, no RST, no
 * ICMP: a link gone down). The subflows on it hold data the peer never gets; their first RTO
 * must hand all of it to the surviving subflow at once (Linux retransmits all pending data when
 * a subflow goes stale), not wait for the data-level RTO, let alone a 64 KB head per backed-off
 * RTO, which stalled a kernel interop transfer for over a minute.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddress } from '../src/stack/iface/address.js';
import { parseIpv4 } from '../src/stack/wire/ipv4.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

type Frame = { data: Uint8Array };
type Writer = { write: (frames: Frame[]) => boolean };

function ipv4(text: string): number {
  return text.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/** Drops every frame a device writes whose source or destination is `addr`, once `dead()`. */
function cut(dev: Writer, addr: string, dead: () => boolean): void {
  const a = ipv4(addr);
  const write = dev.write.bind(dev);
  dev.write = (frames) => {
    if (!dead()) return write(frames);
    const kept = frames.filter((f) => {
      const ip = parseIpv4(f.data, 0, false);
      return !ip.ok || (ip.value.src !== a && ip.value.dst !== a);
    });
    return kept.length === 0 ? true : write(kept);
  };
}

describe('MPTCP: a path dies mid-transfer', () => {
  it('the data stuck on the dead subflows moves to the live one after one subflow RTO', async () => {
    const UNIQUE = '10.0.0.4';
    const sim = new Sim({
      seed: 5,
      forward: { rateBytesPerSec: 12.5e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      clientAddresses: ['10.0.0.3'],
      serverAddresses: [UNIQUE],
    });
    // Path "10.0.0.1" (the initial subflow and the join from it) dies 300 ms in.
    let diedAt = Number.POSITIVE_INFINITY;
    const dead = () => sim.clock.now() >= diedAt;
    cut(sim.clientFault as unknown as Writer, '10.0.0.1', dead);
    cut(sim.serverFault as unknown as Writer, '10.0.0.1', dead);
    diedAt = sim.clock.now() + 300;
    const size = 8 << 20;
    const r = await simTransfer(sim, seededBytes(5, size), 20_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress(UNIQUE) }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    const c = sim.client.stats().mptcp!;
    // 8 MiB at 12.5 MB/s is 0.7 s. The dead subflows' first RTO (~200 ms, simulated time) moves
    // their data at once (they are marked stale at a later one, staleAfterRtos): the stall is one
    // subflow RTO, not a data-level RTO.
    assert.ok(c.subflowRtoReinjections >= 1, `subflowRtoReinjections ${c.subflowRtoReinjections}`);
    assert.equal(c.dataRtoFired, 0);
    assert.ok(
      r.elapsedMs < 1_500,
      `took ${r.elapsedMs} ms (stale ${c.SubflowStale}, data RTOs ${c.dataRtoFired}, reinjected ${c.reinjectedBytes})`,
    );
  });
});
