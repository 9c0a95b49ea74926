/**
 * MptcpConfig.staleAfterRtos in the two-path simulator (direct mode: the initial subflow on path
 * 0, a join on path 1, 10 Mbit/s and 5 ms each way, 100-packet queues). A subflow's data is
 * reinjected on its first RTO whatever the setting; it is marked stale (out of scheduling) only
 * after that many RTOs in a row. What the figures in docs/DESIGN-NOTES.md were measured with:
 *
 * - two regular paths, path 0 dies silently at 1 s: the stall (largest gap in delivered bytes at
 *   the server) for N = 1..4 — one subflow RTO for every N;
 * - a regular path 0 and a backup path 1, path 0 dies at 1 s: the backup takes over after N RTOs,
 *   so the stall grows with N;
 * - a lossy regular path 0 (3% loss) beside a clean backup path: what the backup carries while
 *   the regular path works (it should carry nothing) for N = 1..4.
 *
 * Each transfer is checked by SHA-256. Times are simulated (the manual clock), so the figures are
 * exact for the seed; the asserts are the properties, not the figures.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Frame } from '../src/stack/device/device.js';
import { parseAddress } from '../src/stack/iface/address.js';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../src/stack/mptcp/connection.js';
import { DEFAULT_MPTCP_CONFIG, type MptcpConfig } from '../src/stack/mptcp/types.js';
import {
  MP_CLIENT_ADDRS,
  MP_VIP,
  MultipathSim,
  type PathSpec,
  patternBytes,
} from './support/multipath-sim.js';

const SIZE = 6 << 20;
/** Small messages: 2000 bytes every 20 ms for 10 s. */
const PACED_SIZE = 500 * 2000;
const DIES_AT = 1000;

interface Outcome {
  sha256: string;
  received: number;
  /** Largest gap between deliveries of new bytes at the server (simulated ms). */
  maxGapMs: number;
  /** Bytes the client's subflows from path 1's address sent before `DIES_AT` (or in all). */
  path1BytesBefore: number;
  counters: Record<string, number>;
}

function mptcpOf(s: TcpSocket): MptcpInfo {
  return (s.info() as { mptcp: MptcpInfo }).mptcp;
}

function path1Sent(s: TcpSocket): number {
  let n = 0;
  for (const sf of mptcpOf(s).subflows)
    if (sf.local.startsWith(`${MP_CLIENT_ADDRS[1]}:`)) n += sf.info.bytesSent;
  return n;
}

/** Upload SIZE bytes over two paths; path 0 loses every frame from `diesAt` on (if given). */
async function upload(
  seed: number,
  paths: readonly [PathSpec, PathSpec],
  mptcp: Partial<MptcpConfig>,
  diesAt: number | undefined,
  /** Write `bytes` every `everyMs` (small messages) instead of as fast as the windows allow. */
  paced?: { bytes: number; everyMs: number },
): Promise<Outcome> {
  const sim = new MultipathSim({ seed, paths });
  if (diesAt !== undefined) {
    for (const dev of sim.faults[0]!) {
      const write = dev.write.bind(dev);
      dev.write = (frames: readonly Frame[]) => (sim.clock.now() >= diesAt ? true : write(frames));
    }
  }
  const size = paced === undefined ? SIZE : PACED_SIZE;
  const data = patternBytes(seed, size);
  const hash = createHash('sha256');
  let received = 0;
  let last = sim.clock.now();
  let maxGapMs = 0;
  let ended = false;
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
  };
  const listener = sim.server.listen({ port: 5201, allowHalfOpen: true, mptcp: sim.listenMptcp() }, (s) => {
    s.on('error', fail);
    s.on('data', (d: Buffer) => {
      const now = sim.clock.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      hash.update(d);
      received += d.length;
    });
    s.on('end', () => {
      ended = true;
      s.end();
    });
  });
  const client = sim.client.connect({
    host: MP_VIP,
    port: 5201,
    localAddress: MP_CLIENT_ADDRS[0],
    allowHalfOpen: true,
    mptcp,
  });
  client.on('error', fail);
  client.resume();
  let off = 0;
  const writeOne = () => {
    if (paced === undefined) return;
    const n = Math.min(paced.bytes, data.length - off);
    client.write(data.subarray(off, off + n));
    off += n;
    if (off === data.length) client.end();
    else sim.clock.setTimer(sim.clock.now() + paced.everyMs, writeOne);
  };
  const pump = () => {
    if (paced !== undefined) return writeOne();
    while (off < data.length) {
      const n = Math.min(64 << 10, data.length - off);
      const ok = client.write(data.subarray(off, off + n));
      off += n;
      if (!ok) return;
    }
    client.end();
  };
  client.on('drain', pump);
  client.once('connect', pump);
  let path1BytesBefore = 0;
  await sim.run(() => {
    if (diesAt === undefined || sim.clock.now() < diesAt) path1BytesBefore = path1Sent(client);
    return ended || failure !== undefined;
  }, 120_000);
  if (failure !== undefined) throw failure;
  const c = sim.client.stats().mptcp!;
  const counters = {
    SubflowStale: c.SubflowStale,
    SubflowRecover: c.SubflowRecover,
    subflowRtoReinjections: c.subflowRtoReinjections,
    backupTakeover: c.backupTakeover,
    dataRtoFired: c.dataRtoFired,
    reinjectedBytes: c.reinjectedBytes,
  };
  client.destroy();
  listener.close();
  return { sha256: hash.digest('hex'), received, maxGapMs, path1BytesBefore, counters };
}

