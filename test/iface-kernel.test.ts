/**
 * The stack against the Linux kernel's TCP over a TUN in a private namespace, both directions,
 * with and without offload (checksum offload and 64 KB super-packets both ways).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { RealScheduler } from '../src/stack/device/clock.js';
import { openTun } from '../src/stack/device/tun-device.js';
import { TcpStack } from '../src/stack/iface/stack.js';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import { waitForChild } from './support/child.js';
import { NetnsLab } from './support/netns.js';
import { seededBytes } from './support/sim.js';

const lab = new NetnsLab();
let ns = '';
before(() => {
  ns = lab.add('iface');
});
after(() => lab.cleanup());

const SIZE = 8 * 1024 * 1024;

// Kernel side: a server that reads everything and prints its SHA-256 and length.
const KERNEL_SERVER = `
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(1); print('ready', flush=True)
c, _ = srv.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b); n += len(b)
c.close(); print(h.hexdigest(), n, flush=True)
`;

// Kernel side: a client that sends stdin-like deterministic bytes (argv size) and prints their hash.
const KERNEL_CLIENT = `
import hashlib, socket, sys
size = int(sys.argv[3]); data = bytes((i * 7 + (i >> 8)) & 0xff for i in range(size))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(data); s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
print(hashlib.sha256(data).hexdigest(), size, flush=True)
`;

for (const offload of [false, true]) {
  describe(`the kernel as peer over a TUN (offload ${offload})`, () => {
    const tunName = offload ? 'mpt-ifo' : 'mpt-if';
    const net = offload ? '10.97.1' : '10.97.0';

    test('userspace client -> kernel server: SHA-256 equal', async (t) => {
      const dev = openTun({ name: tunName, netns: ns, offload });
      lab.exec(ns, 'ip', 'addr', 'add', `${net}.1/24`, 'dev', tunName);
      const stack = new TcpStack({ device: dev, scheduler: new RealScheduler(), addresses: [`${net}.2`] });
      t.after(async () => {
        stack.destroy();
        await dev.close();
      });
      const server = lab.spawn(ns, 'python3', ['-c', KERNEL_SERVER, `${net}.1`, '7000']);
      const done = waitForChild(server, 30_000);
      await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
      const data = seededBytes(1, SIZE);
      const socket = stack.connect({ host: `${net}.1`, port: 7000 });
      socket.resume();
      await pipeline(
        (async function* () {
          for (let off = 0; off < data.length; off += 65536) yield data.subarray(off, off + 65536);
        })(),
        socket,
      );
      const result = await done;
      assert.equal(result.code, 0, result.stderr);
      const expected = `${createHash('sha256').update(data).digest('hex')} ${SIZE}`;
      assert.equal(result.stdout.trim().split('\n').at(-1), expected);
      const c = stack.stats().counters;
      assert.equal(c.dropBadTcpChecksum, 0);
      if (offload) assert.ok(c.superPacketsOut > 0, 'sent super-packets');
    });

    test('kernel client -> userspace server: SHA-256 equal', async (t) => {
      const dev = openTun({ name: `${tunName}2`, netns: ns, offload });
      lab.exec(ns, 'ip', 'addr', 'add', `${net}.129/25`, 'dev', `${tunName}2`);
      const stack = new TcpStack({ device: dev, scheduler: new RealScheduler(), addresses: [`${net}.130`] });
      t.after(async () => {
        stack.destroy();
        await dev.close();
      });
      const hash = createHash('sha256');
      let received = 0;
      let serverDone: Promise<void> | undefined;
      stack.listen({ port: 7001 }, (socket: TcpSocket) => {
        serverDone = pipeline(
          socket,
          new Writable({
            write(chunk: Buffer, _e, cb) {
              hash.update(chunk);
              received += chunk.length;
              cb();
            },
          }),
        );
      });
      const client = lab.spawn(ns, 'python3', ['-c', KERNEL_CLIENT, `${net}.130`, '7001', String(SIZE)]);
      const result = await waitForChild(client, 60_000);
      assert.equal(result.code, 0, result.stderr);
      await serverDone;
      assert.equal(`${hash.digest('hex')} ${received}`, result.stdout.trim());
      if (offload) assert.ok(stack.stats().counters.superPacketsIn > 0, 'received super-packets');
    });
  });
}
