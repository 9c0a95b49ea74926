/**
 * A deterministic two-path simulator for MPTCP: our client stack with one address per path, our
 * server stack with a VIP and a unique address, and each path its own in-memory link with a
 * seeded FaultDevice in each direction (rate, delay, loss, queue), all on one ManualScheduler.
 * The client sends each frame on the path of its source address, the server on the path of its
 * destination address (PathMuxDevice), so each subflow crosses its own path: the topology of the
 * kernel's simult_flows.sh (two netem-shaped links between a client and a router), without the
 * router. Same seed, same options -> the same packet trace (`traceHash`: times, paths, lengths,
 * IP and TCP headers; not the MPTCP options, whose keys are not seeded).
 *
 * Two ways to set the subflows up:
 * - 'direct' (as simult_flows.sh): the server has no C flag and announces nothing; the client
 *   opens its initial subflow from path 0's address to the VIP and joins the VIP from path 1's:
 *   one subflow per path;
 * - 'lb' (as behind the load balancer): C flag on the VIP and ADD_ADDR of the unique address;
 *   the client joins the unique address from both its addresses: two subflows on path 0 (the
 *   initial one and a join), one on path 1.
 *
 * `simultTransfer` runs what simult_flows.sh's do_transfer does: both ends send at once (one a
 * large file, the other a small one) and the time is until both ends hold everything.
 */
import { createHash } from 'node:crypto';
import { ManualScheduler } from '../../src/stack/device/clock.js';
import { FaultDevice, type FaultSpec } from '../../src/stack/device/fault.js';
import { createMemoryPair } from '../../src/stack/device/memory-pair.js';
import { ipv4Address, PathMuxDevice } from '../../src/stack/device/path-mux.js';
import { SeededRandom } from '../../src/stack/device/prng.js';
import { parseAddress } from '../../src/stack/iface/address.js';
import { TcpStack } from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../src/stack/mptcp/connection.js';
import type { MptcpConfig } from '../../src/stack/mptcp/types.js';
import type { TcpConfig } from '../../src/stack/tcp/connection.js';
import { releaseChunk } from '../../src/stack/tcp/slab-pool.js';
import { runClock, seededBytes } from './sim.js';

export const MP_CLIENT_ADDRS = ['10.1.1.1', '10.1.2.1'] as const;
export const MP_VIP = '10.1.3.3';
export const MP_UNIQUE = '10.1.3.4';

export interface PathSpec {
  /** Rate of the path in each direction, Mbit/s (as netem's `rate Nmbit`). */
  rateMbit: number;
  /** One-way delay in each direction, ms. */
  delayMs?: number;
  /** Loss probability in each direction. */
  drop?: number;
  /** Packets the path's queue holds in each direction (netem's default limit: 1000). */
  queuePackets?: number;
}

export interface MultipathSimOptions {
  seed: number;
  paths: readonly [PathSpec, PathSpec];
  mode?: 'direct' | 'lb';
  tcp?: Partial<TcpConfig>;
  /** MPTCP settings for both ends (the mode's C flag and announcements are added on top). */
  mptcp?: Partial<MptcpConfig>;
}

function faultSpec(p: PathSpec, mtu: number): FaultSpec {
  return {
    rateBytesPerSec: (p.rateMbit * 1e6) / 8,
    queueLimitBytes: (p.queuePackets ?? 1000) * mtu,
    ...(p.delayMs ? { delayMs: p.delayMs } : {}),
    ...(p.drop ? { drop: p.drop } : {}),
  };
}

function u32(address: string): number {
  const a = parseAddress(address);
  if (a.family !== 4) throw new Error(`IPv4 only: ${address}`);
  return a.v4;
}

export class MultipathSim {
  readonly clock = new ManualScheduler();
  readonly client: TcpStack;
  readonly server: TcpStack;
  readonly mode: 'direct' | 'lb';
  /** Per path: [client → server, server → client]. */
  readonly faults: [FaultDevice, FaultDevice][] = [];
  readonly clientMux: PathMuxDevice;
  readonly serverMux: PathMuxDevice;
  private readonly hash = createHash('sha256');
  private readonly options: MultipathSimOptions;

