/**
 * RFC 8803 Convert Protocol codec: hex fixtures for each message mptun sends or reads, round
 * trips, every truncation of a valid message (never a throw, `truncated` with what is needed),
 * malformed inputs with stable reasons and the Error TLV code to answer with; the allowlist's
 * CIDR[:PORTS] rules; the pre-shared-key authentication TLV.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Allowlist, parseAllowRule } from '../src/proxy/convert/allowlist.js';
import { authTlv, checkAuth } from '../src/proxy/convert/auth.js';
import {
  addressBytes,
  addressText,
  ConvertError,
  convertErrorName,
  encodeConnectTlv,
  encodeConvertError,
  encodeConvertMessage,
  encodeCookieTlv,
  encodeInfoTlv,
  encodeSupportedTcpExtensionsTlv,
  parseConvertMessage,
  TLV_CONNECT,
  TLV_ERROR,
  TLV_MPTUN_AUTH,
} from '../src/proxy/convert/codec.js';

const hex = (s: string) => Buffer.from(s.replaceAll(' ', ''), 'hex');

const CONNECT_V4 = '01060000 0a050050 00000000 00000000 0000ffff 0a140002';
const CONNECT_V6 = '01060000 0a0501bb 20010db8 00000000 00000000 00000001';

test('fixtures: Connect TLV to 10.20.0.2:80 (IPv4-mapped) and [2001:db8::1]:443, Info, Error', () => {
  assert.equal(
    encodeConvertMessage([encodeConnectTlv('10.20.0.2', 80)]).toString('hex'),
    hex(CONNECT_V4).toString('hex'),
  );
  assert.equal(
    encodeConvertMessage([encodeConnectTlv('2001:db8::1', 443)]).toString('hex'),
    hex(CONNECT_V6).toString('hex'),
  );
  assert.equal(encodeConvertMessage([encodeInfoTlv()]).toString('hex'), '0102000001010000');
  assert.equal(encodeConvertError(ConvertError.NotAuthorized).toString('hex'), '010200001e012000');
  assert.equal(encodeConvertMessage([]).toString('hex'), '01010000');
  assert.equal(
    encodeConvertMessage([encodeSupportedTcpExtensionsTlv([2, 3, 4, 8])]).toString('hex'),
    '010300001502000002030408',
  );
  const p = parseConvertMessage(hex(CONNECT_V4));
  assert.ok(p.ok);
  assert.equal(p.length, 24);
  assert.deepEqual(p.tlvs, [{ type: TLV_CONNECT, host: '10.20.0.2', port: 80, options: Buffer.alloc(0) }]);
  const q = parseConvertMessage(hex(CONNECT_V6));
  assert.ok(q.ok);
  assert.deepEqual(q.tlvs[0], {
    type: TLV_CONNECT,
    host: '2001:db8::1',
    port: 443,
    options: Buffer.alloc(0),
  });
  const e = parseConvertMessage(hex('010200001e016100'));
  assert.ok(e.ok);
  assert.deepEqual(e.tlvs, [
    { type: TLV_ERROR, code: ConvertError.DestinationUnreachable, value: hex('00') },
  ]);
  assert.equal(convertErrorName(97), 'destination unreachable');
  assert.equal(convertErrorName(200), 'error 200');
});

test('application data after the message is not part of it; TCP options in a Connect TLV are kept', () => {
  const msg = encodeConvertMessage([
    encodeConnectTlv('10.0.0.1', 22, hex('02040578')),
    encodeCookieTlv(hex('abcd')),
  ]);
  const p = parseConvertMessage(Buffer.concat([msg, Buffer.from('GET / HTTP/1.1\r\n')]));
  assert.ok(p.ok);
  assert.equal(p.length, msg.length);
  assert.equal(p.tlvs.length, 2);
  const c = p.tlvs[0];
  assert.ok(c !== undefined && 'options' in c);
  assert.equal(c.options.toString('hex'), '02040578');
  assert.equal(p.raw[0]?.length, 24);
});

test('every truncation of a valid message says truncated and what it needs, never throws', () => {
  const msg = Buffer.concat([hex(CONNECT_V4)]);
  for (let n = 0; n < msg.length; n++) {
    const p = parseConvertMessage(msg.subarray(0, n));
    assert.equal(p.ok, false);
    assert.ok(!p.ok && p.reason === 'truncated', `at ${n}: ${JSON.stringify(p)}`);
    assert.equal(p.need, n < 2 ? 4 : 24);
  }
});

test('malformed input: stable reasons, the Error TLV code to answer and the offset', () => {
  const cases: [string, string, number, number][] = [
    ['02020000 01010000', 'bad-version', ConvertError.UnsupportedVersion, 0],
    ['01000000', 'bad-total-length', ConvertError.MalformedMessage, 1],
    ['01020000 01000000', 'bad-tlv-length', ConvertError.MalformedMessage, 5],
    ['01020000 0a050050', 'tlv-overruns-message', ConvertError.MalformedMessage, 5],
    ['01030000 0a020050 00000000', 'bad-connect', ConvertError.MalformedMessage, 4],
    [
      '01060000 0a050000 00000000 00000000 0000ffff 0a140002',
      'bad-connect',
      ConvertError.MalformedMessage,
      4,
    ],
    ['01030000 c0020000 00000000', 'bad-auth-tlv', ConvertError.NotAuthorized, 4],
  ];
  for (const [input, reason, error, offset] of cases) {
    const p = parseConvertMessage(hex(input));
    assert.deepEqual(p, { ok: false, reason, error, offset }, input);
  }
  // An unknown TLV type parses (the converter decides: unsupported message).
  const u = parseConvertMessage(hex('01020000 63010000'));
  assert.ok(u.ok);
  assert.deepEqual(u.tlvs, [{ type: 0x63, unknown: true, value: hex('0000') }]);
});

test('random bytes never throw; whatever parses re-encodes to the same Connect TLV', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const p = parseConvertMessage(Buffer.from(bytes));
      if (p.ok) assert.ok(p.length <= bytes.length && p.length % 4 === 0);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (host, port) => {
      const p = parseConvertMessage(encodeConvertMessage([encodeConnectTlv(host, port)]));
      assert.ok(p.ok);
      const c = p.tlvs[0];
      assert.ok(c !== undefined && 'host' in c);
      assert.equal(c.port, port);
      assert.deepEqual(addressBytes(c.host), addressBytes(host));
    }),
    { numRuns: 500 },
  );
});

test('address text: IPv4-mapped back to IPv4, IPv6 compressed at the longest zero run', () => {
  assert.equal(addressText(addressBytes('192.0.2.7')), '192.0.2.7');
  assert.equal(addressText(addressBytes('fd00:0:0:1::0:2')), 'fd00:0:0:1::2');
  assert.equal(addressText(addressBytes('::')), '::');
  assert.equal(addressText(addressBytes('1:0:0:2:0:0:0:3')), '1:0:0:2::3');
  assert.equal(addressText(addressBytes('::ffff:10.1.2.3')), '10.1.2.3');
  assert.equal(addressText(addressBytes('1:2:3:4:5:6:7:8')), '1:2:3:4:5:6:7:8');
});

test('allowlist: CIDR with and without ports, ranges, IPv6 in brackets; bad rules name the fix', () => {
  const rules = [
    '10.20.0.0/24:80,443',
    '10.30.0.5:8000-8099',
    '[fd00:20::/64]:443',
    'fd00:99::/48',
    '192.0.2.1',
  ];
  const parsed = rules.map(parseAllowRule);
  const list = new Allowlist(
    parsed.map((r) => {
      assert.ok(!('error' in r), JSON.stringify(r));
      return r;
    }),
  );
  const ok: [string, number][] = [
    ['10.20.0.2', 80],
    ['10.20.0.255', 443],
    ['10.30.0.5', 8050],
    ['fd00:20::9', 443],
    ['fd00:99:0:1::1', 1],
    ['192.0.2.1', 65535],
  ];
  const refused: [string, number][] = [
    ['10.20.0.2', 81],
    ['10.20.1.2', 80],
    ['10.30.0.6', 8050],
    ['10.30.0.5', 8100],
    ['fd00:20::9', 80],
    ['fd00:98::1', 443],
    ['192.0.2.2', 80],
    ['not-an-ip', 80],
  ];
  for (const [h, p] of ok) assert.ok(list.match(h, p), `${h}:${p} allowed`);
  for (const [h, p] of refused) assert.equal(list.match(h, p), undefined, `${h}:${p} refused`);
  assert.equal(new Allowlist([]).match('10.0.0.1', 80), undefined, 'an empty list allows nothing');
  for (const [bad, why] of [
    ['10.0.0.0/33', /prefix length must be 0-32/],
    ['10.0.0.300/24', /not an IP address/],
    ['10.0.0.0/24:0', /not a port/],
    ['10.0.0.0/24:90-80', /not a port/],
    ['[fd00::/129]:1', /0-128/],
    ['example.com:80', /not an IP address/],
  ] as const) {
    const r = parseAllowRule(bad);
    assert.ok('error' in r, bad);
    assert.match(r.error, why);
    assert.match(r.error, /CIDR\[:PORTS\]/);
  }
});

test('pre-shared key: the MAC covers the Connect TLV; wrong key, other destination, stale time refused', () => {
  const key = Buffer.from('0123456789abcdef0123456789abcdef');
  const connect = encodeConnectTlv('10.20.0.2', 80);
  const now = 1_800_000_000_000;
  const msg = encodeConvertMessage([connect, authTlv(key, connect, now)]);
  const p = parseConvertMessage(msg);
  assert.ok(p.ok);
  const a = p.tlvs[1];
  assert.ok(a !== undefined && a.type === TLV_MPTUN_AUTH && 'mac' in a);
  assert.equal(p.raw[1]?.length, 44);
  assert.equal(checkAuth(key, connect, a, now + 1000), 'ok');
  assert.equal(checkAuth(Buffer.from('another key of 16+ bytes'), connect, a, now), 'bad-mac');
  assert.equal(checkAuth(key, encodeConnectTlv('10.20.0.3', 80), a, now), 'bad-mac');
  assert.equal(checkAuth(key, connect, a, now + 61_000), 'stale');
  assert.equal(checkAuth(key, connect, undefined, now), 'missing');
});
