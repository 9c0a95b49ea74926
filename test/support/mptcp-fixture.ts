/**
 * Packet-driven MPTCP fixture (in the manner of packetdrill's MPTCP suite): a real TcpStack on
 * one end of an in-memory pair with a manual clock, and a peer played by hand on the other end
 * with raw segments, our crypto and the option codec.
 *
 * Sequence numbers in specs are relative, as packetdrill writes them: what the peer sends is
 * relative to the peer's ISN on that subflow (its SYN is seq 0), what it acknowledges relative to
 * our ISN; what comes out of the stack the other way round. Data sequence numbers are offsets
 * too: `peerDsn(off)` is the peer's IDSN + 1 + off, `ourDsn(off)` ours.
 *
 * `expectSegment(sf, spec)` asserts that exactly one segment came out on that subflow and that it
 * matches the spec partially (only the fields given); `expectMptcp(seg, partial)` finds the
 * segment's MPTCP option of that subtype and matches the fields given (gVisor checker style).
 */
import assert from 'node:assert/strict';
import { ManualScheduler } from '../../src/stack/device/clock.js';
import { createMemoryPair, type MemoryDevice } from '../../src/stack/device/memory-pair.js';
import type { StackOptions } from '../../src/stack/iface/stack.js';
import { TcpStack } from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../src/stack/mptcp/connection.js';
import type { MptcpCounters } from '../../src/stack/mptcp/counters.js';
import { joinAckHmac, keyMaterial } from '../../src/stack/mptcp/crypto.js';
import type { TcpConfig, TcpInfo } from '../../src/stack/tcp/types.js';
import type { MptcpOption } from '../../src/stack/wire/mptcp-options.js';
import { dsnAdd } from '../../src/stack/wire/seqnum.js';
import type { TcpOption } from '../../src/stack/wire/tcp.js';
import { parseSegment, type RawSegment, tcpPacket } from './sim.js';
import { bytes, type DeepPartial, flagsOf, lettersOf, matchPartial } from './tcp-fixture.js';

/** Our stack's first address (the listener's and the client's initial one). */
export const US = '10.0.0.1';
/** The peer's first address. */
export const PEER = '10.0.0.2';
export const OUR_PORT = 80;
export const PEER_PORT = 40000;
export const PEER_ISN = 5000;
/** The peer's MPTCP key (its token and IDSN follow from it). */
export const PEER_KEY = 0x0102030405060708n;

/** TCP without timestamps, SACK, window scale or delayed ACKs: the plainest segments. */
export const PLAIN_TCP: Partial<TcpConfig> = {
  timestamps: false,
  sack: false,
  windowScale: false,
  delayedAckMs: 0,
};

/** One subflow as the peer sees it: the four-tuple and both ISNs. */
export interface PeerSubflow {
  peer: string;
  peerPort: number;
  us: string;
  usPort: number;
  peerIsn: number;
  /** Our ISN, learned from our SYN or SYN/ACK. */
  ourIsn: number;
}

export interface SendSpec {
  /** 'S', 'SA', 'A', 'PA', 'FA', 'R', 'RA': as tcp-fixture's. */
  flags: string;
  /** Relative to the peer's ISN (default: 1, the first byte after the SYN). */
  seq?: number;
  /** Relative to our ISN (default: 1). */
  ack?: number;
  window?: number;
  options?: TcpOption[];
  payload?: Uint8Array | string;
}

/** What a segment from the stack must look like (only the fields given are checked). */
export interface ExpectSpec {
  flags?: string;
  /** Relative to our ISN. */
  seq?: number;
  /** Relative to the peer's ISN. */
  ack?: number;
  window?: number;
  payloadLength?: number;
  payload?: Uint8Array | string;
  /** Each listed MPTCP option must be present and match partially. */
  mptcp?: DeepPartial<MptcpOption>[];
  /** No MPTCP option at all (plain TCP). */
  noMptcp?: true;
}

/** The TCP option that carries one MPTCP option. */
export function mp(option: MptcpOption): TcpOption {
  return { type: 'mptcp', option };
}

/** MP_CAPABLE with the usual v1 flags (H only) and the given fields. */
export function mpc(over: Partial<Extract<MptcpOption, { subtype: 'mp_capable' }>> = {}): TcpOption {
  return mp({
    subtype: 'mp_capable',
    version: 1,
    checksumRequired: false,
    extensibility: false,
    noJoinToSource: false,
    extensionFlags: 0,
    hmacSha256: true,
    ...over,
  });
}

