import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { EchoResponder } from '../src/proxy/echo-responder.js';
import type { Frame } from '../src/stack/device/device.js';
import { openTun } from '../src/stack/device/tun-device.js';
import { encodeIpv4, parseIpv4 } from '../src/stack/wire/ipv4.js';
import {
  encodeTcp,
  fillTcpChecksumV4,
  IP_PROTOCOL_TCP,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_SYN,
} from '../src/stack/wire/tcp.js';
import { waitForChild } from './support/child.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
let ns = '';

before(() => {
  ns = lab.add('tun');
});
after(() => lab.cleanup());

// Sends three datagrams with distinct payloads and prints what came back, as hex, one per line.
const UDP_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for i in range(3):
    payload = ('mptun-udp-%d-' % i).encode() + bytes(range(i * 50, i * 50 + 100))
    s.sendto(payload, (sys.argv[1], 7777))
    data, addr = s.recvfrom(65535)
    print(data.hex(), addr[0], addr[1])
`;

describe('TUN device against the kernel, in a private namespace', () => {
  test('the kernel ping and a UDP socket reach our responder, and its replies come back', async (t) => {
    const dev = openTun({ name: 'mpt-echo', netns: ns });
    t.after(() => dev.close());
    lab.exec(ns, 'ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'mpt-echo');
    assert.equal(dev.created, true);
    assert.equal(dev.mtu, 1500);
    const responder = new EchoResponder(dev);

    const ping = await waitForChild(
      lab.spawn(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', '-p', 'c0ffee', '-s', '64', '10.99.0.2']),
    );
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /3 packets transmitted, 3 received/);
    // ping compares every reply's data with what it sent and complains on a mismatch.
    assert.doesNotMatch(ping.stdout, /wrong data|DUP!/);
    assert.equal(responder.stats.icmpEchoReplies, 3);

    const udp = await waitForChild(lab.spawn(ns, 'python3', ['-c', UDP_CLIENT, '10.99.0.2']));
    assert.equal(udp.code, 0, udp.stderr);
    const lines = udp.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    lines.forEach((line, i) => {
      const expected = Buffer.concat([
        Buffer.from(`mptun-udp-${i}-`),
        Buffer.from(Array.from({ length: 100 }, (_, k) => i * 50 + k)),
      ]);
      assert.equal(line, `${expected.toString('hex')} 10.99.0.2 7777`);
    });
    assert.equal(responder.stats.udpEchoes, 3);
    assert.equal(dev.stats.txErrors, 0);
  });

  test('with offload, a kernel TCP flow arrives as super-packets that the codecs parse', async (t) => {
    const dev = openTun({ name: 'mpt-tso', netns: ns, offload: true });
    t.after(() => dev.close());
    assert.equal(dev.offload, true);
    lab.exec(ns, 'ip', 'addr', 'add', '10.98.0.1/24', 'dev', 'mpt-tso');
    const total = 1 << 20;
    const sink = new TinyTcpSink(dev, total);

    // Sends 1 MiB of a known pattern, half-closes and waits for our FIN.
    const client = `