  constructor(options: MultipathSimOptions) {
    this.options = options;
    this.mode = options.mode ?? 'direct';
    const mtu = 1500;
    const clientSide = [];
    const serverSide = [];
    for (let i = 0; i < options.paths.length; i++) {
      const p = options.paths[i]!;
      const [a, b] = createMemoryPair({
        scheduler: this.clock,
        mtu,
        highWaterMark: 1 << 30,
        poisonDelivered: true,
        names: [`p${i}c`, `p${i}s`],
      });
      const up = new FaultDevice(a, {
        seed: options.seed * 16 + i * 2,
        tx: faultSpec(p, mtu),
        scheduler: this.clock,
      });
      const down = new FaultDevice(b, {
        seed: options.seed * 16 + i * 2 + 1,
        tx: faultSpec(p, mtu),
        scheduler: this.clock,
      });
      this.faults.push([up, down]);
      clientSide.push(up);
      serverSide.push(down);
    }
    const byAddress = new Map(MP_CLIENT_ADDRS.map((a, i) => [u32(a), i]));
    const traced = (side: number, which: 'src' | 'dst') => (frame: { data: Uint8Array }) => {
      const addr = ipv4Address(frame, which);
      const path = addr === undefined ? -1 : (byAddress.get(addr) ?? -1);
      const head = Buffer.allocUnsafe(16);
      head.writeDoubleLE(this.clock.now(), 0);
      head.writeUInt32LE(frame.data.length, 8);
      head.writeInt32LE(side * 16 + path, 12);
      this.hash.update(head);
      // IPv4 header and TCP header up to the checksum: the MPTCP keys (and so DSNs, HMACs and the
      // TCP checksum over them) come from crypto randomness in the engine, not from the seed.
      this.hash.update(frame.data.subarray(0, Math.min(36, frame.data.length)));
      return path;
    };
    this.clientMux = new PathMuxDevice({ name: 'client', paths: clientSide, route: traced(1, 'src') });
    this.serverMux = new PathMuxDevice({ name: 'server', paths: serverSide, route: traced(2, 'dst') });
    const secretOf = (n: number) => {
      const rng = new SeededRandom(options.seed, 100 + n);
      return Uint8Array.from({ length: 32 }, () => rng.int(256));
    };
    this.client = new TcpStack({
      device: this.clientMux,
      scheduler: this.clock,
      addresses: [...MP_CLIENT_ADDRS],
      secret: secretOf(1),
      ...(options.tcp ? { tcp: options.tcp } : {}),
    });
    this.server = new TcpStack({
      device: this.serverMux,
      scheduler: this.clock,
      addresses: [MP_VIP, MP_UNIQUE],
      secret: secretOf(2),
      ...(options.tcp ? { tcp: options.tcp } : {}),
    });
  }

  /** The server's MPTCP settings for this mode. */
  listenMptcp(): Partial<MptcpConfig> {
    return this.mode === 'lb'
      ? { ...this.options.mptcp, cFlag: true, announce: [{ address: parseAddress(MP_UNIQUE) }] }
      : { ...this.options.mptcp, cFlag: false, announce: [] };
  }

  connectMptcp(): Partial<MptcpConfig> {
    return { ...this.options.mptcp };
  }

  /** SHA-256 over every frame both stacks wrote (time, path, length, headers). */
  traceHash(): string {
    return this.hash.copy().digest('hex');
  }

  /** The path (0, 1) an address of the client belongs to, or -1. */
  static pathOf(address: string): number {
    return MP_CLIENT_ADDRS.indexOf(address as (typeof MP_CLIENT_ADDRS)[number]);
  }

  /** Runs until `done()`; throws past `limitMs` of simulated time or on a stall. */
  async run(done: () => boolean, limitMs: number): Promise<void> {
    await runClock(this.clock, done, limitMs);
  }
}

/** `length` deterministic pseudo-random bytes (the simulator's own generator). */
export const patternBytes = seededBytes;

export interface SubflowReport {
  /** Which end this subflow belongs to, and the path it crosses. */
  side: 'client' | 'server';
  path: number;
  local: string;
  remote: string;
  role: 'initial' | 'join';
  bytesSent: number;
  bytesRetransmitted: number;
  bytesReceived: number;
  srttMs: number | undefined;
  cwnd: number;
}

