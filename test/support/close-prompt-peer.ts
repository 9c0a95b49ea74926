/**
 * OUR stack as a process for test/mptcp-close-prompt.test.ts: a TUN in the current namespace
 * (start it with `ip netns exec`), one MPTCP connection, and wall-clock stamps (Date.now()) of how
 * it ends at this end:
 *
 *   server --tun T --addr A [--addr B] --port P [--send N] [--seed S] [--timeout SEC]
 *       Listens with MPTCP on every --addr (no C flag: the client joins the initial address from
 *       its other one), reads one connection until EOF, then writes N bytes and ends.
 *   client --tun T --addr A [--addr B] --host H --port P --local A --bytes N [--seed S]
 *          [--timeout SEC]
 *       Connects with MPTCP from --local, writes N bytes and ends, reads until EOF.
 *
 * Both print `result {JSON}` once the MPTCP connection itself is closed (socket.state 'closed',
 * RFC 8684 §3.3.3: both DATA_FINs DATA_ACKed): bytes and SHA-256 each way, and the stamps
 * `lastByteAt` (the last byte read), `endAt` (EOF: the peer's DATA_FIN), `endedAt` (our end()),
 * `closeAt` (the socket's 'close') and `connClosedAt` (the connection closed). The stack then
 * stays until stdin closes (the peer's last segments are still answered), then prints
 * `done {JSON}` (non-zero MPTCP counters) and exits; non-zero on failure.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { RealScheduler } from '../../src/stack/device/clock.js';
import { openTun } from '../../src/stack/device/tun-device.js';
import { TcpStack } from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import { mptcpCounterSet } from '../../src/stack/mptcp/counters.js';
import { fail, labChunks, say } from './mptcp-lab.js';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    tun: { type: 'string', default: 'mpt-cp' },
    addr: { type: 'string', multiple: true, default: [] },
    host: { type: 'string' },
    port: { type: 'string' },
    local: { type: 'string' },
    bytes: { type: 'string', default: '0' },
    send: { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    timeout: { type: 'string', default: '40' },
  },
});
const role = positionals[0];
if (role !== 'client' && role !== 'server') fail('usage: close-prompt-peer.ts client|server [options]');
if (o.addr.length === 0) fail('at least one --addr');
const port = Number(o.port);
if (!Number.isInteger(port) || port <= 0) fail('--port is required');

const watchdog = setTimeout(() => fail(`timed out after ${o.timeout} s`), Number(o.timeout) * 1000);
watchdog.unref();

const tun = openTun({ name: o.tun, offload: false, disableIpv6: true });
for (const a of o.addr) execFileSync('ip', ['route', 'replace', a, 'dev', tun.name]);
const stack = new TcpStack({ device: tun, scheduler: new RealScheduler(), addresses: o.addr });
say('up', tun.name, ...o.addr);

interface Stamps {
  lastByteAt: number;
  endAt: number;
  endedAt: number;
  closeAt: number;
  connClosedAt: number;
}

/** Writes `n` bytes with backpressure, ends, and returns their SHA-256. */
async function send(s: TcpSocket, n: number, stamps: Stamps): Promise<string> {
  const tx = createHash('sha256');
  for (const chunk of labChunks(Number(o.seed) + (role === 'server' ? 1 : 0), n)) {
    tx.update(chunk);
    if (!s.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: Error) => reject(e);
        s.once('error', onErr);
        s.once('drain', () => {
          s.off('error', onErr);
          resolve();
        });
      });
    }
  }
  s.end();
  stamps.endedAt = Date.now();
  return tx.digest('hex');
}

/** One connection's end, as this side sees it. */
async function serve(s: TcpSocket, sendBytes: number, sendFirst: boolean): Promise<void> {
  const stamps: Stamps = { lastByteAt: 0, endAt: 0, endedAt: 0, closeAt: 0, connClosedAt: 0 };
  const rx = createHash('sha256');
  let received = 0;
  const closed = new Promise<void>((resolve, reject) => {
    s.once('close', () => {
      stamps.closeAt = Date.now();
      resolve();
    });
    s.once('error', reject);
  });
  const eof = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      stamps.lastByteAt = Date.now();
      rx.update(d);
      received += d.length;
    });
    s.once('end', () => {
      stamps.endAt = Date.now();
      resolve();
    });
  });
  let sentSha: string;
  if (sendFirst) {
    sentSha = await send(s, sendBytes, stamps);
    await eof;
  } else {
    await eof;
    sentSha = await send(s, sendBytes, stamps);
  }
  await closed;
  // No event says when the connection itself is closed (the socket's 'close' comes with the end
  // of the stream): look every 5 ms, a bounded number of times.
  for (let k = 0; k < 2000 && s.state !== 'closed'; k++) await new Promise((r) => setTimeout(r, 5));
  stamps.connClosedAt = s.state === 'closed' ? Date.now() : 0;
  say(
    'result',
    JSON.stringify({
      sent: { bytes: sendBytes, sha256: sentSha },
      received: { bytes: received, sha256: rx.digest('hex') },
      state: s.state,
      ...stamps,
    }),
  );
}

async function untilStdinEnds(): Promise<void> {
  await new Promise<void>((resolve) => {
    process.stdin.once('end', () => resolve());
    process.stdin.resume();
  });
}

async function server(): Promise<void> {
  const s = await new Promise<TcpSocket>((resolve) => {
    const srv = stack.listen({ port, allowHalfOpen: true, mptcp: { cFlag: false } }, (sock: TcpSocket) => {
      srv.close();
      resolve(sock);
    });
    say('listening', port);
  });
  await serve(s, Number(o.send), false);
}

async function client(): Promise<void> {
  if (o.host === undefined || o.local === undefined) fail('--host and --local are required');
  const s = stack.connect({ host: o.host, port, localAddress: o.local, allowHalfOpen: true, mptcp: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  say('connected', s.localAddress, s.localPort);
  await serve(s, Number(o.bytes), true);
}

try {
  if (role === 'client') await client();
  else await server();
  await untilStdinEnds();
  const m = stack.stats().mptcp;
  say('done', JSON.stringify(m === undefined ? {} : mptcpCounterSet.nonZero(m)));
  stack.destroy();
  await tun.close();
  clearTimeout(watchdog);
} catch (err) {
  fail(`${role}: ${(err as Error).stack ?? String(err)}`);
}
