/**
 * Scheduler measurements over the two-path simulator (multipath-sim.ts), shared by
 * test/mptcp-sched-sim.test.ts and the bench's multipath suite (`schedulerFigures`):
 * - `bulkGoodput`: one-way bulk transfer (client → server), goodput in Mbit/s of simulated time;
 *   `maxSubflows: 1` gives the initial path alone, the baseline of RFC 6356's goal 1;
 * - `requestResponse`: small messages one at a time, each echoed by the server; the latency of
 *   each (write to last byte of the echo) in simulated ms, and its percentiles.
 * Deterministic: same seed, same options, same figures.
 */
import { createHash } from 'node:crypto';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { SchedulerName } from '../../src/stack/mptcp/sched.js';
import type { MptcpConfig } from '../../src/stack/mptcp/types.js';
import {
  MP_CLIENT_ADDRS,
  MP_VIP,
  MultipathSim,
  type PathSpec,
  patternBytes,
  type SimultResult,
  simultTransfer,
} from './multipath-sim.js';

export interface BulkResult {
  scheduler: SchedulerName;
  subflows: number;
  bytes: number;
  elapsedMs: number;
  goodputMbit: number;
  shaEqual: boolean;
  /** Payload bytes the client's subflows on each path sent (retransmissions included). */
  sentByPath: [number, number];
  result: SimultResult;
}

/** `size` bytes client → server (and 1 KiB back), over `paths`, with `scheduler`. */
export async function bulkGoodput(options: {
  paths: readonly [PathSpec, PathSpec];
  scheduler: SchedulerName;
  size: number;
  seed?: number;
  /** 1: the initial subflow (path 0) alone. */
  maxSubflows?: number;
  mptcp?: Partial<MptcpConfig>;
  limitMs?: number;
}): Promise<BulkResult> {
  const sim = new MultipathSim({
    seed: options.seed ?? 1,
    paths: options.paths,
    mptcp: {
      scheduler: options.scheduler,
      ...(options.maxSubflows === undefined ? {} : { maxSubflows: options.maxSubflows }),
      ...options.mptcp,
    },
  });
  const up = patternBytes(11, options.size);
  const down = patternBytes(12, 1024);
  const r = await simultTransfer(sim, up, down, options.limitMs ?? 120_000);
  const client = r.subflows.filter((s) => s.side === 'client');
  const sentByPath: [number, number] = [0, 0];
  for (const s of client) if (s.path === 0 || s.path === 1) sentByPath[s.path] += s.bytesSent;
  return {
    scheduler: options.scheduler,
    subflows: client.length,
    bytes: options.size,
    elapsedMs: r.elapsedMs,
    goodputMbit: (options.size * 8) / (r.elapsedMs * 1000),
    shaEqual:
      r.clientToServer.receivedSha256 === r.clientToServer.sentSha256 &&
      r.serverToClient.receivedSha256 === r.serverToClient.sentSha256,
    sentByPath,
    result: r,
  };
}

