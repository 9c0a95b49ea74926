/**
 * One example of every MPTCP option form of RFC 8684 §3, with the TCP control bits of the
 * segment that would carry it. Shared by the codec and the tshark tests.
 */
import type { MptcpOption } from '../../src/stack/wire/mptcp-options.js';

export type Carrier = 'syn' | 'syn_ack' | 'ack' | 'rst';

export interface OptionForm {
  name: string;
  carrier: Carrier;
  option: MptcpOption;
  /** Payload bytes the segment carries (a mapping or MP_CAPABLE with data). */
  payload?: number;
}

const flags = {
  checksumRequired: false,
  extensibility: false,
  noJoinToSource: false,
  extensionFlags: 0,
  hmacSha256: true,
};
const keyA = 0x7e5dcc52ac440d28n;
const keyB = 0x05bd8af9ed65338an;
const v6 = (last: number) => Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);

function dss(name: string, f: number, checksum: boolean, carrier: Carrier = 'ack'): OptionForm {
  const o: MptcpOption = {
    subtype: 'dss',
    dataFin: (f & 0x10) !== 0,
    dataAck64: (f & 0x02) !== 0,
    dsn64: (f & 0x08) !== 0,
  };
  if (f & 0x01) o.dataAck = f & 0x02 ? 0x1122334455667788n : 0x11223344n;
  let payload: number | undefined;
  if (f & 0x04) {
    payload = 100;
    o.mapping = {
      dsn: f & 0x08 ? 0xa1b2c3d4e5f60718n : 0xe5f60718n,
      ssn: 1 + f,
      dataLevelLength: payload + (o.dataFin ? 1 : 0),
    };
    if (checksum) o.mapping.checksum = 0x1234 + f;
  }
  return payload === undefined ? { name, carrier, option: o } : { name, carrier, option: o, payload };
}

