import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { SIM_SERVER, Sim, seededBytes, simTransfer } from './support/sim.js';

function waitError(sim: Sim, socket: TcpSocket, limitMs: number): Promise<NodeJS.ErrnoException> {
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (e: NodeJS.ErrnoException) => {
    error = e;
  });
  return sim.run(() => error !== undefined, limitMs).then(() => error!);
}

test('connect to a port nobody listens on: ECONNREFUSED', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 5 }, reverse: { delayMs: 5 } });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 9 });
  const error = await waitError(sim, socket, 10_000);
  assert.equal(error.code, 'ECONNREFUSED');
  assert.equal(error.syscall, 'connect');
  assert.equal(sim.server.stats().counters.rstSentNoConnection, 1);
  assert.equal(sim.client.connectionCount, 0);
});

test('connect into a black hole: ETIMEDOUT after the SYN retries', async () => {
  const sim = new Sim({ seed: 1, forward: { drop: 1 }, tcp: { synRetries: 2, initialRto: 100 } });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80 });
  const error = await waitError(sim, socket, 60_000);
  assert.equal(error.code, 'ETIMEDOUT');
  assert.equal(sim.clientFault.counters.tx.dropped, 3, 'the SYN and two retries');
});

test('the peer destroys an established connection: ECONNRESET', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 1 }, reverse: { delayMs: 1 } });
  sim.server.listen({ port: 80 }, (s) => {
    s.on('error', () => undefined);
    s.destroy();
  });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80 });
  let connected = false;
  socket.on('connect', () => {
    connected = true;
  });
  const error = await waitError(sim, socket, 10_000);
  assert.ok(connected);
  assert.equal(error.code, 'ECONNRESET');
});

test('connect reports addresses and ports on both sides', async () => {
  const sim = new Sim({ seed: 1 });
  let accepted: TcpSocket | undefined;
  sim.server.listen({ port: 80 }, (s) => {
    accepted = s;
  });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80, localPort: 40001 });
  await sim.run(() => accepted !== undefined && !socket.pending, 1000);
  assert.equal(socket.remoteAddress, SIM_SERVER);
  assert.equal(socket.remotePort, 80);
  assert.equal(socket.localPort, 40001);
  assert.equal(accepted?.remoteAddress, socket.localAddress);
  assert.equal(accepted?.remotePort, 40001);
  assert.equal(accepted?.localPort, 80);
  const info = socket.info();
  assert.equal(info.state, 'ESTABLISHED');
  assert.equal(info.sack, true);
  assert.equal(info.timestamps, true);
});

test('end() is a half-close: the peer sees end, and its reply still arrives', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 2 }, reverse: { delayMs: 2 } });
  sim.server.listen({ port: 80, allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      s.end(`got ${Buffer.concat(chunks).toString()}`);
    });
  });
  const socket = sim.client.connect({ host: SIM_SERVER, port: 80, allowHalfOpen: true });
  socket.end('ping');
  let reply = '';
  let ended = false;
  socket.on('data', (c: Buffer) => {
    reply += c.toString();
  });
  socket.on('end', () => {
    ended = true;
  });
  await sim.run(() => ended, 10_000);
  assert.equal(reply, 'got ping');
});

test('pipeline with backpressure: a paused reader stops the writer, resuming completes the transfer', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 1 }, reverse: { delayMs: 1 } });
  const data = seededBytes(3, 8_000_000);
  let server: TcpSocket | undefined;
  sim.server.listen({ port: 80 }, (s) => {
    server = s;
    s.pause();
  });
  const client = sim.client.connect({ host: SIM_SERVER, port: 80 });
  let produced = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let off = 0; off < data.length; off += 65536) {
      produced = off + 65536;
      yield data.subarray(off, off + 65536);
    }
  }
  client.resume();
  let clientDone = false;
  pipeline(source(), client).then(() => {
    clientDone = true;
  });
  // Run 2 simulated seconds with the reader paused: the writer must stall well short of 8 MB.
  await sim.runFor(2000);
  assert.ok(server !== undefined);
  assert.ok(produced < 4_000_000, `the writer got ${produced} bytes ahead of a paused reader`);
  assert.equal(clientDone, false);
  const hash = createHash('sha256');
  let received = 0;
  let serverDone = false;
  pipeline(
    server,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        received += chunk.length;
        cb();
      },
    }),
  ).then(() => {
    serverDone = true;
  });
  await sim.run(() => serverDone && clientDone, 60_000);
  assert.equal(received, data.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('with offload the stack sends 64 KB super-packets and the peer takes them whole', async () => {
  const sim = new Sim({ seed: 1, offload: true, forward: { delayMs: 1 }, reverse: { delayMs: 1 } });
  const r = await simTransfer(sim, seededBytes(4, 4_000_000), 60_000);
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.ok(sim.client.stats().counters.superPacketsOut > 0);
  assert.ok(sim.server.stats().counters.superPacketsIn > 0);
});

test('IPv6: connect and transfer between IPv6 addresses', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 1 }, reverse: { delayMs: 1 }, ipv6: true });
  const r = await simTransfer(sim, seededBytes(5, 1_000_000), 60_000);
  assert.equal(r.receivedSha256, r.sentSha256);
});

test('device backpressure: output pauses when write() returns false and resumes on drain', async () => {
  const sim = new Sim({ seed: 1, pairHighWaterMark: 16 * 1024 });
  const r = await simTransfer(sim, seededBytes(6, 2_000_000), 60_000);
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.ok(sim.client.stats().counters.deviceBackpressure > 0);
});

test('a new SYN takes over a four-tuple in TIME-WAIT (RFC 6191)', async () => {
  const sim = new Sim({ seed: 1, forward: { delayMs: 1 }, reverse: { delayMs: 1 } });
  let accepted = 0;
  sim.server.listen({ port: 80 }, (s) => {
    accepted++;
    s.resume();
    s.end('bye'); // the server closes first: its side goes to TIME-WAIT
  });
  const first = sim.client.connect({ host: SIM_SERVER, port: 80, localPort: 40002 });
  let firstClosed = false;
  first.resume();
  first.on('close', () => {
    firstClosed = true;
  });
  await sim.run(() => firstClosed && sim.client.connectionCount === 0, 10_000);
  await sim.runFor(100);
  assert.equal(sim.server.stats().connections[0]?.info.state, 'TIME-WAIT');
  const second = sim.client.connect({ host: SIM_SERVER, port: 80, localPort: 40002 });
  second.resume();
  await sim.run(() => accepted === 2, 10_000);
  assert.equal(sim.server.stats().tcp.timeWaitReopen, 1);
});
