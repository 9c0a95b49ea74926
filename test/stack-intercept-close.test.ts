/**
 * An intercepted connection (accepted by an any-destination listener, so its local address is
 * not one of the stack's) outlives that listener: `mptun client` closes its listener first on a
 * graceful stop, and the connections it was relaying must still hear their peer's last ACKs,
 * FINs and RSTs. (They did not: the stack dropped every segment to a foreign address as soon as
 * no any-destination listener was left, so the app's ACK of our FIN went unheard and the
 * connection sat in LAST-ACK until the stop reset it.) Strays to foreign addresses are still
 * dropped as not for us.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpServer, TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { Sim, seededBytes } from './support/sim.js';

const INTERCEPTED = '198.51.100.7';

test('a connection accepted by an any-destination listener finishes its close after the listener closed', async () => {
  const sim = new Sim({ seed: 11, forward: { delayMs: 20 }, reverse: { delayMs: 20 } });
  let listener: TcpServer | undefined;
  let serverClosed = false;
  let received = 0;
  listener = sim.server.listen({ anyDestination: true }, (s: TcpSocket) => {
    assert.equal(s.localAddress, INTERCEPTED);
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    s.on('end', () => {
      // The proxy's stop: no more interception, then its side's last byte and FIN.
      listener?.close();
      listener = undefined;
      s.end('bye');
    });
    s.on('close', () => {
      serverClosed = true;
    });
  });
  const socket = sim.client.connect({ host: INTERCEPTED, port: 443 });
  let clientError: Error | undefined;
  let reply = '';
  let clientClosed = false;
  socket.on('error', (e) => {
    clientError = e;
  });
  socket.on('data', (d: Buffer) => {
    reply += d.toString();
  });
  socket.on('close', () => {
    clientClosed = true;
  });
  socket.end(seededBytes(5, 50_000));
  await sim.run(() => serverClosed && clientClosed, 30_000);
  let busy: string[] | undefined;
  void sim.server.settle(5000).then((b) => {
    busy = b;
  });
  await sim.run(() => busy !== undefined, 10_000);
  assert.deepEqual(busy, [], 'the last ACK of our FIN was heard: nothing left to reset');
  assert.equal(received, 50_000);
  assert.equal(reply, 'bye');
  assert.equal(clientError, undefined);
  assert.equal(sim.client.stats().tcp.rstAccepted ?? 0, 0);
  assert.equal(sim.server.stats().counters.dropNotForUs, 0);

  // A stray to a foreign address, with no intercepting listener left: dropped, not answered.
  const stray = sim.client.connect({ host: INTERCEPTED, port: 444 });
  stray.on('error', () => undefined);
  await sim.runFor(500);
  assert.ok(sim.server.stats().counters.dropNotForUs > 0);
  assert.equal(sim.server.stats().counters.rstSentNoConnection, 0);
  stray.destroy();
});
