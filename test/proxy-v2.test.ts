/**
 * PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2): hex fixtures for TCP over IPv4
 * and IPv6 and for mixed families (IPv4-mapped), LOCAL; and over loopback, the bridge sends the
 * header to the backend before the first byte of the client's stream (also when the client has
 * sent data before the backend connected).
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { createLogger } from '../src/log.js';
import { Bridge } from '../src/proxy/server/bridge.js';
import { encodeProxyV2, encodeProxyV2Local, PROXY_V2_SIGNATURE } from '../src/proxy/server/proxy-v2.js';

const SIG = '0d0a0d0a000d0a515549540a';

test('fixtures: TCP over IPv4, IPv6, mixed families, LOCAL', () => {
  assert.equal(PROXY_V2_SIGNATURE.toString('hex'), SIG);
  assert.equal(
    encodeProxyV2({
      source: { address: '10.50.1.1', port: 41570 },
      destination: { address: '10.52.1.2', port: 5001 },
    }).toString('hex'),
    `${SIG}2111000c 0a320101 0a340102 a262 1389`.replaceAll(' ', ''),
  );
  assert.equal(
    encodeProxyV2({
      source: { address: 'fd50:1::1', port: 443 },
      destination: { address: 'fd52:1::2', port: 80 },
    }).toString('hex'),
    `${SIG}21210024 fd500001000000000000000000000001 fd520001000000000000000000000002 01bb 0050`.replaceAll(
      ' ',
      '',
    ),
  );
  assert.equal(
    encodeProxyV2({
      source: { address: '192.0.2.1', port: 1 },
      destination: { address: '2001:db8::1', port: 2 },
    }).toString('hex'),
    `${SIG}21210024 00000000000000000000ffffc0000201 20010db8000000000000000000000001 0001 0002`.replaceAll(
      ' ',
      '',
    ),
  );
  assert.equal(encodeProxyV2Local().toString('hex'), `${SIG}20000000`);
});

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

function listen(onConn: (c: Socket) => void): Promise<number> {
  const srv = createServer({ allowHalfOpen: true }, onConn);
  servers.push(srv);
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port)),
  );
}

test('the bridge writes the header first, then the client bytes, and carries the reply back', async () => {
  let atBackend: Buffer = Buffer.alloc(0);
  let backendEnded: () => void = () => undefined;
  const backendDone = new Promise<void>((resolve) => {
    backendEnded = resolve;
  });
  const backendPort = await listen((c) => {
    c.on('data', (d: Buffer) => {
      atBackend = Buffer.concat([atBackend, d]);
    });
    c.on('end', () => {
      c.end('reply');
      backendEnded();
    });
  });
  const header = encodeProxyV2({
    source: { address: '10.50.1.1', port: 1234 },
    destination: { address: '10.52.1.2', port: 5001 },
  });
  // The front: the accepted side of a loopback connection whose client sends before the bridge exists.
  let bridge: Bridge | undefined;
  const frontPort = await listen((front) => {
    bridge = new Bridge({
      front,
      backend: { host: '127.0.0.1', port: backendPort },
      connectTimeoutMs: 5000,
      log: createLogger('silent'),
      header,
    });
  });
  const client = connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
  client.end('hello world');
  let reply = '';
  client.setEncoding('utf8').on('data', (d: string) => {
    reply += d;
  });
  await new Promise((resolve) => client.once('end', resolve));
  await backendDone;
  assert.equal(await bridge?.done, 'ok');
  assert.equal(reply, 'reply');
  assert.equal(atBackend.subarray(0, header.length).toString('hex'), header.toString('hex'));
  assert.equal(atBackend.subarray(header.length).toString(), 'hello world');
  client.destroy();
});
