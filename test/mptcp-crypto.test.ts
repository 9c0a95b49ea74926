import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  addAddrHmac,
  joinAckHmac,
  joinHmac,
  joinSynAckHmac,
  keyMaterial,
  mptcpIdsn,
  mptcpToken,
  randomKey,
  randomNonce,
} from '../src/stack/mptcp/crypto.js';
import { dssChecksum, verifyDssChecksum } from '../src/stack/wire/dss-checksum.js';

/*
 * Vectors from Linux 6.18 MPTCP, captured with tcpdump between two namespaces (python3
 * IPPROTO_MPTCP sockets; server with a `signal` endpoint 10.0.0.3 port 6000). Token and IDSN
 * are tshark's mptcp.expected_token / mptcp.expected_idsn for the same keys; HMACs are what the
 * kernel put on the wire.
 *
 * Capture 1 (IPv4): client key A, server key B; MP_JOIN nonces R_A (SYN) and R_B (SYN/ACK).
 */
const keyA = 9105658677062536488n; // 0x7e5dcc52ac440d28, third ACK sender key
const keyB = 413639546822275978n; // 0x05bd8af9ed65338a, SYN/ACK sender key
const nonceA = 0x81dac4e8;
const nonceB = 0x957270f3;

describe('key -> token and IDSN (RFC 8684 §3.1, §3.2)', () => {
  test('match tshark expected_token / expected_idsn for kernel keys', () => {
    assert.deepEqual(keyMaterial(keyA), { token: 2267824468, idsn: 13328319562477278594n });
    assert.deepEqual(keyMaterial(keyB), { token: 3794812002, idsn: 11291703815621680257n });
    assert.equal(mptcpToken(keyB), 3794812002);
    assert.equal(mptcpIdsn(keyA), 13328319562477278594n);
  });

  test('the token is what the kernel MP_JOIN SYN carried to the server', () => {
    // MP_JOIN SYN 1e0c1000 e2303c62 81dac4e8: receiver token = token(key B).
    assert.equal(mptcpToken(keyB), 0xe2303c62);
  });

  test('keys are hashed as 8 big-endian bytes (0 and 2^64-1 are fine)', () => {
    assert.equal(keyMaterial(0n).token, 0xaf5570f5);
    assert.ok(keyMaterial(0xffff_ffff_ffff_ffffn).idsn < 1n << 64n);
  });
});

describe('MP_JOIN HMAC (RFC 8684 §3.2)', () => {
  test('SYN/ACK truncated HMAC of the responder = leftmost 64 bits of HMAC(KeyB||KeyA, R_B||R_A)', () => {
    assert.equal(joinSynAckHmac(keyB, keyA, nonceB, nonceA), 0xe5051bffcabe3d79n);
  });

  test('third ACK HMAC of the initiator = leftmost 160 bits of HMAC(KeyA||KeyB, R_A||R_B)', () => {
    assert.equal(
      Buffer.from(joinAckHmac(keyA, keyB, nonceA, nonceB)).toString('hex'),
      '2065c32d4b82bed5271824864c3a30f41b982497',
    );
  });

  test('the full HMAC is 32 bytes and its prefixes are the carried values', () => {
    const full = joinHmac(keyB, keyA, nonceB, nonceA);
    assert.equal(full.length, 32);
    assert.equal(full.readBigUInt64BE(0), 0xe5051bffcabe3d79n);
  });
});

