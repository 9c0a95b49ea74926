/**
 * TcpStack.settle(): what a graceful stop waits for before destroy(). A socket's 'close' comes
 * once both directions ended, while the last FIN may still be unacknowledged; settle() resolves
 * once every connection is done (only TIME-WAIT left), so destroying the stack then resets
 * nothing. A connection that stays open holds it to its timeout; destroy() ends the wait.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { SIM_SERVER, Sim, seededBytes } from './support/sim.js';

/**
 * The client sends and ends; the server's socket ends its side when it reads the end and then
 * emits 'close' with its FIN sent but not acknowledged (LAST-ACK, 60 ms of round trip away).
 * `settleFirst`: the server stack settles before it is destroyed. Returns what the client saw.
 */
async function closeServerOnClose(settleFirst: boolean) {
  const sim = new Sim({ seed: 7, forward: { delayMs: 30 }, reverse: { delayMs: 30 } });
  let serverClosedAt: number | undefined;
  let settled: number | undefined;
  let settledAt: number | undefined;
  sim.server.listen({ port: 80 }, (s: TcpSocket) => {
    s.on('data', () => undefined);
    s.on('end', () => s.end());
    s.on('close', () => {
      serverClosedAt = sim.clock.now();
      const stop = settleFirst ? sim.server.settle(5000).then((b) => b.length) : Promise.resolve(-1);
      void stop.then((busy) => {
        settled = busy;
        settledAt = sim.clock.now();
        sim.server.destroy();
      });
    });
  });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80 });
  let clientError: Error | undefined;
  let clientClosed = false;
  socket.on('error', (e) => {
    clientError = e;
  });
  socket.on('close', () => {
    clientClosed = true;
  });
  socket.on('data', () => undefined);
  socket.end(seededBytes(3, 200_000));
  await sim.run(() => settled !== undefined, 30_000);
  await sim.runFor(2000);
  return {
    clientError,
    busy: settled,
    waitedMs: settledAt! - serverClosedAt!,
    clientClosed,
    clientRstAccepted: sim.client.stats().tcp.rstAccepted ?? 0,
  };
}

test("settle() after a socket's 'close' waits for its FIN to be acknowledged; destroy() then resets nothing", async () => {
  const r = await closeServerOnClose(true);
  assert.equal(r.busy, 0, 'every connection finished');
  assert.ok(r.waitedMs >= 60, `settled after ${r.waitedMs} ms: the FIN's round trip`);
  assert.ok(r.waitedMs < 5000);
  assert.equal(r.clientRstAccepted, 0);
  assert.equal(r.clientError, undefined);
  assert.ok(r.clientClosed, 'the client saw a clean close');
});

test("without it, a stack destroyed at the socket's 'close' resets a connection that ended cleanly", async () => {
  const r = await closeServerOnClose(false);
  // The server's FIN never got out (or its retransmission never will): the client sees a reset
  // or waits for a FIN that never comes, instead of a clean close.
  assert.ok(
    r.clientError !== undefined || !r.clientClosed,
    `the client closed cleanly: ${JSON.stringify(r)}`,
  );
});

test('a connection that stays open holds settle() to its timeout; destroy() ends the wait at once', async () => {
  const sim = new Sim({ seed: 8, forward: { delayMs: 1 }, reverse: { delayMs: 1 } });
  const errors: string[] = [];
  sim.server.listen({ port: 80 }, (s: TcpSocket) => {
    s.on('data', () => undefined);
    s.on('error', (e: NodeJS.ErrnoException) => errors.push(`server ${e.code}`));
  });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80 });
  socket.on('error', (e: NodeJS.ErrnoException) => errors.push(`client ${e.code}`));
  let connected = false;
  socket.once('connect', () => {
    connected = true;
  });
  await sim.run(() => connected, 10_000);
  let busy: string[] | undefined;
  const t0 = sim.clock.now();
  void sim.client.settle(1000).then((b) => {
    busy = b;
  });
  await sim.run(() => busy !== undefined, 10_000);
  assert.equal(busy?.length, 1);
  assert.match(busy[0]!, /^[\d.]+:\d+ > [\d.]+:80 ESTABLISHED$/, 'the busy one named with its state');
  assert.ok(sim.clock.now() - t0 >= 1000);
  let second: number | undefined;
  void sim.client.settle(60_000).then((b) => {
    second = b.length;
  });
  sim.client.destroy();
  await sim.runFor(10);
  assert.equal(second, 1, 'destroy() answered the waiting settle() with the busy count');
  assert.deepEqual(errors, ['server ECONNRESET'], "destroy() reset the open connection (the peer's view)");
});
