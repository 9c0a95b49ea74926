import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ipPayloadOf,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  PcapWriter,
  readPcap,
} from '../src/stack/device/pcap-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'mptun-pcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// A minimal IPv4 + UDP packet (checksums are not checked here; tshark only reads it).
const udp = Uint8Array.from(
  Buffer.from('450000200001000040117cca0a0000010a000002' + '3039d431000c0000' + '41424344', 'hex'),
);

describe('pcap writer and reader', () => {
  test('writes the classic header with LINKTYPE_RAW and microsecond records', () => {
    const path = join(dir, 'a.pcap');
    const w = new PcapWriter(path);
    w.write(udp, 1_700_000_000_123_456);
    w.write(udp.subarray(0, 24), 1_700_000_001_000_000);
    w.close();
    w.close(); // idempotent
    const bytes = readFileSync(path);
    assert.equal(bytes.readUInt32LE(0), 0xa1b2c3d4);
    assert.equal(bytes.readUInt32LE(20), LINKTYPE_RAW);
    const packets = readPcap(path);
    assert.equal(packets.length, 2);
    assert.deepEqual(packets[0], {
      data: udp,
      originalLength: 32,
      timeMicros: 1_700_000_000_123_456,
      linkType: 101,
    });
    assert.equal(packets[1]!.data.length, 24);
    assert.equal(ipPayloadOf(packets[0]!), packets[0]!.data);
  });

  test('tshark reads what we write', () => {
    const path = join(dir, 'b.pcap');
    const w = new PcapWriter(path);
    w.write(udp, 1_000_000);
    w.close();
    const out = execFileSync(
      'tshark',
      ['-r', path, '-n', '-T', 'fields', '-e', 'ip.src', '-e', 'udp.dstport', '-e', 'frame.time_epoch'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    assert.equal(out.trim().split('\t').slice(0, 2).join(' '), '10.0.0.1 54321');
    assert.match(out, /\t1\.000000000/);
  });

  test('packets longer than the snap length are cut, with the original length kept', () => {
    const path = join(dir, 'c.pcap');
    const w = new PcapWriter(path, { snapLen: 16 });
    w.write(udp, 0);
    w.close();
    const [p] = readPcap(path);
    assert.equal(p!.data.length, 16);
    assert.equal(p!.originalLength, 32);
  });

  test('reads big-endian, nanosecond and Ethernet captures (as tcpdump may write)', () => {
    const header = Buffer.alloc(24);
    header.writeUInt32BE(0xa1b23c4d, 0);
    header.writeUInt16BE(2, 4);
    header.writeUInt16BE(4, 6);
    header.writeUInt32BE(65535, 16);
    header.writeUInt32BE(LINKTYPE_ETHERNET, 20);
    const frame = Buffer.concat([Buffer.alloc(12, 0xaa), Buffer.from([0x08, 0x00]), Buffer.from(udp)]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32BE(5, 0);
    rec.writeUInt32BE(123_456_789, 4);
    rec.writeUInt32BE(frame.length, 8);
    rec.writeUInt32BE(frame.length, 12);
    const arp = Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
    const rec2 = Buffer.from(rec);
    rec2.writeUInt32BE(arp.length, 8);
    rec2.writeUInt32BE(arp.length, 12);
    const path = join(dir, 'd.pcap');
    writeFileSync(path, Buffer.concat([header, rec, frame, rec2, arp]));
    const packets = readPcap(path);
    assert.equal(packets.length, 2);
    assert.equal(packets[0]!.timeMicros, 5_123_456);
    assert.deepEqual(ipPayloadOf(packets[0]!), udp);
    assert.equal(ipPayloadOf(packets[1]!), undefined);
  });

  test('rejects files that are not classic pcap', () => {
    const path = join(dir, 'e.pcap');
    writeFileSync(path, Buffer.from('0a0d0d0a000000000000000000000000000000000000000000', 'hex'));
    assert.throws(() => readPcap(path), /not a classic pcap/);
    writeFileSync(path, Buffer.alloc(3));
    assert.throws(() => readPcap(path), /too short/);
  });

  test('writing after close is an error', () => {
    const w = new PcapWriter(join(dir, 'f.pcap'));
    w.close();
    assert.throws(() => w.write(udp), /closed/);
  });
});
