/**
 * A reader that applies backpressure must still get every byte when the connection closes under
 * it: mptun client bridges a fast MPTCP peer to a slower app, so the MPTCP connection can finish
 * (both DATA_FINs through, subflows closed) while its last bytes wait in the receive buffer.
 * Found as a truncated download through mptun client (5.5 of 8 MB, then a clean EOF).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { SIM_SERVER, Sim, seededBytes } from './support/sim.js';

for (const mptcp of [true, false]) {
  test(`${mptcp ? 'MPTCP' : 'TCP'}: bytes buffered when the connection closes are still read, then EOF`, async () => {
    const sim = new Sim({ seed: 7, forward: { delayMs: 2 }, reverse: { delayMs: 2 } });
    const reply = seededBytes(7, 40_000);
    sim.server.listen({ port: 80, mptcp, allowHalfOpen: true }, (s) => {
      s.resume();
      s.on('end', () => s.end(reply));
    });
    const socket: TcpSocket = sim.client.connect({ host: SIM_SERVER, port: 80, mptcp, allowHalfOpen: true });
    socket.end('request');
    // Nobody reads until the connection is over: the reply (less than a receive window) waits in
    // our buffers.
    // MPTCP: closed once its subflows are (TIME-WAIT included: simulated time is cheap).
    await sim.run(() => ['closed', 'CLOSED', 'TIME-WAIT'].includes(socket.state), 300_000);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    let ended = false;
    socket.on('end', () => {
      ended = true;
    });
    await sim.run(() => ended, 10_000);
    const got = Buffer.concat(chunks);
    assert.equal(got.length, reply.length);
    assert.equal(
      createHash('sha256').update(got).digest('hex'),
      createHash('sha256').update(reply).digest('hex'),
    );
  });
}