import socket
s = socket.create_connection(('10.98.0.2', 5001), timeout=10)
s.sendall(bytes(i * 7 % 251 for i in range(${total})))
s.shutdown(socket.SHUT_WR)
assert s.recv(1) == b''
`;
    const run = await waitForChild(lab.spawn(ns, 'python3', ['-c', client]));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(sink.received, total);
    const expected = Buffer.from(Array.from({ length: total }, (_, i) => (i * 7) % 251));
    assert.equal(sink.sha256(), createHash('sha256').update(expected).digest('hex'));
    // The kernel handed us TSO super-packets: more data than the MTU in one frame, with the
    // segment size and checksum offsets the codecs agree with.
    assert.ok(sink.superPackets > 0, `no super-packets among ${sink.dataFrames} data frames`);
    assert.ok(sink.largestPayload > dev.mtu, `largest payload ${sink.largestPayload}`);
    assert.ok(sink.gsoSizes.size > 0 && [...sink.gsoSizes].every((s) => s > 0 && s <= dev.mtu - 40));
    assert.deepEqual(sink.problems, []);
  });
});

test('deleting the interface under an open device stops reading with an error', async (t) => {
  const dev = openTun({ name: 'mpt-gone', netns: ns });
  t.after(() => dev.close());
  const failed = new Promise<Error>((resolve) => dev.onError(resolve));
  dev.onFrames(() => assert.fail('no frames expected'));
  lab.exec(ns, 'ip', 'link', 'delete', 'mpt-gone');
  const err = await failed;
  assert.equal(err.name, 'InterfaceError');
  assert.match(
    err.message,
    /reading TUN 'mpt-gone' failed \(EBADFD?\): the interface was deleted; reading stopped/,
  );
});

/**
 * Just enough TCP, written by hand, to make the kernel send data: SYN-ACK the SYN, ACK in-order
 * data with a full window, answer the FIN with FIN-ACK. Checks each super-packet on the way.
 */
class TinyTcpSink {
  received = 0;
  superPackets = 0;
  dataFrames = 0;
  largestPayload = 0;
  readonly gsoSizes = new Set<number>();
  readonly problems: string[] = [];
  private readonly hash = createHash('sha256');
  private rcvNxt = 0;
  private sndNxt = 1000;

  constructor(
    dev: ReturnType<typeof openTun>,
    private readonly total: number,
  ) {
    dev.onFrames((frames) => {
      const out: Frame[] = [];
      for (const f of frames) this.onFrame(f, out);
      if (out.length > 0) dev.write(out);
    });
  }

  sha256(): string {
    return this.hash.digest('hex');
  }

  private onFrame(frame: Frame, out: Frame[]): void {
    const ip = parseIpv4(frame.data);
    if (!ip.ok || ip.value.protocol !== IP_PROTOCOL_TCP) return;
    const h = ip.value;
    const tcp = parseTcp(frame.data, h.headerLength, h.totalLength);
    if (!tcp.ok) {
      this.problems.push(tcp.reason);
      return;
    }
    const seg = tcp.value;
    const payloadStart = h.headerLength + seg.headerLength;
    const len = h.totalLength - payloadStart;
    const gso = frame.gso;
    if (gso === undefined) {
      this.problems.push('frame without GsoInfo on an offload device');
      return;
    }
    if (gso.gsoType === 'tcpv4') {
      this.superPackets++;
      this.gsoSizes.add(gso.gsoSize);
      if (len <= gso.gsoSize) this.problems.push(`super-packet of ${len} bytes with gsoSize ${gso.gsoSize}`);
    }
    if (len > 0) {
      this.dataFrames++;
      this.largestPayload = Math.max(this.largestPayload, len);
      // Offloaded checksums: the kernel leaves only the pseudo-header sum, at the TCP checksum.
      if (!gso.needsCsum || gso.csumStart !== h.headerLength || gso.csumOffset !== 16) {
        this.problems.push(`unexpected checksum offload fields ${JSON.stringify(gso)}`);
      }
    }
    const reply = { srcPort: seg.dstPort, dstPort: seg.srcPort, src: h.dst, dst: h.src };
    if (seg.flags & TCP_SYN) {
      this.rcvNxt = (seg.seqNumber + 1) >>> 0;
      out.push(this.segment(reply, TCP_SYN | TCP_ACK, [{ type: 'mss', mss: 1460 }]));
      this.sndNxt++; // the SYN takes one sequence number
      return;
    }
    if (len > 0 && seg.seqNumber === this.rcvNxt) {
      this.hash.update(frame.data.subarray(payloadStart, h.totalLength));
      this.received += len;
      this.rcvNxt = (this.rcvNxt + len) >>> 0;
    }
    if (seg.flags & TCP_FIN && (seg.seqNumber + len) >>> 0 === this.rcvNxt && this.received === this.total) {
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      out.push(this.segment(reply, TCP_FIN | TCP_ACK, []));
      this.sndNxt++;
      return;
    }
    if (len > 0) out.push(this.segment(reply, TCP_ACK, []));
  }

  private segment(
    r: { srcPort: number; dstPort: number; src: number; dst: number },
    flags: number,
    options: Parameters<typeof encodeTcp>[0]['options'],
  ): Frame {
    const buf = new Uint8Array(60);
    const tcpLen = encodeTcp(
      {
        srcPort: r.srcPort,
        dstPort: r.dstPort,
        seqNumber: this.sndNxt,
        ackNumber: this.rcvNxt,
        flags,
        window: 65535,
        options,
      },
      buf,
      20,
    );
    const total = 20 + tcpLen;
    encodeIpv4(
      {
        tos: 0,
        totalLength: total,
        identification: 0,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 64,
        protocol: IP_PROTOCOL_TCP,
        src: r.src,
        dst: r.dst,
        options: new Uint8Array(0),
      },
      buf,
      0,
    );
    fillTcpChecksumV4(buf, 20, total, r.src, r.dst);
    return { data: buf.subarray(0, total) };
  }
}

test('a frame handler that throws ends the process with a JS exception, not a C++ abort', async () => {
  const child = lab.spawn(ns, process.execPath, [
    '--import',
    'tsx',
    new URL('./support/throwing-tun-child.ts', import.meta.url).pathname,
    'mpt-throw',
  ]);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const ready = new Promise<void>((resolve) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) resolve();
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await ready;
  lab.exec(ns, 'ip', 'addr', 'add', '10.98.0.1/24', 'dev', 'mpt-throw');
  lab.exec(ns, 'ip', 'link', 'set', 'mpt-throw', 'up');
  // Any packet routed into the TUN reaches the handler (ping's first echo request).
  lab.spawn(ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', '10.98.0.2']);
  const { code, signal } = await exited;
  assert.equal(signal, null, `died by ${signal}: ${stderr}`);
  assert.equal(code, 1);
  assert.match(stderr, /handler failure for the test/);
  assert.doesNotMatch(stderr, /terminate called/);
});
