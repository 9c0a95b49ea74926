/**
 * RFC 6356 goal 2 ("do no harm") in the simulator: one bottleneck link shared by an MPTCP
 * connection with two subflows (from two client addresses to one server address, so both cross
 * the same link) and one plain TCP connection. Both send bulk data client → server at once; the
 * share is the MPTCP connection's fraction of the bytes the server received in the measuring
 * window (after a warm-up). Everything runs on the seeded simulator (test/support/sim.ts): one
 * FIFO drop-tail queue at the link's rate in the client → server direction, the same one-way
 * delay both ways. Same options, same figures (the MPTCP keys are not seeded, but they change
 * no size or timing).
 */
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { MptcpCongestionName } from '../../src/stack/mptcp/coupled-cc.js';
import { SIM_CLIENT, SIM_SERVER, Sim } from './sim.js';

/** The plain flow's address and the MPTCP connection's second one (the first is SIM_CLIENT). */
export const BOTTLENECK_CLIENT2 = '10.0.0.11';
export const BOTTLENECK_PLAIN = '10.0.0.12';

export interface SharedBottleneckOptions {
  seed?: number;
  /** The MPTCP connection's subflows (both ends; the sender's is what matters). */
  congestion: MptcpCongestionName;
  /** The plain TCP flow's controller (default: the engine's default, CUBIC). */
  plainCongestion?: 'cubic' | 'newreno';
  /** Bottleneck rate (Mbit/s; default 50) and round-trip propagation delay (ms; default 20). */
  rateMbit?: number;
  rttMs?: number;
  /** Bottleneck queue in packets (default: one bandwidth-delay product). */
  queuePackets?: number;
  /** Link MTU (default 1500); larger frames make a simulated second cheaper. */
  mtu?: number;
  /** Jitter (ms, uniform, seeded) on the ACK path: breaks the phase effects of a drop-tail queue. */
  jitterMs?: number;
  /** Random (seeded) loss probability at the bottleneck, beside its queue's tail drops. */
  drop?: number;
  /** Simulated time of the whole run and of the warm-up not counted (ms; default 20 s / 5 s). */
  durationMs?: number;
  warmupMs?: number;
}

export interface SharedBottleneckResult {
  congestion: MptcpCongestionName;
  plainCongestion: 'cubic' | 'newreno';
  /** Bytes the server received from each flow in the measuring window. */
  mptcpBytes: number;
  plainBytes: number;
  /** mptcpBytes / (mptcpBytes + plainBytes). */
  share: number;
  mptcpMbit: number;
  plainMbit: number;
  /** Link utilisation in the window (both flows' goodput over the rate). */
  utilisation: number;
  subflows: {
    local: string;
    bytesSent: number;
    cwnd: number;
    srttMs: number | undefined;
    congestion: string;
  }[];
  queueDropped: number;
}

const CHUNK = new Uint8Array(64 * 1024).fill(0x5a);

/** Writes until destroyed, following backpressure. */
function sendForever(socket: TcpSocket): void {
  const pump = () => {
    while (!socket.destroyed && socket.write(CHUNK)) {
      // Keep writing until the socket pushes back.
    }
    if (!socket.destroyed) socket.once('drain', pump);
  };
  socket.on('connect', pump);
}

