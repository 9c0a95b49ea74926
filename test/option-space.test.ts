import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MptcpOption } from '../src/stack/wire/mptcp-options.js';
import {
  fitsOnPureAck,
  mptcpOptionSpace,
  type OptionRequest,
  optionSpace,
  planOptions,
  TCP_OPTION_SPACE,
} from '../src/stack/wire/option-space.js';

const v6 = new Uint8Array(16).fill(0xfd);
const addAddr6Port: MptcpOption = {
  subtype: 'add_addr',
  echo: false,
  addressId: 2,
  address: v6,
  port: 443,
  truncatedHmac: 1n,
};
const addAddr6: MptcpOption = {
  subtype: 'add_addr',
  echo: false,
  addressId: 2,
  address: v6,
  truncatedHmac: 1n,
};
const dssFull: MptcpOption = {
  subtype: 'dss',
  dataFin: false,
  dataAck64: true,
  dsn64: true,
  dataAck: 1n,
  mapping: { dsn: 2n, ssn: 3, dataLevelLength: 1400 },
};
const dssFullChecksum: MptcpOption = {
  ...dssFull,
  mapping: { dsn: 2n, ssn: 3, dataLevelLength: 1400, checksum: 7 },
};
const ts: OptionRequest = { kind: 'timestamps' };
const mptcp = (option: MptcpOption): OptionRequest => ({ kind: 'mptcp', option });

describe('option space', () => {
  test('aligned sizes', () => {
    assert.equal(optionSpace(ts), 12);
    assert.equal(optionSpace({ kind: 'sack', blocks: 3 }), 28);
    assert.equal(optionSpace({ kind: 'sack_permitted' }), 4);
    assert.equal(optionSpace({ kind: 'sack_permitted' }, true), 0);
    assert.equal(mptcpOptionSpace(addAddr6Port), 32); // 30 bytes
    assert.equal(mptcpOptionSpace(addAddr6), 28);
    assert.equal(mptcpOptionSpace(dssFull), 28); // 26 bytes
    assert.equal(mptcpOptionSpace(dssFullChecksum), 28);
  });

  test('an IPv6 ADD_ADDR with port and HMAC does not fit beside timestamps', () => {
    const plan = planOptions([ts, mptcp(addAddr6Port)]);
    assert.deepEqual(plan.included, [ts]);
    assert.deepEqual(plan.separate, [addAddr6Port]);
    assert.deepEqual(plan.dropped, []);
    assert.equal(plan.bytes, 12);
    // Not even on a pure ACK of its own while timestamps are in use; without them it fits.
    assert.equal(fitsOnPureAck(addAddr6Port, true), false);
    assert.equal(fitsOnPureAck(addAddr6Port, false), true);
  });

  test('an IPv6 ADD_ADDR without port fits beside timestamps exactly (what Linux does: 12 + 28)', () => {
    const plan = planOptions([ts, mptcp(addAddr6)]);
    assert.equal(plan.bytes, TCP_OPTION_SPACE);
    assert.deepEqual(plan.separate, []);
    assert.equal(fitsOnPureAck(addAddr6, true), true);
  });

  test('timestamps + a full 64-bit DSS (with or without checksum) use all 40 bytes', () => {
    for (const dss of [dssFull, dssFullChecksum]) {
      const plan = planOptions([ts, mptcp(dss)]);
      assert.equal(plan.bytes, 40);
      assert.equal(plan.included.length, 2);
    }
  });

  test('ADD_ADDR beside DSS and timestamps goes to a separate pure ACK', () => {
    const addAddr4: MptcpOption = {
      subtype: 'add_addr',
      echo: false,
      addressId: 1,
      address: Uint8Array.of(10, 0, 0, 3),
      truncatedHmac: 1n,
    };
    const plan = planOptions([ts, mptcp(dssFull), mptcp(addAddr4)]);
    assert.deepEqual(plan.separate, [addAddr4]);
    assert.equal(plan.bytes, 40);
  });

  test('SACK blocks are trimmed to what fits, and dropped if none does', () => {
    const dss8: MptcpOption = { subtype: 'dss', dataFin: false, dataAck64: true, dsn64: false, dataAck: 5n };
    const plan = planOptions([ts, mptcp(dss8), { kind: 'sack', blocks: 4 }]);
    // 12 + 12 leaves 16: one block (4 + 8).
    assert.deepEqual(plan.included.at(-1), { kind: 'sack', blocks: 1 });
    assert.equal(plan.bytes, 36);
    const none = planOptions([ts, mptcp(dssFull), { kind: 'sack', blocks: 2 }]);
    assert.deepEqual(none.dropped, [{ kind: 'sack', blocks: 2 }]);
  });

  test('a DSS mapping that does not fit is dropped, not deferred (the caller must size segments)', () => {
    const sack3: OptionRequest = { kind: 'sack', blocks: 3 };
    const plan = planOptions([ts, sack3, mptcp(dssFull)]);
    assert.deepEqual(plan.dropped, [mptcp(dssFull)]);
    assert.deepEqual(plan.separate, []);
  });

  test('SYN: MSS, SACK-permitted packed with timestamps, window scale and MP_CAPABLE / MP_JOIN', () => {
    const mpc: MptcpOption = {
      subtype: 'mp_capable',
      version: 1,
      checksumRequired: false,
      extensibility: false,
      noJoinToSource: false,
      extensionFlags: 0,
      hmacSha256: true,
    };
    const join: MptcpOption = {
      subtype: 'mp_join',
      form: 'syn',
      backup: false,
      addressId: 1,
      receiverToken: 1,
      senderNonce: 2,
    };
    const syn = (o: MptcpOption): OptionRequest[] => [
      { kind: 'mss' },
      { kind: 'sack_permitted' },
      ts,
      { kind: 'window_scale' },
      mptcp(o),
    ];
    assert.equal(planOptions(syn(mpc)).bytes, 24); // what Linux sends: 4 + 12 + 4 + 4
    assert.equal(planOptions(syn(join)).bytes, 32);
    // SACK-permitted after timestamps still packs into their padding.
    assert.equal(planOptions([ts, { kind: 'sack_permitted' }]).bytes, 12);
    // Without timestamps it costs 4.
    assert.equal(planOptions([{ kind: 'sack_permitted' }, { kind: 'mss' }]).bytes, 8);
  });

  test('a smaller budget (e.g. room already taken by other options) is honoured', () => {
    const plan = planOptions([mptcp(dssFull)], 20);
    assert.deepEqual(plan.dropped, [mptcp(dssFull)]);
    assert.equal(plan.bytes, 0);
  });
});
