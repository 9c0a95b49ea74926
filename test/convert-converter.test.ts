/**
 * The server's converter side (src/proxy/server/converter.ts) over loopback TCP, without a TUN:
 * a Convert request arriving one byte at a time, early data after it kept in order, Info TLV
 * answered with the supported TCP extensions, pre-shared-key authentication (missing, wrong,
 * right), unsupported TLVs, a client that never finishes its request, and the mapping of
 * connect errors to Error TLV codes.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../src/log.js';
import { Allowlist, parseAllowRule } from '../src/proxy/convert/allowlist.js';
import { authTlv } from '../src/proxy/convert/auth.js';
import {
  ConvertError,
  encodeConnectTlv,
  encodeConvertMessage,
  encodeInfoTlv,
  parseConvertMessage,
  TLV_SUPPORTED_TCP_EXTENSIONS,
} from '../src/proxy/convert/codec.js';
import { Bridge } from '../src/proxy/server/bridge.js';
import { acceptConvert, type ConvertOutcome, connectErrorCode } from '../src/proxy/server/converter.js';

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

/** An echo destination: each connection's bytes back, then its FIN. */
const echoPort = listen((c) => c.pipe(c));
const log = createLogger('silent');
const KEY = Buffer.from('a pre-shared key of enough bytes');

/**
 * A converter on loopback with `opts`; the client sends `request` (in `chunks` pieces) then ends;
 * resolves with the converter's outcome and everything the client read back.
 */
async function exchange(
  request: Buffer,
  opts: { key?: Buffer; allow?: string[]; chunk?: number; headerTimeoutMs?: number; end?: boolean } = {},
): Promise<{ outcome: ConvertOutcome; reply: Buffer }> {
  const allow = new Allowlist(
    (opts.allow ?? ['127.0.0.1/32']).map((t) => {
      const r = parseAllowRule(t);
      assert.ok(!('error' in r));
      return r;
    }),
  );
  let outcome: Promise<ConvertOutcome> | undefined;
  const port = await listen((front) => {
    outcome = acceptConvert(front, {
      allow,
      key: opts.key,
      headerTimeoutMs: opts.headerTimeoutMs ?? 5000,
      connectTimeoutMs: 5000,
      log,
    });
    void outcome.then((o) => {
      if (o.ok)
        new Bridge({ front, backend: o.destination, connected: o.socket, connectTimeoutMs: 5000, log });
    });
  });
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  client.on('data', (d: Buffer) => chunks.push(d));
  client.on('error', () => undefined);
  // Half-open capable like the converter's side: close ours once the converter has closed its.
  client.on('end', () => client.end());
  const closed = new Promise((resolve) => client.once('close', resolve));
  await new Promise((resolve) => client.once('connect', resolve));
  const step = opts.chunk ?? request.length;
  for (let i = 0; i < request.length; i += step) {
    client.write(request.subarray(i, i + step));
    if (step < request.length) await delay(2);
  }
  if (opts.end !== false) client.end();
  await closed;
  assert.ok(outcome);
  return { outcome: await outcome, reply: Buffer.concat(chunks) };
}

test('a request one byte at a time, then early data: connected, the echo comes back after the bare header', async () => {
  const port = await echoPort;
  const req = Buffer.concat([
    encodeConvertMessage([encodeConnectTlv('127.0.0.1', port)]),
    Buffer.from('early data'),
  ]);
  const { outcome, reply } = await exchange(req, { chunk: 1 });
  assert.equal(outcome.ok, true);
  assert.equal(reply.subarray(0, 4).toString('hex'), '01010000');
  assert.equal(reply.subarray(4).toString(), 'early data');
});

test('Info TLV: the supported TCP extensions, alone or before the connection', async () => {
  const alone = await exchange(encodeConvertMessage([encodeInfoTlv()]));
  assert.equal(alone.outcome.ok, false);
  const p = parseConvertMessage(alone.reply);
  assert.ok(p.ok);
  assert.deepEqual(p.tlvs, [{ type: TLV_SUPPORTED_TCP_EXTENSIONS, kinds: [2, 3, 4, 8] }]);
  const port = await echoPort;
  const both = await exchange(
    Buffer.concat([
      encodeConvertMessage([encodeInfoTlv(), encodeConnectTlv('127.0.0.1', port)]),
      Buffer.from('x'),
    ]),
  );
  assert.equal(both.outcome.ok, true);
  const q = parseConvertMessage(both.reply);
  assert.ok(q.ok);
  assert.equal(q.tlvs[0]?.type, TLV_SUPPORTED_TCP_EXTENSIONS);
  assert.equal(both.reply.subarray(q.length).toString(), 'x');
});

