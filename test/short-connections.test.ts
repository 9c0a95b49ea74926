/**
 * What a short connection costs: the send buffer allocates as it fills (64 KiB, doubling up to
 * its capacity) instead of its whole capacity up front, a 4 MiB ring per MPTCP connection and
 * 1 MiB per TCP one, which cost milliseconds of allocation and garbage collection for each short
 * connection through the chain. The ring keeps its contract while it grows (checked against a
 * plain array), and many short MPTCP exchanges in the simulator all end cleanly at both ends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandom } from '../src/stack/device/prng.js';
import { parseAddress } from '../src/stack/iface/address.js';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { SendBuffer } from '../src/stack/tcp/send-buffer.js';
import { SIM_SERVER, Sim, seededBytes } from './support/sim.js';

describe('SendBuffer grows as it fills', () => {
  it('starts at 64 KiB, holds its capacity only when that much is written', () => {
    const b = new SendBuffer(4 << 20);
    assert.equal(b.allocated, 64 << 10);
    assert.equal(b.write(new Uint8Array(10_000)), 10_000);
    assert.equal(b.allocated, 64 << 10, 'a short write needs no more');
    assert.equal(b.write(new Uint8Array(100_000)), 100_000);
    assert.equal(b.allocated, 128 << 10);
    assert.equal(b.write(new Uint8Array(8 << 20)), (4 << 20) - 110_000, 'backpressure at the capacity');
    assert.equal(b.allocated, 4 << 20);
    assert.equal(b.free, 0);
    assert.equal(new SendBuffer(1000).allocated, 1000, 'a small capacity is allocated as is');
  });

  it('against a model: random writes, acks and views across growth and wrap-around', () => {
    // Byte k of the stream is (k * 7) & 0xff; the model is the range [base, base + held).
    const byte = (k: number) => (k * 7) & 0xff;
    const rng = new SeededRandom(5, 1);
    for (const capacity of [300_000, 1 << 20, 70_000]) {
      const b = new SendBuffer(capacity);
      let base = 0;
      let held = 0;
      for (let step = 0; step < 3000; step++) {
        const op = rng.int(3);
        if (op === 0) {
          const n = rng.int(40_000);
          const from = base + held;
          const data = Uint8Array.from({ length: n }, (_, k) => byte(from + k));
          const took = b.write(data);
          assert.equal(took, Math.min(n, capacity - held));
          held += took;
        } else if (op === 1) {
          const n = Math.min(rng.int(30_000), held);
          b.ack(n);
          base += n;
          held -= n;
        } else if (held > 0) {
          const off = rng.int(held);
          const n = 1 + rng.int(held - off);
          const v = b.view(off, n);
          assert.equal(v.length, n);
          for (let k = 0; k < n; k++) {
            if (v[k] !== byte(base + off + k)) assert.fail(`step ${step}: byte ${off + k} of ${held}`);
          }
        }
        assert.equal(b.length, held);
        assert.ok(b.allocated <= capacity);
      }
    }
  });
});

describe('short MPTCP connections in the simulator', () => {
  it('50 request/response connections over two paths: every one ends at both ends, none left', async () => {
    const sim = new Sim({
      seed: 21,
      forward: { rateBytesPerSec: 12e6, delayMs: 2 },
      reverse: { rateBytesPerSec: 12e6, delayMs: 2 },
      clientAddresses: ['10.0.0.3'],
      serverAddresses: ['10.0.0.4'],
    });
    const reply = seededBytes(3, 10_000);
    const listener = sim.server.listen(
      { port: 80, mptcp: { announce: [{ address: parseAddress('10.0.0.4') }] } },
      (s: TcpSocket) => {
        s.once('data', () => s.end(reply));
        s.resume();
      },
    );
    let ended = 0;
    let bytes = 0;
    const N = 50;
    for (let i = 0; i < N; i++) {
      const c = sim.client.connect({ host: SIM_SERVER, port: 80, mptcp: true });
      c.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      c.once('end', () => {
        ended++;
      });
      c.end('GET / HTTP/1.0\r\n\r\n');
    }
    await sim.run(() => ended === N && sim.client.stats().mptcp!.MPCurrEstab === 0, 30_000);
    listener.close();
    assert.equal(bytes, N * reply.length);
    assert.equal(sim.server.stats().mptcp!.MPCurrEstab, 0);
    // Their subflows leave after TIME-WAIT.
    await sim.runFor(61_000);
    assert.equal(sim.client.connectionCount, 0);
    assert.equal(sim.server.connectionCount, 0);
  });
});
