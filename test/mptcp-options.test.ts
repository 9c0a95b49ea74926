import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type AddAddrOption,
  encodeMptcpOption,
  type MptcpOption,
  mptcpOptionLength,
  parseMptcpOption,
} from '../src/stack/wire/mptcp-options.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const ip = (...bytes: number[]) => Uint8Array.from(bytes);
const ip6 = (s: string) => hex(s);

function parseOk(bytes: Uint8Array): MptcpOption {
  const r = parseMptcpOption(bytes);
  if (!r.ok) assert.fail(`parse failed: ${r.reason} for ${toHex(bytes)}`);
  return r.value;
}

function encode(opt: MptcpOption): Uint8Array {
  const out = new Uint8Array(mptcpOptionLength(opt));
  const n = encodeMptcpOption(opt, out, 0);
  assert.equal(n, out.length);
  return out;
}

const mpc = {
  subtype: 'mp_capable',
  version: 1,
  checksumRequired: false,
  extensibility: false,
  noJoinToSource: false,
  extensionFlags: 0,
  hmacSha256: true,
} as const;

/**
 * One fixture per option form. `kernel` ones were captured from Linux 6.18 MPTCP in a private
 * namespace (python IPPROTO_MPTCP over veth, tcpdump); the others follow the figures of
 * RFC 8684 §3 (and the forms packetdrill's mptcp scripts exercise).
 */