export const optionForms: OptionForm[] = [
  { name: 'MP_CAPABLE SYN', carrier: 'syn', option: { subtype: 'mp_capable', version: 1, ...flags } },
  {
    name: 'MP_CAPABLE SYN A+C',
    carrier: 'syn',
    option: { subtype: 'mp_capable', version: 1, ...flags, checksumRequired: true, noJoinToSource: true },
  },
  {
    name: 'MP_CAPABLE SYN B + D..G',
    carrier: 'syn',
    option: { subtype: 'mp_capable', version: 1, ...flags, extensibility: true, extensionFlags: 0b1010 },
  },
  {
    name: 'MP_CAPABLE SYN/ACK C',
    carrier: 'syn_ack',
    option: { subtype: 'mp_capable', version: 1, ...flags, noJoinToSource: true, senderKey: keyB },
  },
  {
    name: 'MP_CAPABLE ACK',
    carrier: 'ack',
    option: { subtype: 'mp_capable', version: 1, ...flags, senderKey: keyA, receiverKey: keyB },
  },
  {
    name: 'MP_CAPABLE ACK with data',
    carrier: 'ack',
    payload: 5,
    option: {
      subtype: 'mp_capable',
      version: 1,
      ...flags,
      senderKey: keyA,
      receiverKey: keyB,
      dataLevelLength: 5,
    },
  },
  {
    name: 'MP_CAPABLE ACK with data and checksum',
    carrier: 'ack',
    payload: 5,
    option: {
      subtype: 'mp_capable',
      version: 1,
      ...flags,
      checksumRequired: true,
      senderKey: keyA,
      receiverKey: keyB,
      dataLevelLength: 5,
      checksum: 0xa109,
    },
  },
  {
    name: 'MP_JOIN SYN',
    carrier: 'syn',
    option: {
      subtype: 'mp_join',
      form: 'syn',
      backup: true,
      addressId: 3,
      receiverToken: 0xe2303c62,
      senderNonce: 0x81dac4e8,
    },
  },
  {
    name: 'MP_JOIN SYN/ACK',
    carrier: 'syn_ack',
    option: {
      subtype: 'mp_join',
      form: 'syn_ack',
      backup: false,
      addressId: 1,
      senderTruncatedHmac: 0xe5051bffcabe3d79n,
      senderNonce: 0x957270f3,
    },
  },
  {
    name: 'MP_JOIN ACK',
    carrier: 'ack',
    option: {
      subtype: 'mp_join',
      form: 'ack',
      senderHmac: Uint8Array.from(Buffer.from('2065c32d4b82bed5271824864c3a30f41b982497', 'hex')),
    },
  },
  // DSS: every combination of the A a M m F flags, with and without checksum when M is set.
  ...Array.from({ length: 32 }, (_, f) => dss(`DSS flags 0x${f.toString(16).padStart(2, '0')}`, f, false)),
  ...Array.from({ length: 32 }, (_, f) => f)
    .filter((f) => f & 0x04)
    .map((f) => dss(`DSS flags 0x${f.toString(16).padStart(2, '0')} + checksum`, f, true)),
  {
    name: 'ADD_ADDR IPv4',
    carrier: 'ack',
    option: {
      subtype: 'add_addr',
      echo: false,
      addressId: 5,
      address: Uint8Array.of(10, 0, 0, 3),
      truncatedHmac: 0xa69e147f2dcc2949n,
    },
  },
  {
    name: 'ADD_ADDR IPv4 port',
    carrier: 'ack',
    option: {
      subtype: 'add_addr',
      echo: false,
      addressId: 1,
      address: Uint8Array.of(10, 0, 0, 3),
      port: 6000,
      truncatedHmac: 0x91588a7861600cf7n,
    },
  },
  {
    name: 'ADD_ADDR IPv6',
    carrier: 'ack',
    option: {
      subtype: 'add_addr',
      echo: false,
      addressId: 9,
      address: v6(3),
      truncatedHmac: 0x0102030405060708n,
    },
  },
  {
    name: 'ADD_ADDR IPv6 port',
    carrier: 'ack',
    option: {
      subtype: 'add_addr',
      echo: false,
      addressId: 9,
      address: v6(3),
      port: 8080,
      truncatedHmac: 0x8877665544332211n,
    },
  },
  {
    name: 'ADD_ADDR echo IPv4',
    carrier: 'ack',
    option: { subtype: 'add_addr', echo: true, addressId: 5, address: Uint8Array.of(10, 0, 0, 3) },
  },
  {
    name: 'ADD_ADDR echo IPv4 port',
    carrier: 'ack',
    option: {
      subtype: 'add_addr',
      echo: true,
      addressId: 1,
      address: Uint8Array.of(10, 0, 0, 3),
      port: 6000,
    },
  },
  {
    name: 'ADD_ADDR echo IPv6',
    carrier: 'ack',
    option: { subtype: 'add_addr', echo: true, addressId: 9, address: v6(3) },
  },
  {
    name: 'ADD_ADDR echo IPv6 port',
    carrier: 'ack',
    option: { subtype: 'add_addr', echo: true, addressId: 9, address: v6(3), port: 8080 },
  },
  { name: 'REMOVE_ADDR one', carrier: 'ack', option: { subtype: 'remove_addr', addressIds: [5] } },
  {
    name: 'REMOVE_ADDR many',
    carrier: 'ack',
    option: { subtype: 'remove_addr', addressIds: [1, 2, 3, 250] },
  },
  { name: 'MP_PRIO backup', carrier: 'ack', option: { subtype: 'mp_prio', backup: true } },
  { name: 'MP_PRIO clear', carrier: 'ack', option: { subtype: 'mp_prio', backup: false } },
  {
    name: 'MP_PRIO with address ID (RFC 6824)',
    carrier: 'ack',
    option: { subtype: 'mp_prio', backup: true, addressId: 7 },
  },
  { name: 'MP_FAIL', carrier: 'ack', option: { subtype: 'mp_fail', dsn: 0xa1b2c3d4e5f60718n } },
  { name: 'MP_FASTCLOSE', carrier: 'ack', option: { subtype: 'mp_fastclose', receiverKey: keyB } },
  {
    name: 'MP_TCPRST',
    carrier: 'rst',
    option: { subtype: 'mp_tcprst', flagU: false, flagV: false, flagW: false, transient: true, reason: 5 },
  },
  {
    name: 'MP_TCPRST U V W',
    carrier: 'rst',
    option: { subtype: 'mp_tcprst', flagU: true, flagV: true, flagW: true, transient: false, reason: 6 },
  },
];
