/**
 * Signalling options on a busy subflow: ADD_ADDR and its echo go on a pure ACK of their own
 * (as Linux sends them), so a subflow that is sending data without pause must still emit that
 * pure ACK at once, not when its data happens to stop (the kernel retransmits an ADD_ADDR it
 * has no echo for within a fraction of a second).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddress } from '../src/stack/iface/address.js';
import { parseIpv4 } from '../src/stack/wire/ipv4.js';
import { parseTcp } from '../src/stack/wire/tcp.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

type Writer = { write: (frames: { data: Uint8Array }[]) => boolean };

/** Calls `seen(echo)` with the clock's time for every ADD_ADDR a device writes. */
function watchAddAddr(sim: Sim, dev: Writer, seen: (echo: boolean, at: number) => void): void {
  const write = dev.write.bind(dev);
  dev.write = (frames) => {
    for (const f of frames) {
      const ip = parseIpv4(f.data, 0, false);
      if (!ip.ok) continue;
      const tcp = parseTcp(f.data, ip.value.headerLength, ip.value.totalLength);
      if (!tcp.ok) continue;
      for (const o of tcp.value.options) {
        if (o.type === 'mptcp' && o.option.subtype === 'add_addr') seen(o.option.echo, sim.clock.now());
      }
    }
    return write(frames);
  };
}

describe('MPTCP signalling on a busy subflow', () => {
  it('the client echoes ADD_ADDR within one delivery while it sends data without pause', async () => {
    const sim = new Sim({
      seed: 7,
      forward: { rateBytesPerSec: 50e6, delayMs: 5 },
      reverse: { delayMs: 5 },
      serverAddresses: ['10.0.0.4'],
    });
    const announced: number[] = [];
    const echoed: number[] = [];
    watchAddAddr(sim, sim.serverFault as unknown as Writer, (echo, at) => {
      if (!echo) announced.push(at);
    });
    watchAddAddr(sim, sim.clientFault as unknown as Writer, (echo, at) => {
      if (echo) echoed.push(at);
    });
    const data = seededBytes(7, 16 << 20);
    const r = await simTransfer(sim, data, 60_000, 5001, {
      listen: { mptcp: { announce: [{ address: parseAddress('10.0.0.4') }] } },
      connect: { mptcp: true },
    });
    assert.equal(r.receivedSha256, r.sentSha256);
    assert.ok(announced.length >= 1 && echoed.length >= 1, `${announced} / ${echoed}`);
    // The ADD_ADDR reaches the client 5 ms after it left; the echo follows at once.
    const delay = echoed[0]! - announced[0]!;
    assert.ok(delay <= 6, `echo ${delay} ms after the ADD_ADDR left (${announced} / ${echoed})`);
    assert.equal(announced.length, 1, 'no ADD_ADDR retransmission');
  });
});