const fixtures: { name: string; hex: string; value: MptcpOption }[] = [
  { name: 'MP_CAPABLE SYN (kernel)', hex: '1e040101', value: { ...mpc } },
  {
    name: 'MP_CAPABLE SYN with A and C',
    hex: '1e0401a1',
    value: { ...mpc, checksumRequired: true, noJoinToSource: true },
  },
  {
    name: 'MP_CAPABLE SYN with B and the D-G extension bits',
    hex: '1e04015f',
    value: { ...mpc, extensibility: true, extensionFlags: 0xf },
  },
  {
    name: 'MP_CAPABLE SYN/ACK (kernel)',
    hex: '1e0c010105bd8af9ed65338a',
    value: { ...mpc, senderKey: 0x05bd8af9ed65338an },
  },
  {
    name: 'MP_CAPABLE SYN/ACK with C (kernel, net.mptcp.allow_join_initial_addr_port=0)',
    hex: '1e0c0121f8f9a7a7ba8c15d9',
    value: { ...mpc, noJoinToSource: true, senderKey: 0xf8f9a7a7ba8c15d9n },
  },
  {
    name: 'MP_CAPABLE third ACK with both keys (kernel)',
    hex: '1e1401017e5dcc52ac440d2805bd8af9ed65338a',
    value: { ...mpc, senderKey: 0x7e5dcc52ac440d28n, receiverKey: 0x05bd8af9ed65338an },
  },
  {
    name: 'MP_CAPABLE ACK with data-level length',
    hex: '1e1601017e5dcc52ac440d2805bd8af9ed65338a0005',
    value: { ...mpc, senderKey: 0x7e5dcc52ac440d28n, receiverKey: 0x05bd8af9ed65338an, dataLevelLength: 5 },
  },
  {
    name: 'MP_CAPABLE ACK with data-level length and checksum (kernel, checksums on)',
    hex: '1e18018172d071fd6455f76420a6ea4686f50a6a0005a109',
    value: {
      ...mpc,
      checksumRequired: true,
      senderKey: 0x72d071fd6455f764n,
      receiverKey: 0x20a6ea4686f50a6an,
      dataLevelLength: 5,
      checksum: 0xa109,
    },
  },
  {
    name: 'MP_JOIN SYN (kernel)',
    hex: '1e0c1000e2303c6281dac4e8',
    value: {
      subtype: 'mp_join',
      form: 'syn',
      backup: false,
      addressId: 0,
      receiverToken: 0xe2303c62,
      senderNonce: 0x81dac4e8,
    },
  },
  {
    name: 'MP_JOIN SYN with backup',
    hex: '1e0c1107e2303c6281dac4e8',
    value: {
      subtype: 'mp_join',
      form: 'syn',
      backup: true,
      addressId: 7,
      receiverToken: 0xe2303c62,
      senderNonce: 0x81dac4e8,
    },
  },
  {
    name: 'MP_JOIN SYN/ACK (kernel)',
    hex: '1e101001e5051bffcabe3d79957270f3',
    value: {
      subtype: 'mp_join',
      form: 'syn_ack',
      backup: false,
      addressId: 1,
      senderTruncatedHmac: 0xe5051bffcabe3d79n,
      senderNonce: 0x957270f3,
    },
  },
  {
    name: 'MP_JOIN ACK (kernel)',
    hex: '1e1810002065c32d4b82bed5271824864c3a30f41b982497',
    value: { subtype: 'mp_join', form: 'ack', senderHmac: hex('2065c32d4b82bed5271824864c3a30f41b982497') },
  },
  {
    name: 'DSS DATA_ACK 4 bytes (kernel)',
    hex: '1e0820018e591583',
    value: { subtype: 'dss', dataFin: false, dataAck64: false, dsn64: false, dataAck: 0x8e591583n },
  },
  {
    name: 'DSS DATA_ACK 8 bytes (kernel)',
    hex: '1e0c2003b8f7b4068e591588',
    value: { subtype: 'dss', dataFin: false, dataAck64: true, dsn64: false, dataAck: 0xb8f7b4068e591588n },
  },
  {
    name: 'DSS DATA_ACK 4 + 8-byte DSN mapping (kernel, first data)',
    hex: '1e16200d570d9c82b8f7b4068e591583000000010005',
    value: {
      subtype: 'dss',
      dataFin: false,
      dataAck64: false,
      dsn64: true,
      dataAck: 0x570d9c82n,
      mapping: { dsn: 0xb8f7b4068e591583n, ssn: 1, dataLevelLength: 5 },
    },
  },
  {
    name: 'DSS DATA_ACK 8 + 8-byte DSN mapping (kernel)',
    hex: '1e1a200fb8f7b4068e5915889cb430cb570d9c82000000010bb8',
    value: {
      subtype: 'dss',
      dataFin: false,
      dataAck64: true,
      dsn64: true,
      dataAck: 0xb8f7b4068e591588n,
      mapping: { dsn: 0x9cb430cb570d9c82n, ssn: 1, dataLevelLength: 3000 },
    },
  },
  {
    name: 'DSS DATA_ACK 8 + 8-byte DSN mapping + checksum (kernel, checksums on)',
    hex: '1e1c200fca71edacbd23a5e04add0606cb94c6d2000000010bb84d38',
    value: {
      subtype: 'dss',
      dataFin: false,
      dataAck64: true,
      dsn64: true,
      dataAck: 0xca71edacbd23a5e0n,
      mapping: { dsn: 0x4add0606cb94c6d2n, ssn: 1, dataLevelLength: 3000, checksum: 0x4d38 },
    },
  },
  {
    name: 'DSS DATA_FIN with a 4-byte DSN mapping',
    hex: '1e0e201412345678000003e80001',
    value: {
      subtype: 'dss',
      dataFin: true,
      dataAck64: false,
      dsn64: false,
      mapping: { dsn: 0x12345678n, ssn: 1000, dataLevelLength: 1 },
    },
  },
  {
    name: 'DSS DATA_FIN with 4-byte DSN mapping and checksum, 4-byte ack',
    hex: '1e142015aabbccdd12345678000003e80001beef',
    value: {
      subtype: 'dss',
      dataFin: true,
      dataAck64: false,
      dsn64: false,
      dataAck: 0xaabbccddn,
      mapping: { dsn: 0x12345678n, ssn: 1000, dataLevelLength: 1, checksum: 0xbeef },
    },
  },
  {
    name: 'ADD_ADDR IPv4 with port and HMAC (kernel)',
    hex: '1e1230010a000003177091588a7861600cf7',
    value: {
      subtype: 'add_addr',
      echo: false,
      addressId: 1,
      address: ip(10, 0, 0, 3),
      port: 6000,
      truncatedHmac: 0x91588a7861600cf7n,
    },
  },
  {
    name: 'ADD_ADDR IPv4 with HMAC, no port (kernel)',
    hex: '1e1030050a000003a69e147f2dcc2949',
    value: {
      subtype: 'add_addr',
      echo: false,
      addressId: 5,
      address: ip(10, 0, 0, 3),
      truncatedHmac: 0xa69e147f2dcc2949n,
    },
  },
  {
    name: 'ADD_ADDR echo IPv4 with port (kernel)',
    hex: '1e0a31010a0000031770',
    value: { subtype: 'add_addr', echo: true, addressId: 1, address: ip(10, 0, 0, 3), port: 6000 },
  },
  {
    name: 'ADD_ADDR echo IPv4 (kernel)',
    hex: '1e0831050a000003',
    value: { subtype: 'add_addr', echo: true, addressId: 5, address: ip(10, 0, 0, 3) },
  },
  {
    name: 'ADD_ADDR IPv6 with HMAC',
    hex: '1e1c3009fd000000000000000000000000000003 0102030405060708',
    value: {
      subtype: 'add_addr',
      echo: false,
      addressId: 9,
      address: ip6('fd000000000000000000000000000003'),
      truncatedHmac: 0x0102030405060708n,
    },
  },
  {
    name: 'ADD_ADDR IPv6 with port and HMAC',
    hex: '1e1e3009fd000000000000000000000000000003 1f90 0102030405060708',
    value: {
      subtype: 'add_addr',
      echo: false,
      addressId: 9,
      address: ip6('fd000000000000000000000000000003'),
      port: 8080,
      truncatedHmac: 0x0102030405060708n,
    },
  },
  {
    name: 'ADD_ADDR echo IPv6',
    hex: '1e143109fd000000000000000000000000000003',
    value: {
      subtype: 'add_addr',
      echo: true,
      addressId: 9,
      address: ip6('fd000000000000000000000000000003'),
    },
  },
  {
    name: 'ADD_ADDR echo IPv6 with port',
    hex: '1e163109fd000000000000000000000000000003 1f90',
    value: {
      subtype: 'add_addr',
      echo: true,
      addressId: 9,
      address: ip6('fd000000000000000000000000000003'),
      port: 8080,
    },
  },
  {
    name: 'REMOVE_ADDR one ID (kernel)',
    hex: '1e044005',
    value: { subtype: 'remove_addr', addressIds: [5] },
  },
  {
    name: 'REMOVE_ADDR several IDs',
    hex: '1e074001020304',
    value: { subtype: 'remove_addr', addressIds: [1, 2, 3, 4] },
  },
  {
    name: 'MP_PRIO backup (kernel, RFC 8684 form)',
    hex: '1e0351',
    value: { subtype: 'mp_prio', backup: true },
  },
  { name: 'MP_PRIO clear backup', hex: '1e0350', value: { subtype: 'mp_prio', backup: false } },
  {
    name: 'MP_PRIO with address ID (RFC 6824 form)',
    hex: '1e045107',
    value: { subtype: 'mp_prio', backup: true, addressId: 7 },
  },
  {
    name: 'MP_FAIL',
    hex: '1e0c60000102030405060708',
    value: { subtype: 'mp_fail', dsn: 0x0102030405060708n },
  },
  {
    name: 'MP_FASTCLOSE (kernel)',
    hex: '1e0c7000d42bacbe28d6debf',
    value: { subtype: 'mp_fastclose', receiverKey: 0xd42bacbe28d6debfn },
  },
  {
    name: 'MP_TCPRST no flags, unspecified (kernel)',
    hex: '1e048000',
    value: { subtype: 'mp_tcprst', flagU: false, flagV: false, flagW: false, transient: false, reason: 0 },
  },
  {
    name: 'MP_TCPRST transient, unacceptable performance',
    hex: '1e048105',
    value: { subtype: 'mp_tcprst', flagU: false, flagV: false, flagW: false, transient: true, reason: 5 },
  },
  {
    name: 'MP_TCPRST U V W T, middlebox interference',
    hex: '1e048f06',
    value: { subtype: 'mp_tcprst', flagU: true, flagV: true, flagW: true, transient: true, reason: 6 },
  },
  {
    name: 'unknown subtype 0xf (private use) kept raw',
    hex: '1e06f0001234',
    value: { subtype: 'unknown', subtypeValue: 0xf, raw: hex('1e06f0001234') },
  },
  {
    name: 'unknown subtype 9 kept raw',
    hex: '1e039f',
    value: { subtype: 'unknown', subtypeValue: 9, raw: hex('1e039f') },
  },
];