/** A DSS option from its parts (flags follow from what is present; 32-bit forms by default). */
export function dss(parts: {
  dataAck?: bigint;
  dataAck64?: boolean;
  mapping?: { dsn: bigint; ssn: number; dataLevelLength: number; checksum?: number };
  dsn64?: boolean;
  dataFin?: boolean;
}): TcpOption {
  const o: Extract<MptcpOption, { subtype: 'dss' }> = {
    subtype: 'dss',
    dataFin: parts.dataFin ?? false,
    dataAck64: parts.dataAck64 ?? false,
    dsn64: parts.dsn64 ?? false,
  };
  if (parts.dataAck !== undefined) o.dataAck = o.dataAck64 ? parts.dataAck : parts.dataAck & 0xffff_ffffn;
  if (parts.mapping !== undefined) {
    const m = parts.mapping;
    o.mapping = { ...m, dsn: o.dsn64 ? m.dsn : m.dsn & 0xffff_ffffn };
  }
  return mp(o);
}

/** The MPTCP options of a segment, in order. */
export function mptcpOptions(seg: RawSegment): MptcpOption[] {
  return seg.tcp.options.flatMap((o) => (o.type === 'mptcp' ? [o.option] : []));
}

/** The segment's one MPTCP option of `want.subtype`, matching `want` on every field given. */
export function expectMptcp<T extends MptcpOption>(
  seg: RawSegment,
  want: DeepPartial<T> & { subtype: T['subtype'] },
): T {
  const all = mptcpOptions(seg);
  const found = all.filter((o) => o.subtype === want.subtype);
  assert.equal(
    found.length,
    1,
    `want one ${want.subtype} option, segment has [${all.map((o) => o.subtype).join(', ')}]`,
  );
  matchPartial(found[0], want, want.subtype);
  return found[0] as T;
}

/** Keys, tokens and IDSNs of one MPTCP connection as the peer tracks them. */
export class PeerMptcp {
  peerKey: bigint;
  ourKey = 0n;
  constructor(peerKey = PEER_KEY) {
    this.peerKey = peerKey;
  }
  get peerToken(): number {
    return keyMaterial(this.peerKey).token;
  }
  get ourToken(): number {
    return keyMaterial(this.ourKey).token;
  }
  /** The peer's data sequence number at data offset `off` (IDSN + 1 + off). */
  peerDsn(off: number): bigint {
    return dsnAdd(keyMaterial(this.peerKey).idsn, 1 + off);
  }
  /** Our data sequence number at data offset `off`. */
  ourDsn(off: number): bigint {
    return dsnAdd(keyMaterial(this.ourKey).idsn, 1 + off);
  }
  /** Our DSN at `off` as our data mappings carry it: its low 32 bits (dsn64 false). */
  ourDsn32(off: number): bigint {
    return this.ourDsn(off) & 0xffff_ffffn;
  }
}

export interface FixtureOptions {
  /** Our addresses (default [US, 'fd00::1']). */
  addresses?: string[];
  tcp?: Partial<TcpConfig>;
  stack?: Partial<Omit<StackOptions, 'device' | 'scheduler' | 'addresses' | 'tcp'>>;
}

export class MptcpFixture {
  readonly clock = new ManualScheduler();
  readonly stack: TcpStack;
  readonly device: MemoryDevice;
  /** Segments the stack wrote, not yet taken. */
  readonly out: RawSegment[] = [];
  readonly accepted: TcpSocket[] = [];

  constructor(options: FixtureOptions = {}) {
    const [a, b] = createMemoryPair({ scheduler: this.clock, highWaterMark: 1 << 30 });
    this.device = b;
    b.onFrames((frames) => {
      for (const f of frames) this.out.push(parseSegment(f.data));
    });
    this.stack = new TcpStack({
      addresses: options.addresses ?? [US, 'fd00::1'],
      secret: new Uint8Array(32).fill(7),
      tcp: { ...PLAIN_TCP, ...options.tcp },
      ...options.stack,
      device: a,
      scheduler: this.clock,
    });
  }

