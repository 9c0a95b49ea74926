import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GsoInfo } from '../src/stack/device/device.js';
import { pseudoHeaderSumV4 } from '../src/stack/wire/checksum.js';
import { encodeIcmpEcho, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, parseIcmpEcho } from '../src/stack/wire/icmp.js';
import { ipv4FromString } from '../src/stack/wire/ipv4.js';
import { encodeUdp, IPPROTO_UDP, parseUdp } from '../src/stack/wire/udp.js';
import {
  emptyGsoInfo,
  encodeVirtioNetHdr,
  parseVirtioNetHdr,
  VIRTIO_NET_HDR_LEN,
} from '../src/stack/wire/virtio-net-hdr.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('ICMP echo', () => {
  // An echo request: id 0x1234, sequence 1, data 'abcd'; the checksum is the RFC 1071 sum.
  const request = hex('08 00 0000 1234 0001 61626364');
  const sum = 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364;
  const checksum = ~((sum & 0xffff) + (sum >>> 16)) & 0xffff;
  request[2] = checksum >> 8;
  request[3] = checksum & 0xff;

  test('parses a request, with its data as a view', () => {
    const r = parseIcmpEcho(request);
    assert.ok(r.ok);
    assert.equal(r.value.type, ICMP_ECHO_REQUEST);
    assert.equal(r.value.identifier, 0x1234);
    assert.equal(r.value.sequence, 1);
    assert.deepEqual([...r.value.data], [0x61, 0x62, 0x63, 0x64]);
  });

  test('encodes the reply: same id, sequence and data, checksum valid', () => {
    const out = new Uint8Array(12);
    const r = parseIcmpEcho(request);
    assert.ok(r.ok);
    assert.equal(encodeIcmpEcho({ ...r.value, type: ICMP_ECHO_REPLY }, out), 12);
    assert.deepEqual(out.subarray(4), request.subarray(4));
    assert.equal(out[0], 0);
    // Type 8 -> 0 changes the sum by 0x0800 exactly.
    assert.equal((out[2]! << 8) | out[3]!, (checksum + 0x0800) % 0xffff);
    assert.ok(parseIcmpEcho(out).ok);
  });

  test('rejects truncated, corrupted and non-echo messages with a reason', () => {
    assert.deepEqual(parseIcmpEcho(request.subarray(0, 7)), { ok: false, reason: 'icmp.truncated' });
    const bad = request.slice();
    bad[9]! ^= 1;
    assert.deepEqual(parseIcmpEcho(bad), { ok: false, reason: 'icmp.bad-checksum' });
    assert.ok(parseIcmpEcho(bad, 0, bad.length, false).ok, 'checksum not verified when offloaded');
    assert.deepEqual(parseIcmpEcho(hex('0301 0000 00000000')), { ok: false, reason: 'icmp.not-echo' });
    assert.deepEqual(parseIcmpEcho(hex('0801 0000 00000000')), { ok: false, reason: 'icmp.bad-code' });
    assert.deepEqual(parseIcmpEcho(request, 0, 100), { ok: false, reason: 'icmp.truncated' });
  });
});

describe('UDP', () => {
  const src = ipv4FromString('10.0.0.1');
  const dst = ipv4FromString('10.0.0.2');

  test('encode then parse round-trips, with a checksum that verifies', () => {
    const out = new Uint8Array(8 + 5);
    out.set(Buffer.from('hello'), 8);
    const pseudo = pseudoHeaderSumV4(src, dst, IPPROTO_UDP, out.length);
    assert.equal(encodeUdp({ srcPort: 53, dstPort: 40000 }, 5, pseudo, out), 8);
    assert.deepEqual([...out.subarray(0, 6)], [0, 53, 0x9c, 0x40, 0, 13]);
    const r = parseUdp(out, 0, out.length, pseudo);
    assert.ok(r.ok);
    assert.equal(r.value.srcPort, 53);
    assert.equal(r.value.dstPort, 40000);
    assert.equal(Buffer.from(r.value.payload).toString(), 'hello');
  });

  test('rejects bad input with a reason; zero checksum means none', () => {
    const d = hex('0035 9c40 000d 0000 68656c6c6f');
    const pseudo = pseudoHeaderSumV4(src, dst, IPPROTO_UDP, d.length);
    assert.ok(parseUdp(d, 0, d.length, pseudo).ok, 'checksum 0: not checked');
    d[6] = 0x12;
    assert.deepEqual(parseUdp(d, 0, d.length, pseudo), { ok: false, reason: 'udp.bad-checksum' });
    assert.deepEqual(parseUdp(d.subarray(0, 7)), { ok: false, reason: 'udp.truncated' });
    assert.deepEqual(parseUdp(hex('0035 9c40 0007 0000')), { ok: false, reason: 'udp.bad-length' });
    assert.deepEqual(parseUdp(hex('0035 9c40 0020 0000')), { ok: false, reason: 'udp.truncated' });
  });
});

describe('virtio-net header', () => {
  test('parses what the kernel hands us for a TSO super-packet', () => {
    // flags NEEDS_CSUM, gso TCPV4, hdr_len 66, gso_size 1448, csum_start 20, csum_offset 16
    const h = hex('01 01 4200 a805 1400 1000');
    const out = emptyGsoInfo();
    assert.equal(parseVirtioNetHdr(new DataView(h.buffer), 0, out), undefined);
    assert.deepEqual(out, {
      needsCsum: true,
      dataValid: false,
      gsoType: 'tcpv4',
      hdrLen: 66,
      gsoSize: 1448,
      csumStart: 20,
      csumOffset: 16,
    } satisfies GsoInfo);
    const again = new Uint8Array(VIRTIO_NET_HDR_LEN);
    encodeVirtioNetHdr(out, new DataView(again.buffer), 0);
    assert.deepEqual(again, h);
  });

  test('tcpv6, the ECN bit, DATA_VALID, and what we refuse', () => {
    const out = emptyGsoInfo();
    const view = (s: string) => new DataView(hex(s).buffer);
    assert.equal(parseVirtioNetHdr(view('02 84 0000 0000 0000 0000'), 0, out), undefined);
    assert.equal(out.gsoType, 'tcpv6');
    assert.equal(out.dataValid, true);
    assert.equal(parseVirtioNetHdr(view('00 05 0000 0000 0000 0000'), 0, out), 'vnet-hdr-gso-type');
    assert.equal(parseVirtioNetHdr(view('00 00 0000'), 0, out), 'vnet-hdr-truncated');
    const zero = new Uint8Array(VIRTIO_NET_HDR_LEN).fill(7);
    encodeVirtioNetHdr(undefined, new DataView(zero.buffer), 0);
    assert.deepEqual([...zero], new Array(VIRTIO_NET_HDR_LEN).fill(0));
  });
});
