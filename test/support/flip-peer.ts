/**
 * Kernel TCP peers for the anycast-flip test (test/anycast-flip.test.ts): plain Node sockets,
 * the lab's seeded stream (labBytes()/labSha256() in mptcp-lab.ts), and a pause in the middle of
 * the upload, so the test can change the network while a connection is mid-transfer and then let
 * it go on. Run with `node --import tsx flip-peer.ts ...` inside a namespace.
 *
 *   server --host H --port P [--port P2 ...] --progress N --send N --seed S
 *       Listens on each port; serves connections concurrently: receives to EOF, then sends N
 *       seeded bytes and ends.
 *   client --host H --port P [--bind A] --bytes N --seed S --pause-at N [--timeout SEC]
 *       Connects (from A if given), writes the first --pause-at bytes of the stream, says
 *       `paused`, waits for a line on stdin, writes the rest, shuts down writing and reads the
 *       reply to EOF.
 *
 * One line per step on stdout (server: PORT is the listening port, I the connection's index on it):
 *   listening HOST PORT                         connected LOCALHOST LOCALPORT
 *   accepted PORT I PEERHOST PEERPORT           paused NBYTES
 *   progress PORT I NBYTES (once, N arrived)    sent NBYTES SHA256
 *   received PORT I NBYTES SHA256               received NBYTES SHA256
 *   sent PORT I NBYTES SHA256                   closed
 *   closed PORT I
 *   error PORT I CODE MESSAGE                   error CODE MESSAGE    (the client then exits 3)
 * The server keeps serving after a connection's error; it runs until killed.
 */
import { createHash } from 'node:crypto';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { labBytes, say } from './mptcp-lab.js';

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string', multiple: true, default: [] },
    bind: { type: 'string' },
    bytes: { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    send: { type: 'string', default: '0' },
    progress: { type: 'string', default: '0' },
    'pause-at': { type: 'string', default: '0' },
    timeout: { type: 'string', default: '30' },
  },
});

const host = o.host ?? '';
const seed = Number(o.seed);

function serve(): void {
  const send = Number(o.send);
  const progress = Number(o.progress);
  const reply = labBytes(seed, send);
  for (const port of o.port.map(Number)) listenOn(port, progress, send, reply);
}

function listenOn(port: number, progress: number, send: number, reply: Buffer): void {
  let next = 0;
  const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    const i = `${port} ${next++}`;
    say('accepted', i, s.remoteAddress ?? '', s.remotePort ?? 0);
    const h = createHash('sha256');
    let n = 0;
    let told = false;
    s.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
      if (!told && progress > 0 && n >= progress) {
        told = true;
        say('progress', i, n);
      }
    });
    s.on('end', () => {
      say('received', i, n, h.digest('hex'));
      s.end(reply, () => say('sent', i, send, sha(reply)));
    });
    s.on('error', (err: NodeJS.ErrnoException) => say('error', i, err.code ?? 'ERR', err.message));
    s.on('close', () => say('closed', i));
  });
  server.listen(port, host, () => say('listening', host, port));
}

function client(): void {
  const bytes = Number(o.bytes);
  const pauseAt = Math.min(Number(o['pause-at']), bytes);
  const data = labBytes(seed, bytes);
  const fail = (code: string, message: string): never => {
    say('error', code, message);
    process.exit(3);
  };
  const timer = setTimeout(
    () => fail('ETIMEDOUT', `not done within ${o.timeout} s`),
    Number(o.timeout) * 1000,
  );
  const s = tcpConnect({
    host,
    port: Number(o.port[0]),
    allowHalfOpen: true,
    ...(o.bind === undefined ? {} : { localAddress: o.bind }),
  });
  s.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? 'ERR', err.message));
  const h = createHash('sha256');
  let n = 0;
  s.on('data', (d: Buffer) => {
    h.update(d);
    n += d.length;
  });
  s.on('end', () => say('received', n, h.digest('hex')));
  s.on('close', (hadError) => {
    if (hadError) return; // 'error' has said why and exits
    clearTimeout(timer);
    say('closed');
    process.exit(0);
  });
  s.once('connect', () => {
    say('connected', s.localAddress ?? '', s.localPort ?? 0);
    s.write(data.subarray(0, pauseAt), () => {
      say('paused', pauseAt);
      const lines = createInterface({ input: process.stdin });
      lines.once('line', () => {
        lines.close();
        s.end(data.subarray(pauseAt), () => say('sent', bytes, sha(data)));
      });
    });
  });
}

if (positionals[0] === 'server') serve();
else if (positionals[0] === 'client') client();
else {
  process.stderr.write('usage: flip-peer.ts server|client [options] (see the file comment)\n');
  process.exit(2);
}