function fixture(name: string): MptcpOption {
  const f = fixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.value;
}

describe('MPTCP option fixtures', () => {
  for (const f of fixtures) {
    test(`${f.name}: parses, and encodes back byte for byte`, () => {
      const bytes = hex(f.hex);
      assert.equal(bytes[1], bytes.length, 'fixture length byte');
      assert.deepEqual(parseOk(bytes), f.value);
      assert.equal(toHex(encode(f.value)), toHex(bytes));
    });

    test(`${f.name}: every truncation fails with a reason`, () => {
      const bytes = hex(f.hex);
      for (let k = 0; k < bytes.length; k++) {
        const r = parseMptcpOption(bytes.subarray(0, k));
        assert.equal(r.ok, false, `prefix of ${k} bytes`);
        if (!r.ok) assert.match(r.reason, /^mptcp\.[a-z_.]+$/);
      }
    });
  }

  test('bytes after the option (the rest of the option list) are ignored', () => {
    assert.deepEqual(parseOk(hex('1e0820018e591583 0101080a')), fixture('DSS DATA_ACK 4 bytes (kernel)'));
  });

  test('the encoder writes at an offset and leaves the rest alone', () => {
    const out = new Uint8Array(12).fill(0xee);
    assert.equal(encodeMptcpOption({ subtype: 'mp_prio', backup: true }, out, 5), 3);
    assert.equal(toHex(out), 'eeeeeeeeee1e0351eeeeeeee');
  });

  test('reserved bits are ignored on input and sent as zero', () => {
    // DSS with every reserved bit set (byte 2 low nibble, byte 3 top 3 bits), ADD_ADDR likewise.
    assert.deepEqual(parseOk(hex('1e082fe18e591583')), fixture('DSS DATA_ACK 4 bytes (kernel)'));
    const addr = parseOk(hex('1e083f050a000003'));
    assert.equal(toHex(encode(addr)), '1e0831050a000003');
  });

  test('meaningless a / m flags (without A / M) are kept so the option round-trips', () => {
    const v = parseOk(hex('1e04200a'));
    assert.deepEqual(v, { subtype: 'dss', dataFin: false, dataAck64: true, dsn64: true });
    assert.equal(toHex(encode(v)), '1e04200a');
  });
});