  get now(): number {
    return this.clock.now();
  }

  /** A subflow seen from the peer (ourIsn is filled in from our SYN or SYN/ACK). */
  subflow(over: Partial<PeerSubflow> = {}): PeerSubflow {
    return {
      peer: PEER,
      peerPort: PEER_PORT,
      us: US,
      usPort: OUR_PORT,
      peerIsn: PEER_ISN,
      ourIsn: 0,
      ...over,
    };
  }

  /** The peer sends one segment on `sf`; everything due now runs. */
  send(sf: PeerSubflow, spec: SendSpec): void {
    const flags = flagsOf(spec.flags);
    const ackOn = (flags & flagsOf('A')) !== 0;
    const frame = tcpPacket(
      sf.peer,
      sf.us,
      {
        srcPort: sf.peerPort,
        dstPort: sf.usPort,
        seqNumber: (sf.peerIsn + (spec.seq ?? 1)) >>> 0,
        ackNumber: ackOn ? (sf.ourIsn + (spec.ack ?? 1)) >>> 0 : 0,
        flags,
        window: spec.window ?? 65535,
        options: spec.options ?? [],
      },
      bytes(spec.payload),
    );
    this.device.write([{ data: frame }]);
    this.clock.advance(0);
  }

  /** Moves the clock, running every timer due by then. */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Everything the stack sent since the last take. */
  take(): RawSegment[] {
    this.clock.advance(0);
    return this.out.splice(0);
  }

  /** Segments sent on `sf`'s four-tuple (others stay queued). */
  takeOn(sf: PeerSubflow): RawSegment[] {
    this.clock.advance(0);
    const mine: RawSegment[] = [];
    const rest: RawSegment[] = [];
    for (const s of this.out) (onSubflow(s, sf) ? mine : rest).push(s);
    this.out.splice(0, this.out.length, ...rest);
    return mine;
  }

  /** Exactly one segment on `sf`, matching `spec`. */
  expectSegment(sf: PeerSubflow, spec: ExpectSpec): RawSegment {
    const segs = this.takeOn(sf);
    assert.equal(
      segs.length,
      1,
      `want one segment on ${describeSf(sf)}, got ${segs.map(describe).join(' | ')}`,
    );
    const seg = segs[0]!;
    checkSegment(seg, sf, spec);
    return seg;
  }

  /** Nothing at all came out. */
  expectNothing(): void {
    const segs = this.take();
    assert.deepEqual(segs.map(describe), [], 'want no segment');
  }

  get mib(): MptcpCounters {
    const m = this.stack.stats().mptcp;
    assert.ok(m !== undefined, 'the stack has no MPTCP endpoint');
    return m;
  }

  // ------------------------------------------------------------ handshakes

  /**
   * Server side: we listen (MPTCP), the peer sends an MP_CAPABLE SYN, we answer SYN/ACK with our
   * key; the peer's third ACK carries both keys (and `thirdAck` extras). Returns the accepted socket.
   */
  listen(mptcp: Parameters<TcpStack['listen']>[0]['mptcp'] = true): void {
    this.stack.listen({ port: OUR_PORT, mptcp }, (s) => {
      this.accepted.push(s);
    });
  }

  /** The peer's MP_CAPABLE SYN to our listener; returns our SYN/ACK (ourIsn and ourKey learned). */
  peerSyn(sf: PeerSubflow, keys: PeerMptcp, synMpc: TcpOption = mpc()): RawSegment {
    this.send(sf, { flags: 'S', seq: 0, options: [{ type: 'mss', mss: 1460 }, synMpc] });
    const segs = this.takeOn(sf);
    assert.equal(segs.length, 1, `want our SYN/ACK, got ${segs.map(describe).join(' | ')}`);
    const synAck = segs[0]!;
    assert.equal(lettersOf(synAck.tcp.flags), 'SA');
    sf.ourIsn = synAck.tcp.seqNumber;
    const o = mptcpOptions(synAck).find((x) => x.subtype === 'mp_capable');
    if (o?.subtype === 'mp_capable' && o.senderKey !== undefined) keys.ourKey = o.senderKey;
    return synAck;
  }

