/**
 * Must-show 2: 50 MB transfers between two userspace stacks on the deterministic simulator,
 * SHA-256 equal at both ends, under each kind of path fault. Rates and delays are simulated
 * time (deterministic), so goodput figures are exact properties of the code, not of this machine.
 * Link rates count whole IP packets; goodput counts payload bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FaultSpec } from '../src/stack/device/fault.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

const MB50 = 50_000_000;
const data = seededBytes(2026, MB50);
/** Payload per full segment: MSS 1460 minus the 12 bytes of the timestamps option. */
const SEGMENT_PAYLOAD = 1448;
/** Generous bound on simulated time; a stall or livelock fails instead of hanging. */
const LIMIT_MS = 3_600_000;

/** One line per run for the test log: goodput and the sender's recovery counters. */
function summary(goodputBps: number, sim: Sim): string {
  const tcp = sim.client.stats().tcp;
  return `goodput ${(goodputBps / 1e6).toFixed(3)} Mbit/s, ${tcp.retransmitSegments} retransmitted segments, ${tcp.rtoExpired} RTOs, ${tcp.sackRecoveries} SACK recoveries`;
}

function mbit(rate: number): number {
  return (rate * 1e6) / 8;
}

/** The same link both ways (rate, one-way delay), faults only on client → server. */
function link(
  rateMbit: number,
  oneWayMs: number,
  faults: FaultSpec = {},
): { forward: FaultSpec; reverse: FaultSpec } {
  const base = { rateBytesPerSec: mbit(rateMbit), delayMs: oneWayMs };
  return { forward: { ...base, ...faults }, reverse: base };
}

test('sim: clean link, 50 Mbit/s, 10 ms RTT: SHA-256 equal, goodput >= 95% of the link, no retransmission', async (t) => {
  const sim = new Sim({ seed: 1, ...link(50, 5) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.equal(r.bytes, MB50);
  assert.ok(r.goodputBps >= 0.95 * 50e6, `goodput ${(r.goodputBps / 1e6).toFixed(2)} Mbit/s`);
  assert.equal(sim.client.stats().tcp.retransmitSegments, 0);
  assert.equal(sim.client.stats().tcp.rtoExpired, 0);
});

test('sim: 1% loss at 50 ms RTT, 20 Mbit/s: SHA-256 equal, RTO only for lost retransmissions, goodput >= Mathis bound', async (t) => {
  const p = 0.01;
  const rttMs = 50;
  const sim = new Sim({ seed: 1, ...link(20, rttMs / 2, { drop: p }) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
  const tcp = sim.client.stats().tcp;
  assert.ok(tcp.sackRecoveries > 0);
  // SACK recovery repairs every loss except a lost retransmission, which only a timeout can.
  assert.ok(
    tcp.rtoExpired <= sim.retransmits.lost,
    `${tcp.rtoExpired} RTOs, ${sim.retransmits.lost} retransmissions lost`,
  );
  const mathisBps = ((SEGMENT_PAYLOAD * 8) / (rttMs / 1000)) * (1.22 / Math.sqrt(p));
  assert.ok(
    r.goodputBps >= mathisBps,
    `goodput ${(r.goodputBps / 1e6).toFixed(3)} Mbit/s below the Mathis bound ${(mathisBps / 1e6).toFixed(3)}`,
  );
});

test('sim: 5% loss, 20 Mbit/s, 10 ms RTT: SHA-256 equal', async (t) => {
  const sim = new Sim({ seed: 1, ...link(20, 5, { drop: 0.05 }) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.ok(sim.client.stats().tcp.sackRecoveries > 0);
});

test('sim: reordering depth 3 (1% of packets overtaken by 3), 50 Mbit/s: SHA-256 equal', async (t) => {
  const sim = new Sim({ seed: 1, ...link(50, 5, { reorder: { probability: 0.01, gap: 3 } }) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.ok(sim.clientFault.counters.tx.reordered > 0);
});

test('sim: 1% duplication, 50 Mbit/s: SHA-256 equal', async (t) => {
  const sim = new Sim({ seed: 1, ...link(50, 5, { duplicate: 0.01 }) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
  assert.ok(sim.clientFault.counters.tx.duplicated > 0);
  assert.equal(sim.client.stats().tcp.rtoExpired, 0);
});

test('sim: 200 ms RTT at 20 Mbit/s: SHA-256 equal', async (t) => {
  const sim = new Sim({ seed: 1, ...link(20, 100) });
  const r = await simTransfer(sim, data, LIMIT_MS);
  t.diagnostic(summary(r.goodputBps, sim));
  assert.equal(r.receivedSha256, r.sentSha256);
});
