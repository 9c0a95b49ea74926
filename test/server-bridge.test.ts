/**
 * The server's bridge (src/proxy/server/bridge.ts) over loopback kernel TCP on both sides: the
 * client's half-close reaches the backend and the backend's reply still flows back; a backend
 * that stops reading stops the bridge reading from the client (backpressure), and everything
 * arrives once it reads again, and the same the other way, where the backend's reads land in
 * pooled slabs that are reused once written; a backend that is not there resets the client.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../src/log.js';
import { Bridge } from '../src/proxy/server/bridge.js';
import { slabPoolStats } from '../src/stack/tcp/slab-pool.js';

const log = createLogger('silent');
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function listen(onConn: (s: Socket) => void, pauseOnConnect = false): Promise<number> {
  const s = createServer({ allowHalfOpen: true, pauseOnConnect }, onConn);
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as { port: number }).port;
}

/** A client connection whose server side is handed to a Bridge toward `backendPort`. */
async function bridged(
  backendPort: number,
): Promise<{ client: Socket; bridge: Promise<Bridge>; errors: Error[] }> {
  let resolve!: (b: Bridge) => void;
  const bridge = new Promise<Bridge>((r) => {
    resolve = r;
  });
  const front = await listen((s) =>
    resolve(
      new Bridge({
        front: s,
        backend: { host: '127.0.0.1', port: backendPort },
        connectTimeoutMs: 5000,
        log,
      }),
    ),
  );
  const client = connect({ host: '127.0.0.1', port: front, allowHalfOpen: true });
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  await once(client, 'connect');
  return { client, bridge, errors };
}

/** Everything `s` delivers up to its end (without destroying it, as `for await` would). */
async function readAll(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  await once(s, 'end');
  return Buffer.concat(parts);
}

test('half-close: the client FIN reaches the backend as end(), and the reply still comes back', async () => {
  const backend = await listen(async (s) => {
    const got = await readAll(s); // to the client's FIN
    s.end(`got ${got.length}: ${got.toString()}`);
  });
  const { client, bridge } = await bridged(backend);
  client.end('hello');
  assert.equal((await readAll(client)).toString(), 'got 5: hello');
  const b = await bridge;
  assert.equal(await b.done, 'ok');
  assert.deepEqual(b.stats, { up: 5, down: 12 });
});

test('backpressure: a backend that stops reading stops the bridge reading; all bytes arrive once it reads', async () => {
  const total = 128 * 1024 * 1024;
  let backendSocket!: Socket;
  const received = createHash('sha256');
  let receivedBytes = 0;
  const backendDone = new Promise<void>((resolve) => {
    void listen((s) => {
      backendSocket = s; // paused on connect: reads nothing yet
      s.on('data', (d: Buffer) => {
        received.update(d);
        receivedBytes += d.length;
      });
      s.on('end', () => {
        s.end();
        resolve();
      });
    }, true).then((port) => portReady(port));
  });
  let portReady!: (p: number) => void;
  const port = await new Promise<number>((r) => {
    portReady = r;
  });
  const { client, bridge } = await bridged(port);
  const sent = createHash('sha256');
  const chunk = Buffer.alloc(1 << 20);
  let written = 0;
  const writer = (async () => {
    while (written < total) {
      chunk.fill(written >>> 20);
      sent.update(chunk);
      written += chunk.length;
      if (!client.write(chunk)) await once(client, 'drain');
    }
    client.end();
  })();
  const b = await bridge;
  // Nothing signals "everything is stalled": give the buffers time to fill, then look.
  await delay(500);
  const stalledAt = b.stats.up;
  assert.ok(written < total, 'the client was held back');
  assert.ok(stalledAt < 64 * 1024 * 1024, `the bridge read ${stalledAt} bytes the backend never took`);
  backendSocket.resume();
  await writer;
  await backendDone;
  client.resume();
  assert.equal(await b.done, 'ok');
  assert.equal(receivedBytes, total);
  assert.equal(received.digest('hex'), sent.digest('hex'));
});

test('backpressure the other way: a client that stops reading stops the bridge reading the backend; its reads reuse pooled slabs', async () => {
  const total = 128 * 1024 * 1024;
  const sent = createHash('sha256');
  const backend = await listen((s) => {
    void (async () => {
      const chunk = Buffer.alloc(1 << 20);
      for (let written = 0; written < total; written += chunk.length) {
        chunk.fill((written >>> 20) + 1);
        sent.update(chunk);
        if (!s.write(chunk)) await once(s, 'drain');
      }
      s.end();
    })();
    s.resume(); // the client sends nothing: its FIN
  });
  const { client, bridge } = await bridged(backend);
  client.pause();
  const b = await bridge;
  await delay(500); // as above: no event says "stalled"
  const stalledAt = b.stats.down;
  assert.ok(stalledAt < 64 * 1024 * 1024, `the bridge read ${stalledAt} bytes the client never took`);
  const before = slabPoolStats();
  const received = createHash('sha256');
  let receivedBytes = 0;
  client.on('data', (d: Buffer) => {
    received.update(d);
    receivedBytes += d.length;
  });
  client.end();
  client.resume();
  await once(client, 'end');
  assert.equal(await b.done, 'ok');
  assert.equal(receivedBytes, total);
  assert.equal(received.digest('hex'), sent.digest('hex'));
  const after = slabPoolStats();
  // 128 MiB through 256 KiB read slabs: were each new, that would be 512 of them.
  assert.ok(after.reused - before.reused > 400, `slabs reused ${after.reused - before.reused} times`);
  assert.ok(after.allocated - before.allocated < 64, `${after.allocated - before.allocated} slabs allocated`);
  assert.equal(after.overReleased, 0);
});

test('a backend that refuses: the bridge fails and the client connection is torn down', async () => {
  // A port that was just free: listen on it, then close.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const closed = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  const { client, bridge, errors } = await bridged(closed);
  const b = await bridge;
  const result = await b.done;
  assert.ok(result instanceof Error);
  assert.match(result.message, /ECONNREFUSED/);
  // (events.once would reject on the 'error' that comes first.)
  if (!client.closed) await new Promise((resolve) => client.once('close', resolve));
  assert.deepEqual(
    errors.map((e) => (e as NodeJS.ErrnoException).code),
    ['ECONNRESET'],
    'a reset, not a clean end of stream',
  );
});
