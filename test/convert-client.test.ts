/**
 * The client's helpers of RFC 8803 (src/proxy/convert/client.ts): the request bytes (fixture),
 * with Info and authentication TLVs accepted by the server's parser and checker, and every kind
 * of reply the converter sends read back, including split across reads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkAuth } from '../src/proxy/convert/auth.js';
import { convertRequest, parseConvertReply } from '../src/proxy/convert/client.js';
import {
  ConvertError,
  encodeConvertError,
  encodeConvertMessage,
  encodeSupportedTcpExtensionsTlv,
  parseConvertMessage,
  TLV_CONNECT,
  TLV_INFO,
  TLV_MPTUN_AUTH,
} from '../src/proxy/convert/codec.js';

test('request: header + Connect TLV (fixture); Info first when asked; authentication the server accepts', () => {
  assert.equal(
    convertRequest({ host: '10.20.0.2', port: 80 }).toString('hex'),
    '010600000a05005000000000000000000000ffff0a140002',
  );
  const key = Buffer.from('0123456789abcdef-key');
  const req = convertRequest({ host: 'fd00::5', port: 443 }, { key, info: true, nowMs: 1_000_000 });
  const p = parseConvertMessage(req);
  assert.ok(p.ok);
  assert.deepEqual(
    p.tlvs.map((t) => t.type),
    [TLV_INFO, TLV_CONNECT, TLV_MPTUN_AUTH],
  );
  const auth = p.tlvs[2];
  assert.ok(auth !== undefined && 'mac' in auth);
  assert.equal(checkAuth(key, p.raw[1] ?? Buffer.alloc(0), auth, 1_000_500), 'ok');
});

test('replies: connected (with extensions), each error, truncated at every length, malformed', () => {
  const bare = Buffer.concat([encodeConvertMessage([]), Buffer.from('data')]);
  assert.deepEqual(parseConvertReply(bare), { state: 'connected', length: 4 });
  const ext = encodeConvertMessage([encodeSupportedTcpExtensionsTlv([2, 3, 4, 8])]);
  assert.deepEqual(parseConvertReply(ext), { state: 'connected', length: 12, extensions: [2, 3, 4, 8] });
  assert.deepEqual(parseConvertReply(encodeConvertError(ConvertError.NotAuthorized)), {
    state: 'error',
    length: 8,
    code: 32,
    name: 'not authorized',
  });
  assert.equal(
    (parseConvertReply(encodeConvertError(ConvertError.DestinationUnreachable)) as { name: string }).name,
    'destination unreachable',
  );
  for (let n = 0; n < ext.length; n++) assert.equal(parseConvertReply(ext.subarray(0, n)).state, 'truncated');
  assert.deepEqual(parseConvertReply(Buffer.from('HTTP/1.1 200 OK')), {
    state: 'malformed',
    reason: 'bad-version',
  });
});