describe('ADD_ADDR HMAC (RFC 8684 §3.4.1)', () => {
  test('IPv4 with port: rightmost 64 bits of HMAC(KeyB||KeyA, id||addr||port) (kernel)', () => {
    // Server (B) announced id 1, 10.0.0.3 port 6000: 1e12 3001 0a000003 1770 91588a7861600cf7.
    assert.equal(addAddrHmac(keyB, keyA, 1, Uint8Array.of(10, 0, 0, 3), 6000), 0x91588a7861600cf7n);
  });

  test('IPv4 without port: the message still ends in two zero bytes (kernel)', () => {
    // Capture 2 (IPv6 connection): 1e10 3005 0a000003 a69e147f2dcc2949.
    const serverKey = 0xcea8debc213e96aen;
    const clientKey = 0xd42bacbe28d6debfn;
    assert.equal(addAddrHmac(serverKey, clientKey, 5, Uint8Array.of(10, 0, 0, 3)), 0xa69e147f2dcc2949n);
  });

  test('from a server that sets flag C (kernel, allow_join_initial_addr_port=0)', () => {
    // SYN/ACK 1e0c0121 f8f9a7a7ba8c15d9, third ACK sender key 235a149e00ee48c4,
    // ADD_ADDR 1e10 3001 0a000003 79ba3f63b8a27b02.
    assert.equal(
      addAddrHmac(0xf8f9a7a7ba8c15d9n, 0x235a149e00ee48c4n, 1, Uint8Array.of(10, 0, 0, 3)),
      0x79ba3f63b8a27b02n,
    );
  });

  test('IPv6: same layout with 16 address bytes', () => {
    const addr = Buffer.from('fd000000000000000000000000000003', 'hex');
    const key = Buffer.from('05bd8af9ed65338a7e5dcc52ac440d28', 'hex');
    const msg = Buffer.concat([Buffer.of(9), addr, Buffer.of(0x1f, 0x90)]);
    const expected = createHmac('sha256', key).update(msg).digest().readBigUInt64BE(24);
    assert.equal(addAddrHmac(keyB, keyA, 9, addr, 8080), expected);
    const noPort = createHmac('sha256', key)
      .update(Buffer.concat([Buffer.of(9), addr, Buffer.of(0, 0)]))
      .digest()
      .readBigUInt64BE(24);
    assert.equal(addAddrHmac(keyB, keyA, 9, addr), noPort);
  });

  test('an address of the wrong size is API misuse', () => {
    assert.throws(() => addAddrHmac(keyA, keyB, 1, new Uint8Array(5)), RangeError);
  });
});

describe('DSS checksum (RFC 8684 §3.3.1)', () => {
  test('MP_CAPABLE with data (kernel, checksums on): DSN = IDSN+1, SSN 1', () => {
    // 1e18 0181 72d071fd6455f764 20a6ea4686f50a6a 0005 a109, payload "hello".
    const idsn = mptcpIdsn(0x72d071fd6455f764n);
    const dsn = BigInt.asUintN(64, idsn + 1n);
    const payload = Buffer.from('hello');
    assert.equal(dssChecksum(dsn, 1, 5, payload), 0xa109);
    assert.ok(verifyDssChecksum(0xa109, dsn, 1, 5, payload));
    assert.ok(!verifyDssChecksum(0xa108, dsn, 1, 5, payload));
  });

  test('DSS mapping of 3000 bytes (kernel, checksums on)', () => {
    // 1e1c 200f ca71edacbd23a5e0 4add0606cb94c6d2 00000001 0bb8 4d38, payload 3000 x "y".
    const payload = Buffer.alloc(3000, 'y');
    assert.equal(dssChecksum(0x4add0606cb94c6d2n, 1, 3000, payload), 0x4d38);
    assert.ok(verifyDssChecksum(0x4d38, 0x4add0606cb94c6d2n, 1, 3000, payload));
    // A flipped payload bit, a wrong SSN or DSN is caught.
    const bad = Buffer.from(payload);
    bad[1234] = 0x79 ^ 0x10;
    assert.ok(!verifyDssChecksum(0x4d38, 0x4add0606cb94c6d2n, 1, 3000, bad));
    assert.ok(!verifyDssChecksum(0x4d38, 0x4add0606cb94c6d2n, 2, 3000, payload));
    assert.ok(!verifyDssChecksum(0x4d38, 0x4add0606cb94c6d3n, 1, 3000, payload));
  });

  test('a payload range inside a bigger buffer', () => {
    const buf = Buffer.concat([Buffer.alloc(7, 0xaa), Buffer.from('hello'), Buffer.alloc(3, 0xbb)]);
    const dsn = BigInt.asUintN(64, mptcpIdsn(0x72d071fd6455f764n) + 1n);
    assert.equal(dssChecksum(dsn, 1, 5, buf, 7, 12), 0xa109);
  });
});

test('random keys and nonces are in range and vary', () => {
  const keys = new Set(Array.from({ length: 16 }, () => randomKey()));
  assert.ok(keys.size > 1);
  for (const k of keys) assert.ok(k >= 0n && k < 1n << 64n);
  const n = randomNonce();
  assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff);
});
