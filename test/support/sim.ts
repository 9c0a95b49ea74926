/**
 * Deterministic network simulator: two TcpStacks over an in-memory pair, each end behind a
 * seeded FaultDevice (delay, jitter, rate with a queue limit, loss, reordering, duplication), all
 * on one ManualScheduler. The same seed and the same options give the same packet trace
 * (`traceHash`), whatever the machine's speed.
 *
 * Node streams defer some callbacks to process.nextTick, so the run loop yields to the event
 * loop (setImmediate) after each simulated instant; simulated time only moves in `run`.
 *
 * Also here: `RawPeer`, a hand-driven endpoint that sends crafted IP packets to a stack and
 * collects what comes back, for packet-level iface tests.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ManualScheduler } from '../../src/stack/device/clock.js';
import type { Device, Frame, FrameHandler } from '../../src/stack/device/device.js';
import { FaultDevice, type FaultSpec } from '../../src/stack/device/fault.js';
import { createMemoryPair, type MemoryDevice } from '../../src/stack/device/memory-pair.js';
import { SeededRandom } from '../../src/stack/device/prng.js';
import { formatAddress, parseAddress, v4, v6 } from '../../src/stack/iface/address.js';
import {
  type ConnectOptions,
  type ListenOptions,
  type StackOptions,
  TcpStack,
} from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { TcpConfig } from '../../src/stack/tcp/connection.js';
import { releaseChunk } from '../../src/stack/tcp/slab-pool.js';
import { encodeIpv4, parseIpv4 } from '../../src/stack/wire/ipv4.js';
import { encodeIpv6, parseIpv6 } from '../../src/stack/wire/ipv6.js';
import {
  encodeTcp,
  fillTcpChecksumV4,
  fillTcpChecksumV6,
  IP_PROTOCOL_TCP,
  parseTcp,
  type TcpFields,
  type TcpHeader,
  tcpHeaderLength,
} from '../../src/stack/wire/tcp.js';

export const SIM_CLIENT = '10.0.0.1';
export const SIM_SERVER = '10.0.0.2';
export const SIM_CLIENT6 = 'fd00::1';
export const SIM_SERVER6 = 'fd00::2';

/** Hashes what a device writes (time, length, the first 80 bytes: IP + TCP headers) and forwards. */
class TraceDevice implements Device {
  readonly name: string;
  readonly mtu: number;
  readonly offload: boolean;
  packets = 0;
  /** Sees every frame written (tx) and received (rx) here. */
  observer: ((frame: Frame, tx: boolean) => void) | undefined;

  constructor(
    private readonly inner: Device,
    private readonly clock: ManualScheduler,
    private readonly hash: ReturnType<typeof createHash>,
    private readonly side: number,
  ) {
    this.name = `trace(${inner.name})`;
    this.mtu = inner.mtu;
    this.offload = inner.offload;
  }

  onFrames(handler: FrameHandler): void {
    this.inner.onFrames((frames) => {
      const observer = this.observer;
      if (observer !== undefined) for (const f of frames) observer(f, false);
      handler(frames);
    });
  }

  onDrain(callback: () => void): void {
    this.inner.onDrain(callback);
  }