test('pre-shared key: missing or wrong is not authorized (32), right connects', async () => {
  const port = await echoPort;
  const connectTlv = encodeConnectTlv('127.0.0.1', port);
  const none = await exchange(encodeConvertMessage([connectTlv]), { key: KEY });
  assert.deepEqual(none.outcome, {
    ok: false,
    code: ConvertError.NotAuthorized,
    reason: 'authentication missing',
  });
  assert.equal(none.reply.toString('hex'), '010200001e012000');
  const wrong = await exchange(
    encodeConvertMessage([connectTlv, authTlv(Buffer.from('some other key, long enough'), connectTlv)]),
    { key: KEY },
  );
  assert.equal(wrong.outcome.ok === false && wrong.outcome.reason, 'authentication bad-mac');
  const right = await exchange(
    Buffer.concat([encodeConvertMessage([connectTlv, authTlv(KEY, connectTlv)]), Buffer.from('ok')]),
    { key: KEY },
  );
  assert.equal(right.outcome.ok, true);
  assert.equal(right.reply.subarray(4).toString(), 'ok');
  // Without a key configured, the authentication TLV is a message the converter does not support.
  const unkeyed = await exchange(encodeConvertMessage([connectTlv, authTlv(KEY, connectTlv)]));
  assert.equal(unkeyed.outcome.ok === false && unkeyed.outcome.code, ConvertError.UnsupportedMessage);
});

test('refusals: outside the allowlist, no Connect TLV, two of them, an unknown TLV', async () => {
  const port = await echoPort;
  const cases: [Buffer, number, RegExp][] = [
    [
      encodeConvertMessage([encodeConnectTlv('127.0.0.1', port)]),
      ConvertError.NotAuthorized,
      /not in the allowlist/,
    ],
    [encodeConvertMessage([]), ConvertError.MalformedMessage, /no Connect TLV/],
    [
      encodeConvertMessage([encodeConnectTlv('127.0.0.1', port), encodeConnectTlv('127.0.0.1', port)]),
      ConvertError.MalformedMessage,
      /two Connect TLVs/,
    ],
    [Buffer.from('0102000063010000', 'hex'), ConvertError.UnsupportedMessage, /unsupported TLV type 99/],
  ];
  for (const [req, code, why] of cases) {
    const { outcome, reply } = await exchange(req, { allow: ['127.0.0.2/32'] });
    assert.ok(!outcome.ok);
    assert.equal(outcome.code, code);
    assert.match(outcome.reason, why);
    assert.equal(reply[4], 30, 'an Error TLV');
    assert.equal(reply[6], code);
  }
});

test('a client that stops halfway, or never finishes within the timeout, is dropped without an answer', async () => {
  const half = encodeConvertMessage([encodeConnectTlv('127.0.0.1', 9)]).subarray(0, 10);
  const ended = await exchange(half);
  assert.deepEqual(ended.outcome, {
    ok: false,
    code: undefined,
    reason: 'the client ended after 10 bytes of a Convert message',
  });
  assert.equal(ended.reply.length, 0);
  const slow = await exchange(half, { headerTimeoutMs: 100, end: false });
  assert.equal(
    slow.outcome.ok === false && slow.outcome.reason,
    'no whole Convert message within 100 ms (10 bytes)',
  );
});

test('connect errors map to Error TLV codes', () => {
  const e = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(connectErrorCode(e('ECONNREFUSED')), ConvertError.ConnectionReset);
  assert.equal(connectErrorCode(e('ETIMEDOUT')), ConvertError.DestinationUnreachable);
  assert.equal(connectErrorCode(e('EHOSTUNREACH')), ConvertError.DestinationUnreachable);
  assert.equal(connectErrorCode(e('ENETUNREACH')), ConvertError.DestinationUnreachable);
  assert.equal(connectErrorCode(e('EMFILE')), ConvertError.NetworkFailure);
});

test('a request still being read when the server destroys the connection (drain ran out) settles at once', async () => {
  let outcome: Promise<ConvertOutcome> | undefined;
  let front: Socket | undefined;
  const arrived = new Promise<void>((resolve) => {
    void listen((f) => {
      front = f;
      outcome = acceptConvert(f, {
        allow: new Allowlist([]),
        headerTimeoutMs: 60_000,
        connectTimeoutMs: 5000,
        log,
      });
      f.once('data', () => resolve());
    }).then((port) => {
      const c = connect({ host: '127.0.0.1', port });
      c.on('error', () => undefined);
      c.write(Buffer.from('0106', 'hex'));
    });
  });
  await arrived;
  front?.destroy();
  assert.deepEqual(await outcome, {
    ok: false,
    code: undefined,
    reason: 'closed before a whole Convert message',
  });
});
