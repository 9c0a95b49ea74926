/**
 * Golden vectors from the Linux kernel's MPTCP (must-show 3): capture two kernel sockets talking
 * MPTCP in private namespaces (test/support/kernel-capture.ts), then parse every packet with our
 * codecs, re-emit its IP and TCP headers byte for byte, and check our crypto against what the
 * kernel sent and what tshark derives: token and IDSN (tshark's mptcp.expected_token /
 * expected_idsn), the MP_JOIN tokens and HMACs, the ADD_ADDR HMAC, DSS checksums and the first
 * DSN of each direction.
 *
 * The same checks run on test/fixtures/kernel-mptcp.pcap, a capture kept in the repository so
 * codec tests can use kernel packets offline. Refresh it with
 * `MPTUN_UPDATE_FIXTURES=1 node scripts/run-tests.js test/kernel-golden.test.ts`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ipPayloadOf, readPcap } from '../src/stack/device/pcap-writer.js';
import {
  addAddrHmac,
  joinAckHmac,
  joinSynAckHmac,
  mptcpIdsn,
  mptcpToken,
} from '../src/stack/mptcp/crypto.js';
import { verifyDssChecksum } from '../src/stack/wire/dss-checksum.js';
import { encodeIpv4, type Ipv4Header, ipv4ToString, parseIpv4 } from '../src/stack/wire/ipv4.js';
import type {
  AddAddrOption,
  DssOption,
  MpCapableOption,
  MpJoinAckOption,
  MpJoinSynAckOption,
  MpJoinSynOption,
  MptcpOption,
} from '../src/stack/wire/mptcp-options.js';
import { encodeTcp, parseTcp, TCP_ACK, TCP_SYN, type TcpHeader } from '../src/stack/wire/tcp.js';
import { CAPTURE, captureKernelMptcp } from './support/kernel-capture.js';
import { NetnsLab } from './support/netns.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/kernel-mptcp.pcap', import.meta.url));
const IPPROTO_TCP = 6;

interface Segment {
  /** tshark's frame.number (1-based position in the file). */
  frame: number;
  ip: Ipv4Header;
  tcp: TcpHeader;
  /** The IP packet up to its total length. */
  bytes: Uint8Array;
  payload: Uint8Array;
  src: string;
  dst: string;
  mptcp: MptcpOption[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Reads a capture; every IPv4/TCP packet must parse, and nothing else but the marker may be there. */
function loadSegments(path: string): { segments: Segment[]; others: number } {
  const segments: Segment[] = [];
  let others = 0;
  readPcap(path).forEach((record, i) => {
    const frame = i + 1;
    const packet = ipPayloadOf(record);
    assert.ok(packet !== undefined, `frame ${frame}: not an IP packet`);
    const ip = parseIpv4(packet);
    assert.ok(ip.ok, `frame ${frame}: IPv4 rejected: ${ip.ok ? '' : ip.reason}`);
    if (ip.value.protocol !== IPPROTO_TCP) {
      others++;
      return;
    }
    const bytes = packet.subarray(0, ip.value.totalLength);
    const tcp = parseTcp(bytes, ip.value.headerLength, bytes.length);
    assert.ok(tcp.ok, `frame ${frame}: TCP rejected: ${tcp.ok ? '' : tcp.reason}`);
    const mptcp: MptcpOption[] = [];
    for (const option of tcp.value.options) {
      assert.notEqual(
        option.type,
        'mptcp-invalid',
        `frame ${frame}: MPTCP option rejected: ${option.type === 'mptcp-invalid' ? `${option.reason} ${hex(option.raw)}` : ''}`,
      );
      if (option.type === 'mptcp') mptcp.push(option.option);
    }
    segments.push({
      frame,
      ip: ip.value,
      tcp: tcp.value,
      bytes,
      payload: bytes.subarray(ip.value.headerLength + tcp.value.headerLength),
      src: ipv4ToString(ip.value.src),
      dst: ipv4ToString(ip.value.dst),
      mptcp,
    });
  });
  return { segments, others };
}

/** Re-emits IP + TCP headers from the parsed form: must be the captured bytes exactly. */
function checkReEmit(segments: Segment[]): void {
  for (const s of segments) {
    const headerLength = s.ip.headerLength + s.tcp.headerLength;
    const out = new Uint8Array(headerLength);
    const ipLen = encodeIpv4(s.ip, out, 0);
    const tcpLen = encodeTcp(s.tcp, out, ipLen);
    assert.equal(ipLen + tcpLen, headerLength, `frame ${s.frame}: header length`);
    assert.equal(
      hex(out),
      hex(s.bytes.subarray(0, headerLength)),
      `frame ${s.frame}: re-emitted headers differ`,
    );
  }
}

const isMpc = (o: MptcpOption): o is MpCapableOption => o.subtype === 'mp_capable';
const isDss = (o: MptcpOption): o is DssOption => o.subtype === 'dss';
const isAddAddr = (o: MptcpOption): o is AddAddrOption => o.subtype === 'add_addr';
const isJoinSyn = (o: MptcpOption): o is MpJoinSynOption => o.subtype === 'mp_join' && o.form === 'syn';
const isJoinSynAck = (o: MptcpOption): o is MpJoinSynAckOption =>
  o.subtype === 'mp_join' && o.form === 'syn_ack';
const isJoinAck = (o: MptcpOption): o is MpJoinAckOption => o.subtype === 'mp_join' && o.form === 'ack';

function find<T extends MptcpOption>(s: Segment, is: (o: MptcpOption) => o is T): T | undefined {
  return s.mptcp.find(is);
}

/** Segments (in capture order) carrying an option of a kind, with that option. */
function withOption<T extends MptcpOption>(
  segments: Segment[],
  is: (o: MptcpOption) => o is T,
): [Segment, T][] {
  return segments.flatMap((s) => {
    const o = find(s, is);
    return o === undefined ? [] : [[s, o] as [Segment, T]];
  });
}

/** A subflow keyed by its initiator's side: "10.77.1.1:39486>10.77.1.2:40001". */
const flowKey = (s: Segment) => `${s.src}:${s.tcp.srcPort}>${s.dst}:${s.tcp.dstPort}`;
const reverseKey = (s: Segment) => `${s.dst}:${s.tcp.dstPort}>${s.src}:${s.tcp.srcPort}`;
const flags = (s: Segment) => s.tcp.flags & (TCP_SYN | TCP_ACK);

interface Connection {
  /** The initial subflow, initiator side. */
  flow: string;
  clientKey: bigint;
  serverKey: bigint;
  checksums: boolean;
}

/** Keys of each MPTCP connection, from the MP_CAPABLE handshakes. */
function connections(segments: Segment[]): Connection[] {
  const out: Connection[] = [];
  for (const [syn, opt] of withOption(segments, isMpc)) {
    if (flags(syn) !== TCP_SYN) continue;
    assert.equal(opt.senderKey, undefined, 'v1 MP_CAPABLE SYN carries no key');
    const flow = flowKey(syn);
    const synAck = segments.find((s) => flags(s) === (TCP_SYN | TCP_ACK) && reverseKey(s) === flow);
    const serverKey = synAck && find(synAck, isMpc)?.senderKey;
    const ack = segments.find(
      (s) => flags(s) === TCP_ACK && flowKey(s) === flow && find(s, isMpc) !== undefined,
    );
    const ackOpt = ack && find(ack, isMpc);
    assert.ok(serverKey !== undefined && ackOpt?.senderKey !== undefined, `handshake of ${flow} incomplete`);
    assert.equal(ackOpt.receiverKey, serverKey, 'third ACK echoes the server key');
    out.push({ flow, clientKey: ackOpt.senderKey, serverKey, checksums: opt.checksumRequired });
  }
  return out;
}

function tshark(path: string, ...args: string[]): string {
  return execFileSync('tshark', ['-r', path, '-o', 'mptcp.analyze_mptcp:TRUE', ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** All the checks, on a fresh capture or the fixture. */
/**
 * `fresh`: a capture just made. The kernel sends 4-byte DATA_ACKs only until it has seen the
 * peer's first 8-byte DSN, so whether a fresh capture holds one depends on ACK timing (one CI run
 * on a loaded machine had none); the fixture is checked for both forms.
 */
function checkCapture(path: string, fresh = false): void {
  const { segments, others } = loadSegments(path);
  assert.equal(others, 1, 'only the UDP end marker besides TCP');
  assert.ok(segments.length > 40, `only ${segments.length} TCP segments captured`);

  // 1. Every packet's IP and TCP headers, options included, re-emitted byte for byte.
  checkReEmit(segments);

  // 2. The option forms the kernel uses are all there.
  const mpc = withOption(segments, isMpc);
  const mpcForm = (f: number, keys: number, data: boolean, csum: boolean) =>
    mpc.some(
      ([s, o]) =>
        flags(s) === f &&
        [o.senderKey, o.receiverKey].filter((k) => k !== undefined).length === keys &&
        (o.dataLevelLength !== undefined) === data &&
        (o.checksum !== undefined) === csum,
    );
  assert.ok(mpcForm(TCP_SYN, 0, false, false), 'MP_CAPABLE SYN');
  assert.ok(mpcForm(TCP_SYN | TCP_ACK, 1, false, false), 'MP_CAPABLE SYN/ACK');
  assert.ok(mpcForm(TCP_ACK, 2, false, false), 'MP_CAPABLE third ACK');
  assert.ok(mpcForm(TCP_ACK, 2, true, true), 'MP_CAPABLE ACK with data and checksum');
  assert.ok(
    mpc.every(([, o]) => o.version === 1 && o.hmacSha256),
    'version 1, HMAC-SHA256',
  );
  const dss = withOption(segments, isDss);
  assert.ok(
    dss.some(([, o]) => o.mapping !== undefined && o.dataAck !== undefined && !o.dataFin),
    'DSS mapping + DATA_ACK',
  );
  assert.ok(
    dss.some(([, o]) => o.mapping === undefined && o.dataAck !== undefined),
    'DSS DATA_ACK only',
  );
  assert.ok(
    dss.some(([, o]) => o.dataFin && o.mapping !== undefined),
    'DSS DATA_FIN',
  );
  assert.ok(
    dss.some(([, o]) => o.mapping?.checksum !== undefined),
    'DSS mapping with checksum',
  );
  assert.ok(
    dss.some(([, o]) => o.mapping !== undefined && o.mapping.checksum === undefined),
    'DSS mapping without checksum',
  );
  assert.ok(
    dss.some(([, o]) => o.dataAck64),
    'DATA_ACK in 8 bytes',
  );
  if (!fresh)
    assert.ok(
      dss.some(([, o]) => o.dataAck !== undefined && !o.dataAck64),
      'DATA_ACK in 4 bytes',
    );
  const addAddr = withOption(segments, isAddAddr);
  const announce = addAddr.find(([, o]) => !o.echo);
  assert.ok(announce !== undefined, 'ADD_ADDR');
  assert.ok(
    addAddr.some(([, o]) => o.echo),
    'ADD_ADDR echo',
  );
  const joinSyns = withOption(segments, isJoinSyn);
  assert.equal(joinSyns.length, CAPTURE.conn1.joins + CAPTURE.conn2.joins, 'MP_JOIN SYNs');

  // 3. Token and IDSN of every key equal tshark's.
  const conns = connections(segments);
  assert.equal(conns.length, 2);
  assert.deepEqual(
    conns.map((c) => c.checksums),
    [false, true],
  );
  const rows = tshark(
    path,
    '-Y',
    'tcp.options.mptcp.sendkey',
    '-T',
    'fields',
    '-E',
    'occurrence=f',
    '-e',
    'frame.number',
    '-e',
    'tcp.options.mptcp.sendkey',
    '-e',
    'mptcp.expected_token',
    '-e',
    'mptcp.expected_idsn',
  )
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));
  // SYN/ACK, third ACK per connection, plus the ACK with data of connection 2; in a fresh
  // capture connection 1's first data may carry MP_CAPABLE too (it was sent before the server's
  // first DSS arrived: a matter of timing, seen once in CI), so 5 or 6 there.
  const keyRows = fresh ? [5, 6] : [5];
  assert.ok(keyRows.includes(rows.length), `tshark key rows: ${JSON.stringify(rows)}`);
  for (const [frame, key, token, idsn] of rows) {
    const s = segments.find((x) => x.frame === Number(frame));
    const ours = s && find(s, isMpc)?.senderKey;
    assert.ok(ours !== undefined, `frame ${frame}: no MP_CAPABLE key parsed`);
    assert.equal(ours, BigInt(key!), `frame ${frame}: key differs from tshark's`);
    assert.equal(mptcpToken(ours), Number(token), `frame ${frame}: token`);
    assert.equal(mptcpIdsn(ours), BigInt(idsn!), `frame ${frame}: IDSN`);
  }

  // 4. Each join names its connection by the server's token; the HMACs are what we compute.
  for (const [syn, opt] of joinSyns) {
    const conn = conns.find((c) => mptcpToken(c.serverKey) === opt.receiverToken);
    assert.ok(conn !== undefined, `frame ${syn.frame}: join token matches no connection`);
    const flow = flowKey(syn);
    const synAck = segments.find((s) => flags(s) === (TCP_SYN | TCP_ACK) && reverseKey(s) === flow);
    const synAckOpt = synAck && find(synAck, isJoinSynAck);
    const ack = segments.find((s) => flowKey(s) === flow && find(s, isJoinAck) !== undefined);
    const ackOpt = ack && find(ack, isJoinAck);
    assert.ok(synAckOpt !== undefined && ackOpt !== undefined, `join ${flow} incomplete`);
    assert.equal(
      synAckOpt.senderTruncatedHmac,
      joinSynAckHmac(conn.serverKey, conn.clientKey, synAckOpt.senderNonce, opt.senderNonce),
      `join ${flow}: SYN/ACK HMAC`,
    );
    assert.equal(
      hex(ackOpt.senderHmac),
      hex(joinAckHmac(conn.clientKey, conn.serverKey, opt.senderNonce, synAckOpt.senderNonce)),
      `join ${flow}: third ACK HMAC`,
    );
  }

  // 5. The ADD_ADDR (server to client on connection 1) carries our HMAC of the address.
  const [announceSeg, announceOpt] = announce;
  assert.equal(announceOpt.echo, false);
  assert.equal(ipv4ToString(Buffer.from(announceOpt.address).readUInt32BE(0)), CAPTURE.serverAddr2);
  const conn1 = conns[0]!;
  assert.equal(reverseKey(announceSeg), conn1.flow);
  if (!announceOpt.echo) {
    assert.equal(
      announceOpt.truncatedHmac,
      addAddrHmac(
        conn1.serverKey,
        conn1.clientKey,
        announceOpt.addressId,
        announceOpt.address,
        announceOpt.port,
      ),
    );
  }

  // 6. Data sequence numbers start at IDSN + 1 in both directions; DSS checksums verify.
  for (const conn of conns) {
    const first = (fromClient: boolean) =>
      segments
        .filter((s) => (fromClient ? flowKey(s) : reverseKey(s)) === conn.flow)
        .flatMap((s) => {
          const o = find(s, isDss);
          const m = find(s, isMpc);
          if (o?.mapping !== undefined) return [o.mapping.dsn];
          // The MP_CAPABLE with data has an implicit mapping at IDSN + 1.
          return m?.dataLevelLength !== undefined ? [mptcpIdsn(conn.clientKey) + 1n] : [];
        })[0];
    assert.equal(first(true), mptcpIdsn(conn.clientKey) + 1n, `${conn.flow}: client's first DSN`);
    assert.equal(first(false), mptcpIdsn(conn.serverKey) + 1n, `${conn.flow}: server's first DSN`);
  }
  let checked = 0;
  for (const [s, o] of dss) {
    const m = o.mapping;
    if (m?.checksum === undefined) continue;
    // Only mappings carried whole by this segment (a DATA_FIN counts one byte more than it carries).
    if (m.dataLevelLength - (o.dataFin ? 1 : 0) !== s.payload.length) continue;
    assert.ok(
      verifyDssChecksum(m.checksum, m.dsn, m.ssn, m.dataLevelLength, s.payload),
      `frame ${s.frame}: DSS checksum`,
    );
    checked++;
  }
  const mpcData = mpc.find(([, o]) => o.checksum !== undefined);
  assert.ok(mpcData !== undefined);
  const [mpcSeg, mpcOpt] = mpcData;
  const conn2 = conns[1]!;
  assert.equal(mpcSeg.payload.length, mpcOpt.dataLevelLength);
  assert.ok(
    verifyDssChecksum(
      mpcOpt.checksum!,
      mptcpIdsn(conn2.clientKey) + 1n,
      1,
      mpcOpt.dataLevelLength!,
      mpcSeg.payload,
    ),
    'MP_CAPABLE with data: checksum over DSN = IDSN + 1, SSN 1',
  );
  assert.ok(checked >= 3, `only ${checked} DSS checksums checked`);

  // 7. tshark finds nothing malformed and no expert errors (kernel traffic draws only notes and
  // warnings such as "4 NOP in a row", from the kernel's padding of DSS options).
  assert.equal(tshark(path, '-Y', '_ws.malformed || _ws.expert.severity >= error').trim(), '');
}

describe('kernel MPTCP golden vectors', () => {
  test('the fixture capture parses, re-emits byte for byte and matches tshark and our crypto', () => {
    checkCapture(FIXTURE);
  });

  test('a fresh capture from the kernel (namespaces, Python IPPROTO_MPTCP, tcpdump) does too', async (t) => {
    const lab = new NetnsLab();
    const dir = mkdtempSync(join(tmpdir(), 'mptun-golden-'));
    t.after(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });
    const pcap = join(dir, 'kernel-mptcp.pcap');
    const { clientEvents } = await captureKernelMptcp(lab, pcap);
    // MPTCP_EVENT_ANNOUNCED (6) then two SUB_ESTABLISHED (10) on connection 1; one join on 2.
    assert.ok(clientEvents[0]?.includes(6), `events ${JSON.stringify(clientEvents)}`);
    assert.equal(clientEvents[0]?.filter((e) => e === 10).length, CAPTURE.conn1.joins);
    assert.equal(clientEvents[1]?.filter((e) => e === 10).length, CAPTURE.conn2.joins);
    checkCapture(pcap, true);
    if (process.env['MPTUN_UPDATE_FIXTURES'] === '1') copyFileSync(pcap, FIXTURE);
  });
});