export interface SimultResult {
  /** Simulated ms from connect() until both ends held every byte of the other. */
  elapsedMs: number;
  clientToServer: { bytes: number; sentSha256: string; receivedSha256: string };
  serverToClient: { bytes: number; sentSha256: string; receivedSha256: string };
  subflows: SubflowReport[];
  /** Data-level bytes reinjected, by each end. */
  reinjectedBytes: { client: number; server: number };
  /** The two stacks' MPTCP MIBs (only non-zero entries). */
  mib: { client: Record<string, number>; server: Record<string, number> };
  /** Per path and direction: packets the path's queue tail-dropped, and bytes delivered. */
  paths: {
    path: number;
    dir: 'up' | 'down';
    deliveredBytes: number;
    queueDropped: number;
    dropped: number;
  }[];
  traceHash: string;
}

interface End {
  hash: ReturnType<typeof createHash>;
  received: number;
  doneAt: number | undefined;
}

function sendAll(socket: TcpSocket, data: Uint8Array, fail: (e: unknown) => void): void {
  const CHUNK = 64 * 1024;
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const chunk = data.subarray(off, Math.min(data.length, off + CHUNK));
      off += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  socket.on('error', fail);
  pump();
}

function receiveInto(socket: TcpSocket, end: End, expected: number, now: () => number): void {
  socket.on('data', (chunk: Buffer) => {
    end.hash.update(chunk);
    releaseChunk(chunk); // hashed: its slab can be reused (a wrong release would show in the SHA)
    end.received += chunk.length;
    if (end.received >= expected && end.doneAt === undefined) end.doneAt = now();
  });
}

function nonZero(mib: Readonly<Record<string, number>> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(mib ?? {})) if (v !== 0) out[k] = v;
  return out;
}

function subflowsOf(side: 'client' | 'server', info: MptcpInfo | undefined): SubflowReport[] {
  return (info?.subflows ?? []).map((s) => ({
    side,
    path: MultipathSim.pathOf(side === 'client' ? s.local.split(':')[0]! : s.remote.split(':')[0]!),
    local: s.local,
    remote: s.remote,
    role: s.role,
    bytesSent: s.info.bytesSent,
    bytesRetransmitted: s.info.bytesRetransmitted,
    bytesReceived: s.info.bytesReceived,
    srttMs: s.info.srtt,
    cwnd: s.info.cwnd,
  }));
}

/**
 * Both ends send at once over one MPTCP connection, client → server `up` bytes and server →
 * client `down` bytes; resolves when both ends have received everything (SHA-256 in the result).
 */
export async function simultTransfer(
  sim: MultipathSim,
  up: Uint8Array,
  down: Uint8Array,
  limitMs: number,
  port = 10_000,
): Promise<SimultResult> {
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
  };
  const atServer: End = { hash: createHash('sha256'), received: 0, doneAt: undefined };
  const atClient: End = { hash: createHash('sha256'), received: 0, doneAt: undefined };
  const now = () => sim.clock.now();
  let serverSocket: TcpSocket | undefined;
  const listener = sim.server.listen({ port, allowHalfOpen: true, mptcp: sim.listenMptcp() }, (socket) => {
    serverSocket = socket;
    receiveInto(socket, atServer, up.length, now);
    sendAll(socket, down, fail);
  });
  const start = sim.clock.now();
  const client = sim.client.connect({
    host: MP_VIP,
    port,
    localAddress: MP_CLIENT_ADDRS[0],
    allowHalfOpen: true,
    mptcp: sim.connectMptcp(),
  });
  receiveInto(client, atClient, down.length, now);
  sendAll(client, up, fail);
  try {
    await sim.run(
      () => failure !== undefined || (atServer.doneAt !== undefined && atClient.doneAt !== undefined),
      limitMs,
    );
  } finally {
    listener.close();
  }
  if (failure !== undefined) throw failure;
  const sha = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');
  const clientInfo = client.info().mptcp;
  const serverInfo = serverSocket?.info().mptcp;
  const paths: SimultResult['paths'] = [];
  sim.faults.forEach(([u, d], path) => {
    for (const [dir, f] of [
      ['up', u],
      ['down', d],
    ] as const) {
      const c = f.counters.tx;
      paths.push({
        path,
        dir,
        deliveredBytes: c.deliveredBytes,
        queueDropped: c.queueDropped,
        dropped: c.dropped,
      });
    }
  });
  const result: SimultResult = {
    elapsedMs: Math.max(atServer.doneAt!, atClient.doneAt!) - start,
    clientToServer: {
      bytes: atServer.received,
      sentSha256: sha(up),
      receivedSha256: atServer.hash.digest('hex'),
    },
    serverToClient: {
      bytes: atClient.received,
      sentSha256: sha(down),
      receivedSha256: atClient.hash.digest('hex'),
    },
    subflows: [...subflowsOf('client', clientInfo), ...subflowsOf('server', serverInfo)],
    reinjectedBytes: { client: clientInfo?.reinjectedBytes ?? 0, server: serverInfo?.reinjectedBytes ?? 0 },
    mib: { client: nonZero(sim.client.stats().mptcp), server: nonZero(sim.server.stats().mptcp) },
    paths,
    traceHash: sim.traceHash(),
  };
  client.destroy();
  serverSocket?.destroy();
  return result;
}