const clean: PathSpec = { rateMbit: 10, delayMs: 5, queuePackets: 100 };
const lossy: PathSpec = { ...clean, drop: 0.05 };
const backup = { backupAddresses: [parseAddress(MP_CLIENT_ADDRS[1])] };
const sha = (seed: number, size = SIZE) =>
  createHash('sha256').update(patternBytes(seed, size)).digest('hex');

describe('MPTCP staleAfterRtos: reinjection at the first RTO, stale after N', () => {
  it('defaults to 2; connect refuses a value that is not an integer >= 1', () => {
    assert.equal(DEFAULT_MPTCP_CONFIG.staleAfterRtos, 2);
    const sim = new MultipathSim({ seed: 50, paths: [clean, clean] });
    for (const bad of [0, 1.5, Number.NaN]) {
      assert.throws(
        () => sim.client.connect({ host: MP_VIP, port: 5201, mptcp: { staleAfterRtos: bad } }),
        (e: Error & { code?: string }) =>
          e.code === 'MPTUN_ERR_INVALID_ARG' && /staleAfterRtos/.test(e.message),
      );
    }
  });

  it('two regular paths, one dies: the stall is one subflow RTO for every N', async (t) => {
    const rows: string[] = [];
    for (const n of [1, 2, 3, 4]) {
      const r = await upload(51, [clean, clean], { staleAfterRtos: n }, DIES_AT);
      rows.push(`N=${n}: stall ${r.maxGapMs} ms ${JSON.stringify(r.counters)}`);
      assert.equal(r.received, SIZE);
      assert.equal(r.sha256, sha(51));
      assert.ok(r.counters.subflowRtoReinjections! >= 1, rows.at(-1));
      assert.ok(r.maxGapMs < 600, rows.at(-1));
    }
    t.diagnostic(rows.join('; '));
  });

  it('a regular and a backup path, the regular dies: the backup takes over after N RTOs', async (t) => {
    const rows: string[] = [];
    const stalls: number[] = [];
    for (const n of [1, 2, 3, 4]) {
      const r = await upload(52, [clean, clean], { staleAfterRtos: n, ...backup }, DIES_AT);
      rows.push(
        `N=${n}: stall ${r.maxGapMs} ms, backup sent ${r.path1BytesBefore} B before ${JSON.stringify(r.counters)}`,
      );
      assert.equal(r.sha256, sha(52));
      assert.equal(r.path1BytesBefore, 0, rows.at(-1));
      assert.ok(r.counters.backupTakeover! >= 1, rows.at(-1));
      stalls.push(r.maxGapMs);
    }
    t.diagnostic(rows.join('; '));
    assert.ok(stalls[0]! < 600, rows[0]);
    assert.ok(stalls[1]! > stalls[0]!, rows.join('; '));
  });

  it('a lossy regular path (5%) beside a backup, small messages: what the backup carries', async (t) => {
    const rows: string[] = [];
    const carried: number[] = [];
    for (const n of [1, 2, 3, 4]) {
      const r = await upload(53, [lossy, clean], { staleAfterRtos: n, ...backup }, undefined, {
        bytes: 2000,
        everyMs: 20,
      });
      rows.push(
        `N=${n}: backup sent ${r.path1BytesBefore} B, gap ${r.maxGapMs} ms ${JSON.stringify(r.counters)}`,
      );
      assert.equal(r.sha256, sha(53, PACED_SIZE));
      carried.push(r.path1BytesBefore);
    }
    t.diagnostic(rows.join('; '));
    // More RTOs before stale: never more spurious takeovers.
    for (let i = 1; i < carried.length; i++) assert.ok(carried[i]! <= carried[i - 1]!, rows.join('; '));
  });
});