  /** Server side up to ESTABLISHED with the keys exchanged: SYN, SYN/ACK, third ACK (no data). */
  serverEstablished(
    keys: PeerMptcp,
    sf: PeerSubflow = this.subflow(),
    opts: { checksum?: boolean } = {},
  ): { sf: PeerSubflow; socket: TcpSocket } {
    this.peerSyn(sf, keys, mpc({ checksumRequired: opts.checksum ?? false }));
    this.send(sf, {
      flags: 'A',
      options: [
        mpc({ checksumRequired: opts.checksum ?? false, senderKey: keys.peerKey, receiverKey: keys.ourKey }),
      ],
    });
    const socket = this.accepted.at(-1);
    assert.ok(socket !== undefined, 'the listener accepted the connection');
    return { sf, socket };
  }

  /**
   * Client side: we connect with MPTCP; returns the SYN we sent (sf.ourIsn learned). The peer's
   * address and port are sf.peer / sf.peerPort; our port is learned from the SYN.
   */
  connect(
    sf: PeerSubflow,
    mptcp: Parameters<TcpStack['connect']>[0]['mptcp'] = true,
  ): {
    socket: TcpSocket;
    syn: RawSegment;
  } {
    const socket = this.stack.connect({ host: sf.peer, port: sf.peerPort, localAddress: sf.us, mptcp });
    const segs = this.take();
    assert.equal(segs.length, 1, `want our SYN, got ${segs.map(describe).join(' | ')}`);
    const syn = segs[0]!;
    assert.equal(lettersOf(syn.tcp.flags), 'S');
    sf.usPort = syn.tcp.srcPort;
    sf.ourIsn = syn.tcp.seqNumber;
    return { socket, syn };
  }

  /**
   * Client side up to ESTABLISHED: our MP_CAPABLE SYN, the peer's SYN/ACK with its key (C flag
   * as given), our third ACK with both keys (ourKey learned from it).
   */
  clientEstablished(
    keys: PeerMptcp,
    sf: PeerSubflow = this.subflow(),
    opts: { cFlag?: boolean; window?: number; mptcp?: Parameters<TcpStack['connect']>[0]['mptcp'] } = {},
  ): { sf: PeerSubflow; socket: TcpSocket } {
    const { socket } = this.connect(sf, opts.mptcp ?? true);
    this.send(sf, {
      flags: 'SA',
      seq: 0,
      ack: 1,
      window: opts.window ?? 65535,
      options: [
        { type: 'mss', mss: 1460 },
        mpc({ senderKey: keys.peerKey, noJoinToSource: opts.cFlag ?? true }),
      ],
    });
    const third = this.expectSegment(sf, { flags: 'A', seq: 1, ack: 1 });
    const o = mptcpOptions(third).find((x) => x.subtype === 'mp_capable');
    assert.ok(o?.subtype === 'mp_capable' && o.senderKey !== undefined, 'third ACK with our key');
    keys.ourKey = o.senderKey;
    return { sf, socket };
  }

  /**
   * Server side: the peer joins an established connection on `sf2` (its SYN with MP_JOIN and
   * nonce `nonce`, our SYN/ACK, its third ACK with the right HMAC, our fourth ACK, all taken).
   */
  serverJoinEstablished(
    keys: PeerMptcp,
    sf2: PeerSubflow,
    nonce = 0x0a0b0c0d,
    addressId = 2,
  ): { rB: number } {
    this.send(sf2, {
      flags: 'S',
      seq: 0,
      options: [
        { type: 'mss', mss: 1460 },
        mp({
          subtype: 'mp_join',
          form: 'syn',
          backup: false,
          addressId,
          receiverToken: keys.ourToken,
          senderNonce: nonce,
        }),
      ],
    });
    const synAck = this.expectSegment(sf2, { flags: 'SA', ack: 1 });
    sf2.ourIsn = synAck.tcp.seqNumber;
    const j = mptcpOptions(synAck).find((o) => o.subtype === 'mp_join');
    assert.ok(j?.subtype === 'mp_join' && j.form === 'syn_ack', 'our join SYN/ACK');
    const rB = j.senderNonce;
    this.send(sf2, {
      flags: 'A',
      options: [
        mp({
          subtype: 'mp_join',
          form: 'ack',
          senderHmac: joinAckHmac(keys.peerKey, keys.ourKey, nonce, rB),
        }),
      ],
    });
    this.expectSegment(sf2, { flags: 'A', seq: 1, ack: 1, payloadLength: 0 });
    return { rB };
  }