  write(frames: readonly Frame[]): boolean {
    const head = Buffer.allocUnsafe(16);
    for (const f of frames) {
      head.writeDoubleLE(this.clock.now(), 0);
      head.writeUInt32LE(f.data.length, 8);
      head.writeUInt32LE(this.side, 12);
      this.hash.update(head);
      this.hash.update(f.data.subarray(0, Math.min(80, f.data.length)));
      this.packets++;
      this.observer?.(f, true);
    }
    return this.inner.write(frames);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface SimOptions {
  seed: number;
  mtu?: number;
  offload?: boolean;
  /** Faults on the client → server direction (applied where the client's frames leave). */
  forward?: FaultSpec;
  /** Faults on the server → client direction. */
  reverse?: FaultSpec;
  /** Engine settings for both stacks. */
  tcp?: Partial<TcpConfig>;
  /** The memory pair's high-water mark (default: never pushes back; the fault devices queue). */
  pairHighWaterMark?: number;
  /** Give the stacks IPv6 addresses too and make `serverHost` the IPv6 one. */
  ipv6?: boolean;
  /** Extra stack options for both (addresses and devices are the simulator's). */
  stack?: Partial<Omit<StackOptions, 'device' | 'scheduler' | 'addresses'>>;
  /** More addresses for each side (MPTCP: a second path's, a server's unique address). */
  clientAddresses?: string[];
  serverAddresses?: string[];
}

export class Sim {
  readonly clock = new ManualScheduler();
  readonly client: TcpStack;
  readonly server: TcpStack;
  readonly clientFault: FaultDevice;
  /** The address `simTransfer` connects to. */
  readonly serverHost: string;
  readonly serverFault: FaultDevice;
  private readonly hash = createHash('sha256');
  private readonly traces: TraceDevice[];
  /** Client → server retransmissions: how many never reached the server. */
  readonly retransmits = new RetransmitTracker();

  constructor(options: SimOptions) {
    const [a, b] = createMemoryPair({
      scheduler: this.clock,
      mtu: options.mtu ?? 1500,
      offload: options.offload ?? false,
      // The fault devices model the path's queue; the pair itself never pushes back.
      highWaterMark: options.pairHighWaterMark ?? 1 << 30,
      poisonDelivered: true,
    });
    this.clientFault = new FaultDevice(a, {
      seed: options.seed,
      tx: options.forward ?? {},
      scheduler: this.clock,
    });
    this.serverFault = new FaultDevice(b, {
      seed: options.seed + 1,
      tx: options.reverse ?? {},
      scheduler: this.clock,
    });
    this.serverHost = options.ipv6 ? SIM_SERVER6 : SIM_SERVER;
    const ta = new TraceDevice(this.clientFault, this.clock, this.hash, 1);
    const tb = new TraceDevice(this.serverFault, this.clock, this.hash, 2);
    this.traces = [ta, tb];
    const tracker = this.retransmits;
    ta.observer = (f, tx) => {
      if (tx) tracker.sent(f.data);
    };
    tb.observer = (f, tx) => {
      if (!tx) tracker.arrived(f.data);
    };
    const secretOf = (n: number) => {
      const rng = new SeededRandom(options.seed, 100 + n);
      return Uint8Array.from({ length: 32 }, () => rng.int(256));
    };
    this.client = new TcpStack({
      ...options.stack,
      device: ta,
      scheduler: this.clock,
      addresses: [
        ...(options.ipv6 ? [SIM_CLIENT, SIM_CLIENT6] : [SIM_CLIENT]),
        ...(options.clientAddresses ?? []),
      ],
      secret: secretOf(1),
      tcp: { ...options.stack?.tcp, ...options.tcp },
    });
    this.server = new TcpStack({
      ...options.stack,
      device: tb,
      scheduler: this.clock,
      addresses: [
        ...(options.ipv6 ? [SIM_SERVER, SIM_SERVER6] : [SIM_SERVER]),
        ...(options.serverAddresses ?? []),
      ],
      secret: secretOf(2),
      tcp: { ...options.stack?.tcp, ...options.tcp },
    });
  }

  /** SHA-256 over every frame both stacks wrote (time, length, headers). */
  traceHash(): string {
    return this.hash.copy().digest('hex');
  }

  get packetsSent(): number {
    return this.traces[0]!.packets + this.traces[1]!.packets;
  }

  /**
   * Runs the simulation until `done()` holds: each step runs every timer of the next instant,
   * then lets the event loop run the streams' deferred callbacks. Throws when simulated time
   * passes `limitMs` or nothing is left to run (a stall).
   */
  async run(done: () => boolean, limitMs: number): Promise<void> {
    await runClock(this.clock, done, limitMs);
  }

  /** Runs the simulation for `ms` of simulated time (idle stretches included). */
  async runFor(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    for (;;) {
      await yieldToLoop();
      const next = this.clock.nextAt();
      if (next === undefined || next > target) break;
      this.clock.advanceTo(next);
    }
    this.clock.advanceTo(target);
    await yieldToLoop();
  }
}

/**
 * Follows client → server data segments (IPv4) to tell how many retransmissions were lost on
 * the way: a lost retransmission is what SACK recovery cannot repair (only a timeout can), so
 * a test can require `rtoExpired <= lost`.
 */
export class RetransmitTracker {
  private highest: number | undefined;
  /** Retransmitted sequence numbers not yet seen arriving (after being retransmitted). */
  private readonly pending = new Map<number, number>();
  retransmitted = 0;

  sent(data: Uint8Array): void {
    const seg = dataSegment(data);
    if (seg === undefined) return;
    const end = (seg.seq + seg.length) >>> 0;
    if (this.highest === undefined || ((end - this.highest) | 0) > 0) {
      this.highest = end;
      return;
    }
    this.retransmitted++;
    this.pending.set(seg.seq, (this.pending.get(seg.seq) ?? 0) + 1);
  }

  arrived(data: Uint8Array): void {
    const seg = dataSegment(data);
    if (seg === undefined) return;
    const n = this.pending.get(seg.seq);
    if (n === undefined) return;
    if (n <= 1) this.pending.delete(seg.seq);
    else this.pending.set(seg.seq, n - 1);
  }

  /** Retransmissions that never arrived. */
  get lost(): number {
    let lost = 0;
    for (const n of this.pending.values()) lost += n;
    return lost;
  }
}

/** Sequence number and payload length of an IPv4 TCP segment carrying data. */
function dataSegment(data: Uint8Array): { seq: number; length: number } | undefined {
  if (data.length < 40 || data[0]! >>> 4 !== 4) return undefined;
  const ihl = (data[0]! & 0x0f) * 4;
  const total = (data[2]! << 8) | data[3]!;
  const doff = (data[ihl + 12]! >>> 4) * 4;
  const length = total - ihl - doff;
  if (length <= 0) return undefined;
  const seq =
    ((data[ihl + 4]! << 24) | (data[ihl + 5]! << 16) | (data[ihl + 6]! << 8) | data[ihl + 7]!) >>> 0;
  return { seq, length };
}

/**
 * Runs a manual clock until `done()` holds: each step runs every timer of the next instant, then
 * lets the event loop run the streams' deferred callbacks. Throws when simulated time passes
 * `limitMs` or nothing is left to run (a stall).
 */
export async function runClock(clock: ManualScheduler, done: () => boolean, limitMs: number): Promise<void> {
  const start = clock.now();
  let idleTurns = 0;
  while (!done()) {
    const next = clock.nextAt();
    if (next === undefined) {
      // Stream callbacks may still schedule work; give them a few turns before calling it a stall.
      if (++idleTurns > 50) throw new Error(`simulation stalled at ${clock.now()} ms`);
      await yieldToLoop();
      continue;
    }
    idleTurns = 0;
    if (next - start > limitMs) throw new Error(`simulation passed its ${limitMs} ms limit`);
    clock.advanceTo(next);
    await yieldToLoop();
  }
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `length` deterministic pseudo-random bytes from `seed`. */
export function seededBytes(seed: number, length: number): Uint8Array {
  const rng = new SeededRandom(seed, 7);
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  return new Uint8Array(words.buffer, 0, length);
}

export interface TransferResult {
  bytes: number;
  sentSha256: string;
  receivedSha256: string;
  /** Simulated ms from connect() to the last byte at the receiver. */
  elapsedMs: number;
  /** Payload bits per simulated second. */
  goodputBps: number;
}

/** Sends `data` client → server over one connection (pipeline on both ends) and checks the end. */
export async function simTransfer(
  sim: Sim,
  data: Uint8Array,
  limitMs: number,
  port = 5001,
  sockets: { listen?: Partial<ListenOptions>; connect?: Partial<ConnectOptions> } = {},
): Promise<TransferResult> {
  const receivedHash = createHash('sha256');
  let received = 0;
  let lastByteAt = 0;
  let serverDone = false;
  let failure: unknown;
  const server = sim.server.listen({ ...sockets.listen, port }, (socket: TcpSocket) => {
    const sink = new Writable({
      highWaterMark: 256 * 1024,
      write(chunk: Buffer, _enc, cb) {
        receivedHash.update(chunk);
        releaseChunk(chunk); // hashed: its slab can be reused (a wrong release would show in the SHA)
        received += chunk.length;
        lastByteAt = sim.clock.now();
        cb();
      },
    });
    pipeline(socket, sink).then(
      () => {
        socket.end();
        serverDone = true;
      },
      (err: unknown) => {
        failure = err;
      },
    );
  });
  const start = sim.clock.now();
  const client = sim.client.connect({ ...sockets.connect, host: sim.serverHost, port });
  let clientDone = false;
  const CHUNK = 64 * 1024;
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let off = 0; off < data.length; off += CHUNK)
      yield data.subarray(off, Math.min(data.length, off + CHUNK));
  }
  client.resume(); // the server sends nothing; let its FIN end our readable side
  pipeline(source(), client).then(
    () => {
      clientDone = true;
    },
    (err: unknown) => {
      failure = err;
    },
  );
  await sim.run(() => failure !== undefined || (serverDone && clientDone), limitMs);
  server.close();
  if (failure !== undefined) throw failure;
  const elapsedMs = lastByteAt - start;
  return {
    bytes: received,
    sentSha256: createHash('sha256').update(data).digest('hex'),
    receivedSha256: receivedHash.digest('hex'),
    elapsedMs,
    goodputBps: (received * 8 * 1000) / elapsedMs,
  };
}

// ------------------------------------------------------------------ raw packets

export interface RawSegment {
  family: 4 | 6;
  src: string;
  dst: string;
  tcp: TcpHeader;
  payload: Uint8Array;
}

/** Builds an IPv4 or IPv6 packet carrying one TCP segment with correct checksums. */
export function tcpPacket(
  src: string,
  dst: string,
  fields: TcpFields,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const s = parseAddress(src);
  const d = parseAddress(dst);
  const ipLen = s.family === 4 ? 20 : 40;
  const tcpLen = tcpHeaderLength(fields) + payload.length;
  const out = new Uint8Array(ipLen + tcpLen);
  if (s.family === 4 && d.family === 4) {
    encodeIpv4(
      {
        tos: 0,
        totalLength: out.length,
        identification: 1,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 64,
        protocol: IP_PROTOCOL_TCP,
        src: s.v4,
        dst: d.v4,
        options: new Uint8Array(0),
      },
      out,
    );
  } else if (s.family === 6 && d.family === 6) {
    encodeIpv6(
      {
        trafficClass: 0,
        flowLabel: 0,
        payloadLength: tcpLen,
        nextHeader: IP_PROTOCOL_TCP,
        hopLimit: 64,
        src: s.v6,
        dst: d.v6,
      },
      out,
    );
  } else {
    throw new Error('mixed address families');
  }
  const hl = encodeTcp(fields, out, ipLen);
  out.set(payload, ipLen + hl);
  if (s.family === 4 && d.family === 4) fillTcpChecksumV4(out, ipLen, out.length, s.v4, d.v4);
  else if (s.family === 6 && d.family === 6) fillTcpChecksumV6(out, ipLen, out.length, s.v6, d.v6);
  return out;
}

/** Parses a frame a stack wrote (throws on anything malformed: the stack must never emit that). */
export function parseSegment(data: Uint8Array): RawSegment {
  const version = data[0]! >>> 4;
  if (version === 4) {
    const ip = parseIpv4(data);
    if (!ip.ok) throw new Error(`bad IPv4 from the stack: ${ip.reason}`);
    const tcp = parseTcp(data, ip.value.headerLength, ip.value.totalLength);
    if (!tcp.ok) throw new Error(`bad TCP from the stack: ${tcp.reason}`);
    return {
      family: 4,
      src: formatAddress(v4(ip.value.src)),
      dst: formatAddress(v4(ip.value.dst)),
      tcp: tcp.value,
      payload: data.slice(ip.value.headerLength + tcp.value.headerLength, ip.value.totalLength),
    };
  }
  const ip = parseIpv6(data);
  if (!ip.ok) throw new Error(`bad IPv6 from the stack: ${ip.reason}`);
  const tcp = parseTcp(data, ip.value.payloadOffset, ip.value.totalLength);
  if (!tcp.ok) throw new Error(`bad TCP from the stack: ${tcp.reason}`);
  return {
    family: 6,
    src: formatAddress(v6(ip.value.src)),
    dst: formatAddress(v6(ip.value.dst)),
    tcp: tcp.value,
    payload: data.slice(ip.value.payloadOffset + tcp.value.headerLength, ip.value.totalLength),
  };
}

/**
 * A stack on one end of a memory pair and a hand-driven peer on the other, on a manual clock.
 * `send` delivers crafted frames; `sent` collects (parsed) what the stack wrote.
 */
export class RawHarness {
  readonly clock = new ManualScheduler();
  readonly stack: TcpStack;
  readonly peer: MemoryDevice;
  readonly sent: RawSegment[] = [];

  constructor(options: Partial<Omit<StackOptions, 'device' | 'scheduler'>> = {}) {
    const [a, b] = createMemoryPair({ scheduler: this.clock, highWaterMark: 1 << 30 });
    this.peer = b;
    b.onFrames((frames) => {
      for (const f of frames) this.sent.push(parseSegment(f.data));
    });
    this.stack = new TcpStack({
      addresses: ['10.0.0.1', 'fd00::1'],
      secret: new Uint8Array(32).fill(3),
      ...options,
      device: a,
      scheduler: this.clock,
    });
  }

  /** Delivers frames to the stack and runs everything due now (not later timers). */
  send(...frames: Uint8Array[]): void {
    this.peer.write(frames.map((data) => ({ data })));
    this.clock.advance(0);
  }

  /** What the stack sent since the last call. */
  take(): RawSegment[] {
    return this.sent.splice(0);
  }
}