// ------------------------------------------------------------------ the simult_flows.sh matrix

export interface SimultCase {
  name: string;
  rates: readonly [number, number];
  delays: readonly [number, number];
}

/** The cases of the kernel's simult_flows.sh (rates in Mbit/s, one-way delays in ms). */
export const SIMULT_FLOWS_CASES: readonly SimultCase[] = [
  { name: 'balanced bwidth', rates: [10, 10], delays: [0, 0] },
  { name: 'balanced bwidth with unbalanced delay', rates: [10, 10], delays: [1, 25] },
  { name: 'unbalanced bwidth', rates: [15, 5], delays: [0, 0] },
  { name: 'unbalanced bwidth with unbalanced delay', rates: [15, 5], delays: [1, 25] },
  { name: 'unbalanced bwidth with opposed, unbalanced delay', rates: [15, 5], delays: [25, 1] },
];

/** simult_flows.sh's transfer sizes: 16 MiB one way, 80 KiB the other. */
export const SIMULT_LARGE = 2 * 2048 * 4096;
export const SIMULT_SMALL = 20 * 4096;

/**
 * simult_flows.sh's pass limit in ms: the transfer at 90% of the summed rates, plus 400 ms for
 * mptcp_connect's join sleeps and 50 ms of slack.
 */
export function simultLimitMs(size: number, rates: readonly [number, number]): number {
  return Math.floor((1000 * size * 8 * 10) / ((rates[0] + rates[1]) * 1000 * 1000 * 9)) + 450;
}

export interface SimultCaseResult {
  case: string;
  direction: 'upload' | 'download';
  mode: 'direct' | 'lb';
  /** Packets each path's queue holds (netem's default, 1000, unless asked). */
  queuePackets: number;
  limitMs: number;
  elapsedMs: number;
  shaEqual: boolean;
  result: SimultResult;
}

/**
 * One row of the matrix: 'upload' sends the large file client → server (the small one back),
 * 'download' the other way, as the script's two do_transfer calls.
 */
export async function runSimultCase(
  c: SimultCase,
  direction: 'upload' | 'download',
  options: {
    seed?: number;
    mode?: 'direct' | 'lb';
    size?: number;
    queuePackets?: number;
    /** MPTCP settings for both ends (congestion control, scheduler...). */
    mptcp?: Partial<MptcpConfig>;
  } = {},
): Promise<SimultCaseResult> {
  const size = options.size ?? SIMULT_LARGE;
  const mode = options.mode ?? 'direct';
  const sim = new MultipathSim({
    seed: options.seed ?? 1,
    mode,
    paths: [
      { rateMbit: c.rates[0], delayMs: c.delays[0], queuePackets: options.queuePackets ?? 1000 },
      { rateMbit: c.rates[1], delayMs: c.delays[1], queuePackets: options.queuePackets ?? 1000 },
    ],
    ...(options.mptcp === undefined ? {} : { mptcp: options.mptcp }),
  });
  const large = patternBytes(1, size);
  const small = patternBytes(2, SIMULT_SMALL);
  const limitMs = simultLimitMs(size, c.rates);
  const [up, down] = direction === 'upload' ? [large, small] : [small, large];
  const result = await simultTransfer(sim, up, down, Math.max(60_000, limitMs * 8));
  const shaEqual =
    result.clientToServer.sentSha256 === result.clientToServer.receivedSha256 &&
    result.serverToClient.sentSha256 === result.serverToClient.receivedSha256;
  const queuePackets = options.queuePackets ?? 1000;
  return {
    case: c.name,
    direction,
    mode,
    queuePackets,
    limitMs,
    elapsedMs: result.elapsedMs,
    shaEqual,
    result,
  };
}