  /** Takes the one SYN we sent to `peer` (a join); returns its subflow (port and ISN learned) and the SYN. */
  takeSynTo(peer: string, peerPort = PEER_PORT): { sf: PeerSubflow; syn: RawSegment } {
    this.clock.advance(0);
    const i = this.out.findIndex(
      (s) => s.dst === peer && s.tcp.dstPort === peerPort && lettersOf(s.tcp.flags) === 'S',
    );
    assert.ok(i >= 0, `no SYN to ${peer}:${peerPort} in ${this.out.map(describe).join(' | ')}`);
    const syn = this.out.splice(i, 1)[0]!;
    const sf = this.subflow({
      peer,
      peerPort,
      us: syn.src,
      usPort: syn.tcp.srcPort,
      ourIsn: syn.tcp.seqNumber,
    });
    return { sf, syn };
  }

  /** SYNs we sent (any destination), taken out of the queue. */
  takeSyns(): RawSegment[] {
    this.clock.advance(0);
    const syns = this.out.filter((s) => lettersOf(s.tcp.flags) === 'S');
    const rest = this.out.filter((s) => lettersOf(s.tcp.flags) !== 'S');
    this.out.splice(0, this.out.length, ...rest);
    return syns;
  }
}

function onSubflow(s: RawSegment, sf: PeerSubflow): boolean {
  return s.src === sf.us && s.dst === sf.peer && s.tcp.srcPort === sf.usPort && s.tcp.dstPort === sf.peerPort;
}

function describeSf(sf: PeerSubflow): string {
  return `${sf.us}:${sf.usPort}->${sf.peer}:${sf.peerPort}`;
}

/** A segment in one line (for assertion messages). */
export function describe(s: RawSegment): string {
  const mptcp = mptcpOptions(s)
    .map((o) => o.subtype)
    .join(',');
  return `${s.src}:${s.tcp.srcPort}>${s.dst}:${s.tcp.dstPort} ${lettersOf(s.tcp.flags)} len ${s.payload.length}${mptcp === '' ? '' : ` [${mptcp}]`}`;
}

/** Checks `seg` against `spec` with sequence numbers relative to `sf`'s ISNs. */
export function checkSegment(seg: RawSegment, sf: PeerSubflow, spec: ExpectSpec): void {
  const got: Record<string, unknown> = {};
  const want: Record<string, unknown> = {};
  if (spec.flags !== undefined) {
    got.flags = lettersOf(seg.tcp.flags);
    want.flags = lettersOf(flagsOf(spec.flags));
  }
  if (spec.seq !== undefined) {
    got.seq = (seg.tcp.seqNumber - sf.ourIsn) >>> 0;
    want.seq = spec.seq >>> 0;
  }
  if (spec.ack !== undefined) {
    got.ack = (seg.tcp.ackNumber - sf.peerIsn) >>> 0;
    want.ack = spec.ack >>> 0;
  }
  if (spec.window !== undefined) {
    got.window = seg.tcp.window;
    want.window = spec.window;
  }
  if (spec.payloadLength !== undefined) {
    got.payloadLength = seg.payload.length;
    want.payloadLength = spec.payloadLength;
  }
  if (spec.payload !== undefined) {
    got.payload = Buffer.from(seg.payload).toString('hex');
    want.payload = Buffer.from(bytes(spec.payload)).toString('hex');
  }
  assert.deepEqual(got, want, describe(seg));
  if (spec.noMptcp) assert.deepEqual(mptcpOptions(seg), [], `want no MPTCP option: ${describe(seg)}`);
  for (const m of spec.mptcp ?? [])
    expectMptcp(seg, m as DeepPartial<MptcpOption> & { subtype: MptcpOption['subtype'] });
}

/** Reads whatever the socket has buffered now (paused mode, synchronously). */
export function readNow(socket: TcpSocket): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) break;
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The socket's MPTCP info (TcpSocket.info() is typed as plain TcpInfo); fails when absent. */
export function mptcpInfo(socket: TcpSocket): MptcpInfo {
  const info = (socket.info() as TcpInfo & { mptcp?: MptcpInfo }).mptcp;
  assert.ok(info !== undefined, 'the socket fronts no MPTCP connection');
  return info;
}
