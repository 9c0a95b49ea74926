import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FaultSpec } from '../src/stack/device/fault.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

const data = seededBytes(7, 2_000_000);
const faults: FaultSpec = {
  rateBytesPerSec: 2_500_000,
  delayMs: 10,
  jitterMs: 2,
  drop: 0.02,
  duplicate: 0.01,
  reorder: { probability: 0.02, gap: 2 },
};

async function traceOf(seed: number): Promise<{ hash: string; packets: number }> {
  const sim = new Sim({ seed, forward: faults, reverse: { ...faults, drop: 0.01 } });
  const r = await simTransfer(sim, data, 600_000);
  assert.equal(r.receivedSha256, r.sentSha256);
  return { hash: sim.traceHash(), packets: sim.packetsSent };
}

test('sim: the same seed gives the same packet trace (time, length and headers of every packet)', async () => {
  const first = await traceOf(11);
  const second = await traceOf(11);
  assert.ok(first.packets > 1000);
  assert.deepEqual(second, first);
});

test('sim: another seed gives another trace', async () => {
  const a = await traceOf(11);
  const b = await traceOf(12);
  assert.notEqual(a.hash, b.hash);
});