describe('malformed MPTCP options fail with a stable reason', () => {
  const cases: [string, string, string][] = [
    ['empty input', '', 'mptcp.truncated'],
    ['kind only', '1e', 'mptcp.truncated'],
    ['not kind 30', '1d040101', 'mptcp.kind'],
    ['length byte 2', '1e02', 'mptcp.length'],
    ['length byte 0', '1e00', 'mptcp.length'],
    ['length byte 41 (beyond the option space)', `1e29 40 ${'01'.repeat(38)}`, 'mptcp.length'],
    ['length beyond the input', '1e0c0101', 'mptcp.truncated'],
    ['MP_CAPABLE version 0 (RFC 6824) SYN', '1e0c0081 0102030405060708', 'mptcp.mp_capable.version'],
    ['MP_CAPABLE version 2', '1e040201', 'mptcp.mp_capable.version'],
    ['MP_CAPABLE length 8', '1e0801010102030405', 'mptcp.mp_capable.length'],
    ['MP_CAPABLE length 3', '1e0301', 'mptcp.mp_capable.length'],
    ['MP_CAPABLE length 23', `1e17 0101 ${'00'.repeat(19)}`, 'mptcp.mp_capable.length'],
    ['MP_JOIN length 20', `1e14 1000 ${'00'.repeat(16)}`, 'mptcp.mp_join.length'],
    ['MP_JOIN length 3', '1e0310', 'mptcp.mp_join.length'],
    ['DSS length 3', '1e0320', 'mptcp.dss.length'],
    ['DSS A set, no room for the ack', '1e042001', 'mptcp.dss.length'],
    ['DSS a set, ack 4 bytes long', '1e0820038e591583', 'mptcp.dss.length'],
    ['DSS ack only, 2 extra bytes (checksum without mapping)', '1e0a20018e5915830000', 'mptcp.dss.length'],
    ['DSS mapping, 1 extra byte', `1e13 2004 ${'00'.repeat(15)}`, 'mptcp.dss.length'],
    ['DSS mapping, 4 extra bytes', `1e16 2004 ${'00'.repeat(18)}`, 'mptcp.dss.length'],
    [
      'ADD_ADDR echo carrying an HMAC (length 16, E=1)',
      `1e10 3105 0a000003 ${'00'.repeat(8)}`,
      'mptcp.add_addr.length',
    ],
    ['ADD_ADDR without HMAC and E=0 (RFC 6824 length 8)', '1e0830050a000003', 'mptcp.add_addr.length'],
    ['ADD_ADDR length 12', `1e0c 3005 ${'00'.repeat(8)}`, 'mptcp.add_addr.length'],
    ['ADD_ADDR length 4', '1e043005', 'mptcp.add_addr.length'],
    ['REMOVE_ADDR without an ID', '1e0340', 'mptcp.remove_addr.length'],
    ['MP_PRIO length 5', '1e0551070000', 'mptcp.mp_prio.length'],
    ['MP_FAIL length 8', '1e0860000102030405', 'mptcp.mp_fail.length'],
    ['MP_FASTCLOSE length 16', `1e10 7000 ${'00'.repeat(12)}`, 'mptcp.mp_fastclose.length'],
    ['MP_TCPRST length 3', '1e0380', 'mptcp.mp_tcprst.length'],
    ['MP_TCPRST length 5', '1e0580000000', 'mptcp.mp_tcprst.length'],
  ];
  for (const [name, bytes, reason] of cases) {
    test(name, () => {
      assert.deepEqual(parseMptcpOption(hex(bytes)), { ok: false, reason });
    });
  }
});