export async function runSharedBottleneck(o: SharedBottleneckOptions): Promise<SharedBottleneckResult> {
  const rateMbit = o.rateMbit ?? 50;
  const rttMs = o.rttMs ?? 20;
  const durationMs = o.durationMs ?? 20_000;
  const warmupMs = o.warmupMs ?? 5_000;
  const plainCongestion = o.plainCongestion ?? 'cubic';
  const rateBytesPerSec = (rateMbit * 1e6) / 8;
  const mtu = o.mtu ?? 1500;
  const bdpPackets = Math.max(8, Math.round((rateBytesPerSec * rttMs) / 1000 / mtu));
  const queuePackets = o.queuePackets ?? bdpPackets;
  const sim = new Sim({
    seed: o.seed ?? 1,
    mtu,
    forward: {
      rateBytesPerSec,
      delayMs: rttMs / 2,
      queueLimitBytes: queuePackets * mtu,
      ...(o.drop ? { drop: o.drop } : {}),
    },
    reverse: { delayMs: rttMs / 2, ...(o.jitterMs ? { jitterMs: o.jitterMs } : {}) },
    clientAddresses: [BOTTLENECK_CLIENT2, BOTTLENECK_PLAIN],
    // Receive windows that never limit either flow (several BDPs).
    tcp: { recvBufferSize: 4 << 20, maxRecvBufferSize: 16 << 20, sendBufferSize: 4 << 20 },
  });
  const received = { mptcp: 0, plain: 0 };
  let counting = false;
  const servers: TcpSocket[] = [];
  const count = (which: 'mptcp' | 'plain') => (socket: TcpSocket) => {
    servers.push(socket);
    socket.on('data', (chunk: Buffer) => {
      if (counting) received[which] += chunk.length;
    });
    socket.on('error', () => {
      // Torn down at the end of the run.
    });
  };
  const mptcpConfig = { congestion: o.congestion, cFlag: false, maxSubflows: 2 };
  const l1 = sim.server.listen({ port: 5001, mptcp: mptcpConfig }, count('mptcp'));
  const l2 = sim.server.listen({ port: 5002, tcp: { congestion: plainCongestion } }, count('plain'));
  const mp = sim.client.connect({
    host: SIM_SERVER,
    port: 5001,
    localAddress: SIM_CLIENT,
    mptcp: mptcpConfig,
  });
  const plain = sim.client.connect({
    host: SIM_SERVER,
    port: 5002,
    localAddress: BOTTLENECK_PLAIN,
    tcp: { congestion: plainCongestion },
  });
  let failure: unknown;
  for (const s of [mp, plain]) {
    s.on('error', (e) => {
      failure ??= e;
    });
    sendForever(s);
  }
  try {
    await sim.runFor(warmupMs);
    counting = true;
    await sim.runFor(durationMs - warmupMs);
    counting = false;
  } finally {
    l1.close();
    l2.close();
  }
  if (failure !== undefined) throw failure;
  const info = mp.info().mptcp;
  const seconds = (durationMs - warmupMs) / 1000;
  const toMbit = (bytes: number) => (bytes * 8) / seconds / 1e6;
  const result: SharedBottleneckResult = {
    congestion: o.congestion,
    plainCongestion,
    mptcpBytes: received.mptcp,
    plainBytes: received.plain,
    share: received.mptcp / (received.mptcp + received.plain),
    mptcpMbit: toMbit(received.mptcp),
    plainMbit: toMbit(received.plain),
    utilisation: toMbit(received.mptcp + received.plain) / rateMbit,
    subflows: (info?.subflows ?? []).map((s) => ({
      local: s.local,
      bytesSent: s.info.bytesSent,
      cwnd: s.info.cwnd,
      srttMs: s.info.srtt,
      congestion: s.info.congestion,
    })),
    queueDropped: sim.clientFault.counters.tx.queueDropped,
  };
  mp.destroy();
  plain.destroy();
  for (const s of servers) s.destroy();
  return result;
}

/** The test's and the bench's setting: 50 Mbit/s, 20 ms, one BDP of queue, 0.1% random loss. */
export const SHARED_BOTTLENECK_DEFAULTS = {
  seed: 1,
  rateMbit: 50,
  rttMs: 20,
  drop: 0.001,
  durationMs: 16_000,
  warmupMs: 4_000,
} as const;

/**
 * The shared-bottleneck figures: each MPTCP congestion control against one plain TCP flow of
 * each kind (`quick`: NewReno only and shorter runs).
 */
export async function sharedBottleneckFigures(
  opts: { quick?: boolean; durationMs?: number } = {},
): Promise<SharedBottleneckResult[]> {
  const out: SharedBottleneckResult[] = [];
  const plains = opts.quick ? (['newreno'] as const) : (['newreno', 'cubic'] as const);
  const durationMs = opts.durationMs ?? (opts.quick ? 6_000 : 30_000);
  for (const plainCongestion of plains) {
    for (const congestion of ['lia', 'olia', 'balia', 'cubic', 'newreno'] as const) {
      out.push(
        await runSharedBottleneck({ ...SHARED_BOTTLENECK_DEFAULTS, durationMs, congestion, plainCongestion }),
      );
    }
  }
  return out;
}