export interface LatencyResult {
  scheduler: SchedulerName;
  messages: number;
  /** Each message's latency, simulated ms, in order sent. */
  latenciesMs: number[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** SHA-256 of everything echoed equals that of everything sent. */
  shaEqual: boolean;
  mib: { client: Record<string, number>; server: Record<string, number> };
}

/** The p-th percentile (0..1) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function nonZero(mib: Readonly<Record<string, number>> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(mib ?? {})) if (v !== 0) out[k] = v;
  return out;
}

/**
 * `messages` requests of `size` bytes, one at a time: the server echoes every byte it gets, the
 * client sends the next request once the whole echo of the previous one arrived.
 */
export async function requestResponse(options: {
  paths: readonly [PathSpec, PathSpec];
  scheduler: SchedulerName;
  messages: number;
  size: number;
  seed?: number;
  limitMs?: number;
}): Promise<LatencyResult> {
  const sim = new MultipathSim({
    seed: options.seed ?? 1,
    paths: options.paths,
    mptcp: { scheduler: options.scheduler },
  });
  const port = 10_001;
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
  };
  let serverSocket: TcpSocket | undefined;
  const listener = sim.server.listen({ port, mptcp: sim.listenMptcp() }, (socket) => {
    serverSocket = socket;
    socket.on('error', fail);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  const client = sim.client.connect({
    host: MP_VIP,
    port,
    localAddress: MP_CLIENT_ADDRS[0],
    mptcp: sim.connectMptcp(),
  });
  client.on('error', fail);
  const sent = createHash('sha256');
  const echoed = createHash('sha256');
  const latenciesMs: number[] = [];
  let got = 0;
  let sentAt = 0;
  let index = 0;
  const sendNext = () => {
    const msg = patternBytes(1000 + index, options.size);
    sent.update(msg);
    sentAt = sim.clock.now();
    client.write(msg);
  };
  client.on('data', (chunk: Buffer) => {
    echoed.update(chunk);
    got += chunk.length;
    if (got < (index + 1) * options.size) return;
    latenciesMs.push(sim.clock.now() - sentAt);
    index++;
    if (index < options.messages) sendNext();
  });
  // The first request a second in: the join is part of the setup, not of a message's latency.
  sim.clock.setTimer(sim.clock.now() + 1000, sendNext);
  try {
    await sim.run(() => failure !== undefined || index >= options.messages, options.limitMs ?? 600_000);
  } finally {
    listener.close();
  }
  if (failure !== undefined) throw failure;
  const result: LatencyResult = {
    scheduler: options.scheduler,
    messages: latenciesMs.length,
    latenciesMs,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    maxMs: Math.max(...latenciesMs),
    shaEqual: sent.digest('hex') === echoed.digest('hex'),
    mib: { client: nonZero(sim.client.stats().mptcp), server: nonZero(sim.server.stats().mptcp) },
  };
  client.destroy();
  serverSocket?.destroy();
  return result;
}

/** The heterogeneous cases of issue 7's must-show 2 (the better path is path 0). */
export const HETEROGENEOUS_CASES: readonly { name: string; paths: readonly [PathSpec, PathSpec] }[] = [
  {
    name: '10 ms beside 200 ms RTT',
    paths: [
      { rateMbit: 10, delayMs: 5 },
      { rateMbit: 10, delayMs: 100 },
    ],
  },
  {
    name: 'clean beside 2% loss',
    paths: [
      { rateMbit: 10, delayMs: 10 },
      { rateMbit: 10, delayMs: 10, drop: 0.02 },
    ],
  },
];

/** Must-show 6's case: two paths, 5% loss each way on each. */
export const LOSSY_PATHS: readonly [PathSpec, PathSpec] = [
  { rateMbit: 10, delayMs: 10, drop: 0.05 },
  { rateMbit: 10, delayMs: 15, drop: 0.05 },
];

export interface SchedulerFigure {
  case: string;
  scheduler: SchedulerName | 'better path alone';
  goodputMbit?: number;
  elapsedMs?: number;
  p50Ms?: number;
  p99Ms?: number;
  shaEqual: boolean;
}

/**
 * Per-scheduler figures for `npm run bench` (the multipath suite): goodput of each scheduler in
 * each heterogeneous case beside the better path alone, and small-message latency under 5% loss.
 */
export async function schedulerFigures(
  options: { size?: number; messages?: number } = {},
): Promise<SchedulerFigure[]> {
  const size = options.size ?? 8 << 20;
  const out: SchedulerFigure[] = [];
  for (const c of HETEROGENEOUS_CASES) {
    const alone = await bulkGoodput({ paths: c.paths, scheduler: 'lowest-rtt', size, maxSubflows: 1 });
    out.push({
      case: c.name,
      scheduler: 'better path alone',
      goodputMbit: alone.goodputMbit,
      elapsedMs: alone.elapsedMs,
      shaEqual: alone.shaEqual,
    });
    for (const scheduler of ['lowest-rtt', 'round-robin', 'redundant'] as const) {
      const r = await bulkGoodput({ paths: c.paths, scheduler, size });
      out.push({
        case: c.name,
        scheduler,
        goodputMbit: r.goodputMbit,
        elapsedMs: r.elapsedMs,
        shaEqual: r.shaEqual,
      });
    }
  }
  for (const scheduler of ['lowest-rtt', 'round-robin', 'redundant'] as const) {
    const r = await requestResponse({
      paths: LOSSY_PATHS,
      scheduler,
      messages: options.messages ?? 1000,
      size: 200,
    });
    out.push({
      case: '200-byte echo, 5% loss on both paths',
      scheduler,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      shaEqual: r.shaEqual,
    });
  }
  return out;
}