describe('the encoder rejects objects no option can represent', () => {
  const bad: [string, MptcpOption][] = [
    ['receiverKey without senderKey', { ...mpc, receiverKey: 1n }],
    ['checksum without dataLevelLength', { ...mpc, senderKey: 1n, receiverKey: 2n, checksum: 3 }],
    [
      'a 32-bit DSN too wide',
      { subtype: 'dss', dataFin: false, dataAck64: false, dsn64: false, dataAck: 1n << 32n },
    ],
    ['a negative key', { subtype: 'mp_fastclose', receiverKey: -1n }],
    ['a 65-bit DSN', { subtype: 'mp_fail', dsn: 1n << 64n }],
    ['an address of 5 bytes', { subtype: 'add_addr', echo: true, addressId: 1, address: new Uint8Array(5) }],
    ['no removed address', { subtype: 'remove_addr', addressIds: [] }],
    ['an address ID of 256', { subtype: 'remove_addr', addressIds: [256] }],
    ['a HMAC of 19 bytes', { subtype: 'mp_join', form: 'ack', senderHmac: new Uint8Array(19) }],
    ['a known subtype as unknown', { subtype: 'unknown', subtypeValue: 2, raw: hex('1e042000') }],
    [
      'a nonce of 2^32',
      {
        subtype: 'mp_join',
        form: 'syn',
        backup: false,
        addressId: 0,
        receiverToken: 0,
        senderNonce: 2 ** 32,
      },
    ],
  ];
  for (const [name, opt] of bad) {
    test(name, () => {
      assert.throws(() => encodeMptcpOption(opt, new Uint8Array(40), 0), RangeError);
    });
  }
  test('no room in the output buffer', () => {
    assert.throws(
      () => encodeMptcpOption(fixture('MP_CAPABLE SYN/ACK (kernel)'), new Uint8Array(11), 0),
      RangeError,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based: random valid options round-trip through encode and parse.

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

const mpCapableArb: fc.Arbitrary<MptcpOption> = fc
  .record({
    checksumRequired: fc.boolean(),
    extensibility: fc.boolean(),
    noJoinToSource: fc.boolean(),
    extensionFlags: fc.integer({ min: 0, max: 15 }),
    hmacSha256: fc.boolean(),
    form: fc.integer({ min: 0, max: 4 }),
    senderKey: u64,
    receiverKey: u64,
    dataLevelLength: u16,
    checksum: u16,
  })
  .map(({ form, senderKey, receiverKey, dataLevelLength, checksum, ...flags }) => {
    const o: MptcpOption = { subtype: 'mp_capable', version: 1, ...flags };
    if (form >= 1) o.senderKey = senderKey;
    if (form >= 2) o.receiverKey = receiverKey;
    if (form >= 3) o.dataLevelLength = dataLevelLength;
    if (form >= 4) o.checksum = checksum;
    return o;
  });

const mpJoinArb: fc.Arbitrary<MptcpOption> = fc.oneof(
  fc.record({
    subtype: fc.constant('mp_join' as const),
    form: fc.constant('syn' as const),
    backup: fc.boolean(),
    addressId: u8,
    receiverToken: u32,
    senderNonce: u32,
  }),
  fc.record({
    subtype: fc.constant('mp_join' as const),
    form: fc.constant('syn_ack' as const),
    backup: fc.boolean(),
    addressId: u8,
    senderTruncatedHmac: u64,
    senderNonce: u32,
  }),
  fc.record({
    subtype: fc.constant('mp_join' as const),
    form: fc.constant('ack' as const),
    senderHmac: fc.uint8Array({ minLength: 20, maxLength: 20 }),
  }),
);

const dssArb: fc.Arbitrary<MptcpOption> = fc
  .record({
    flags: fc.integer({ min: 0, max: 31 }),
    ack: u64,
    dsn: u64,
    ssn: u32,
    dataLevelLength: u16,
    checksum: fc.option(u16, { nil: undefined }),
  })
  .map(({ flags, ack, dsn, ssn, dataLevelLength, checksum }) => {
    const o: MptcpOption = {
      subtype: 'dss',
      dataFin: (flags & 0x10) !== 0,
      dataAck64: (flags & 0x02) !== 0,
      dsn64: (flags & 0x08) !== 0,
    };
    if (flags & 0x01) o.dataAck = o.dataAck64 ? ack : ack & 0xffff_ffffn;
    if (flags & 0x04) {
      o.mapping = { dsn: o.dsn64 ? dsn : dsn & 0xffff_ffffn, ssn, dataLevelLength };
      if (checksum !== undefined) o.mapping.checksum = checksum;
    }
    return o;
  });

const addAddrArb: fc.Arbitrary<MptcpOption> = fc
  .record({
    echo: fc.boolean(),
    addressId: u8,
    address: fc.oneof(
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
    ),
    port: fc.option(u16, { nil: undefined }),
    truncatedHmac: u64,
  })
  .map(({ echo, addressId, address, port, truncatedHmac }) => {
    const o: AddAddrOption = echo
      ? { subtype: 'add_addr', echo: true, addressId, address }
      : { subtype: 'add_addr', echo: false, addressId, address, truncatedHmac };
    if (port !== undefined) o.port = port;
    return o;
  });

const otherArb: fc.Arbitrary<MptcpOption> = fc.oneof(
  fc.record({
    subtype: fc.constant('remove_addr' as const),
    addressIds: fc.array(u8, { minLength: 1, maxLength: 37 }),
  }),
  fc.record({ subtype: fc.constant('mp_prio' as const), backup: fc.boolean() }),
  fc.record({ subtype: fc.constant('mp_prio' as const), backup: fc.boolean(), addressId: u8 }),
  fc.record({ subtype: fc.constant('mp_fail' as const), dsn: u64 }),
  fc.record({ subtype: fc.constant('mp_fastclose' as const), receiverKey: u64 }),
  fc.record({
    subtype: fc.constant('mp_tcprst' as const),
    flagU: fc.boolean(),
    flagV: fc.boolean(),
    flagW: fc.boolean(),
    transient: fc.boolean(),
    reason: u8,
  }),
  fc
    .record({
      subtypeValue: fc.integer({ min: 9, max: 15 }),
      low: fc.integer({ min: 0, max: 15 }),
      body: fc.uint8Array({ maxLength: 37 }),
    })
    .map(({ subtypeValue, low, body }): MptcpOption => {
      const raw = new Uint8Array(3 + body.length);
      raw.set([30, raw.length, (subtypeValue << 4) | low]);
      raw.set(body, 3);
      return { subtype: 'unknown', subtypeValue, raw };
    }),
);

const anyMptcpOption: fc.Arbitrary<MptcpOption> = fc.oneof(
  mpCapableArb,
  mpJoinArb,
  dssArb,
  addAddrArb,
  otherArb,
);

describe('property: parse(encode(x)) equals x', () => {
  test('for random valid options of every subtype', () => {
    fc.assert(
      fc.property(anyMptcpOption, (opt) => {
        const bytes = encode(opt);
        assert.equal(bytes[0], 30);
        assert.equal(bytes[1], bytes.length);
        assert.ok(bytes.length <= 40);
        // fc.record builds null-prototype objects; compare as plain ones.
        assert.deepEqual(parseOk(bytes), { ...opt });
      }),
      { numRuns: 20_000, seed: 8684 },
    );
  });

  test('DSS: all 32 flag combinations, with and without checksum, round-trip', () => {
    let count = 0;
    for (let flags = 0; flags < 32; flags++) {
      for (const checksum of [undefined, 0x1234]) {
        if (checksum !== undefined && !(flags & 0x04)) continue;
        const o: MptcpOption = {
          subtype: 'dss',
          dataFin: (flags & 0x10) !== 0,
          dataAck64: (flags & 0x02) !== 0,
          dsn64: (flags & 0x08) !== 0,
        };
        if (flags & 0x01) o.dataAck = flags & 0x02 ? 0x0102030405060708n : 0x01020304n;
        if (flags & 0x04) {
          o.mapping = {
            dsn: flags & 0x08 ? 0xfffffffffffffffen : 0xfffffffen,
            ssn: 0xfffffff0,
            dataLevelLength: 1460,
          };
          if (checksum !== undefined) o.mapping.checksum = checksum;
        }
        const bytes = encode(o);
        assert.equal(bytes[3], flags);
        assert.deepEqual(parseOk(bytes), o);
        count++;
      }
    }
    assert.equal(count, 48);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: random and mutated options never make the parser throw.

/** mulberry32: a small seeded PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fuzz: 120,000 random and mutated options', () => {
  test('nothing throws, rejections carry a reason, acceptances re-encode consistently', () => {
    const rand = prng(0x8684);
    const int = (n: number) => Math.floor(rand() * n);
    const seeds = fixtures.map((f) => hex(f.hex));
    const sampled = fc.sample(anyMptcpOption, { numRuns: 2000, seed: 30 }).map(encode);
    const corpus = [...seeds, ...sampled];
    const reasons = new Map<string, number>();
    let accepted = 0;
    const out = new Uint8Array(64);
    for (let i = 0; i < 120_000; i++) {
      let input: Uint8Array;
      const mode = i % 4;
      if (mode === 0) {
        // Random bytes, mostly starting like an MPTCP option.
        input = new Uint8Array(int(44));
        for (let k = 0; k < input.length; k++) input[k] = int(256);
        if (input.length > 0 && rand() < 0.9) input[0] = 30;
        if (input.length > 1 && rand() < 0.7) input[1] = int(input.length + 3);
      } else {
        input = corpus[int(corpus.length)]!.slice();
        const edits = 1 + int(3);
        for (let e = 0; e < edits; e++) {
          const what = mode === 1 ? 0 : int(4);
          if (what === 0 && input.length > 0) {
            const at = int(input.length);
            input[at] = input[at]! ^ (1 << int(8));
          } else if (what === 1 && input.length > 1) input[1] = int(44);
          else if (what === 2) input = input.subarray(0, int(input.length + 1));
          else {
            const longer = new Uint8Array(input.length + 1 + int(4));
            longer.set(input);
            longer[input.length] = int(256);
            input = longer;
          }
        }
      }
      const r = parseMptcpOption(input);
      if (r.ok) {
        accepted++;
        const n = encodeMptcpOption(r.value, out, 0);
        assert.equal(n, input[1], `re-encoded length of ${toHex(input)}`);
        assert.deepEqual(parseMptcpOption(out.subarray(0, n)), r);
      } else {
        assert.match(r.reason, /^mptcp\.[a-z_.]+$/, toHex(input));
        reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
      }
    }
    // Both outcomes are exercised, and most distinct reasons show up.
    assert.ok(accepted > 10_000, `accepted ${accepted}`);
    assert.ok(reasons.size >= 12, [...reasons.keys()].join(','));
  });
});
