import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualScheduler } from '../src/stack/device/clock.js';
import { FaultDevice, type FaultSpec } from '../src/stack/device/fault.js';
import { createMemoryPair } from '../src/stack/device/memory-pair.js';

function packet(id: number, len = 100): Uint8Array {
  const b = new Uint8Array(len);
  b[0] = 0x45;
  new DataView(b.buffer).setUint32(4, id);
  return b;
}

function idOf(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(4);
}

interface Arrival {
  id: number;
  at: number;
}

/**
 * A link: fault(a) ⇄ b on a manual clock. Sends `count` packets of `len` bytes, `gapMs` apart,
 * through the tx side of the fault device and returns what b received and when.
 */
function runTx(spec: FaultSpec, seed: number, count: number, gapMs = 1, len = 100) {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, highWaterMark: 1 << 30 });
  const fault = new FaultDevice(a, { seed, tx: spec, scheduler: clock });
  const arrivals: Arrival[] = [];
  b.onFrames((frames) => {
    for (const f of frames) arrivals.push({ id: idOf(f.data), at: clock.now() });
  });
  for (let i = 0; i < count; i++) {
    clock.setTimer(i * gapMs, () => fault.write([{ data: packet(i, len) }]));
  }
  clock.runUntilIdle();
  return { arrivals, counters: fault.counters.tx, fault };
}

const ids = (arrivals: Arrival[]) => arrivals.map((a) => a.id);

test('no faults: a transparent pass-through, both directions', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const fault = new FaultDevice(a, { seed: 1, scheduler: clock });
  const atB: number[] = [];
  const atFault: number[] = [];
  b.onFrames((frames) => {
    for (const f of frames) atB.push(idOf(f.data));
  });
  fault.onFrames((frames) => {
    for (const f of frames) atFault.push(idOf(f.data));
  });
  fault.write([{ data: packet(1) }, { data: packet(2) }]);
  b.write([{ data: packet(10) }]);
  clock.runUntilIdle();
  assert.deepEqual(atB, [1, 2]);
  assert.deepEqual(atFault, [10]);
  assert.deepEqual(fault.counters.tx, {
    packets: 2,
    delivered: 2,
    deliveredBytes: 200,
    dropped: 0,
    queueDropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
  });
  assert.equal(fault.counters.rx.delivered, 1);
});

test('same seed gives the same trace, a different seed a different one', () => {
  const spec: FaultSpec = {
    drop: 0.1,
    duplicate: 0.05,
    delayMs: 10,
    jitterMs: 5,
    reorder: { probability: 0.05, gap: 2 },
  };
  const one = runTx(spec, 1234, 500);
  const again = runTx(spec, 1234, 500);
  const other = runTx(spec, 1235, 500);
  assert.deepEqual(again.arrivals, one.arrivals);
  assert.deepEqual(again.counters, one.counters);
  assert.notDeepEqual(ids(other.arrivals), ids(one.arrivals));
  for (const r of [one, other]) {
    const c = r.counters;
    assert.ok(c.dropped > 0 && c.duplicated > 0 && c.reordered > 0, JSON.stringify(c));
    assert.equal(c.delivered, c.packets - c.dropped + c.duplicated);
    assert.equal(r.arrivals.length, c.delivered);
  }
});

test('drop rate over many packets is within tolerance of the configured probability', () => {
  const n = 20_000;
  for (const p of [0.01, 0.1, 0.5]) {
    const { counters, arrivals } = runTx({ drop: p }, 99, n, 0.01);
    const rate = counters.dropped / n;
    // 4.5 standard deviations: the outcome is fixed by the seed, the bound says the PRNG is sane.
    const tolerance = 4.5 * Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(rate - p) < tolerance, `p=${p} measured ${rate}`);
    assert.equal(arrivals.length, n - counters.dropped);
    // Survivors stay in order.
    assert.ok(ids(arrivals).every((id, i, all) => i === 0 || id > all[i - 1]!));
  }
  // Exact under the seed.
  assert.equal(
    runTx({ drop: 0.1 }, 99, n, 0.01).counters.dropped,
    runTx({ drop: 0.1 }, 99, n, 0.01).counters.dropped,
  );
});

test('fixed delay shifts every packet; jitter spreads them but keeps order', () => {
  const fixed = runTx({ delayMs: 25 }, 1, 10, 2);
  assert.deepEqual(
    fixed.arrivals,
    Array.from({ length: 10 }, (_, i) => ({ id: i, at: i * 2 + 25 })),
  );
  assert.equal(fixed.counters.delayed, 10);

  const jittered = runTx({ delayMs: 25, jitterMs: 20 }, 7, 200, 1);
  assert.deepEqual(
    ids(jittered.arrivals),
    Array.from({ length: 200 }, (_, i) => i),
  );
  const extra = jittered.arrivals.map((a) => a.at - a.id - 25);
  assert.ok(
    extra.every((e) => e >= 0 && e < 20),
    'delay within [delay, delay + jitter) unless held behind a slower packet',
  );
  assert.ok(new Set(extra.map((e) => Math.round(e))).size > 5, 'jitter varies');
});

test('rate limit: packets leave at the configured rate, queue overflow tail-drops', () => {
  // 1000-byte packets at 100 kB/s: one every 10 ms. All 10 written at once, queue 5000 bytes.
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const fault = new FaultDevice(a, {
    seed: 3,
    tx: { rateBytesPerSec: 100_000, queueLimitBytes: 5000, delayMs: 5 },
    scheduler: clock,
  });
  const arrivals: Arrival[] = [];
  b.onFrames((frames) => {
    for (const f of frames) arrivals.push({ id: idOf(f.data), at: clock.now() });
  });
  fault.write(Array.from({ length: 10 }, (_, i) => ({ data: packet(i, 1000) })));
  clock.runUntilIdle();
  // Backlog before packet k is k*1000 bytes: k=0..4 fit in 5000 (k*1000+1000 <= 5000), the rest drop.
  assert.deepEqual(arrivals, [
    { id: 0, at: 15 },
    { id: 1, at: 25 },
    { id: 2, at: 35 },
    { id: 3, at: 45 },
    { id: 4, at: 55 },
  ]);
  assert.equal(fault.counters.tx.queueDropped, 5);

  // Once the queue drains, the link accepts again, and a slow sender sees only serialization delay.
  const more: Arrival[] = [];
  b.onFrames((frames) => {
    for (const f of frames) more.push({ id: idOf(f.data), at: clock.now() });
  });
  const t0 = clock.now();
  for (let i = 0; i < 5; i++)
    clock.setTimer(t0 + i * 20, () => fault.write([{ data: packet(100 + i, 1000) }]));
  clock.runUntilIdle();
  assert.deepEqual(
    more,
    Array.from({ length: 5 }, (_, i) => ({ id: 100 + i, at: t0 + i * 20 + 15 })),
  );
});

test('rate limit: long-run throughput equals the rate', () => {
  const rate = 1_000_000;
  // Offered 2 MB/s for 1 s: half is tail-dropped, and what passes arrives at 1 MB/s.
  const { arrivals, counters } = runTx(
    { rateBytesPerSec: rate, queueLimitBytes: 20_000 },
    5,
    2000,
    0.5,
    1000,
  );
  const last = arrivals.at(-1)!;
  const first = arrivals[0]!;
  const measured = ((arrivals.length - 1) * 1000 * 1000) / (last.at - first.at);
  assert.ok(Math.abs(measured - rate) / rate < 1e-9, `measured ${measured}`);
  assert.equal(counters.delivered + counters.queueDropped, 2000);
  assert.ok(Math.abs(counters.queueDropped - 1000) <= 25, `queueDropped ${counters.queueDropped}`);
});

test('reordering: every Nth packet held back by gap packets, visible in the trace', () => {
  const { arrivals, counters } = runTx({ reorder: { every: 5, gap: 2 } }, 1, 12, 1);
  // Packets 4 and 9 (the 5th and 10th) each arrive after the two packets behind them.
  assert.deepEqual(ids(arrivals), [0, 1, 2, 3, 5, 6, 4, 7, 8, 10, 11, 9]);
  assert.equal(counters.reordered, 2);
  const late = arrivals.find((a) => a.id === 4)!;
  assert.equal(late.at, 6, 'released together with the packet that completes the gap');
});

test('reordering: a held packet goes after maxHoldMs when nothing overtakes it', () => {
  const { arrivals } = runTx({ reorder: { every: 3, gap: 5, maxHoldMs: 40 } }, 1, 3, 1);
  assert.deepEqual(arrivals, [
    { id: 0, at: 0 },
    { id: 1, at: 1 },
    { id: 2, at: 42 },
  ]);
});

test('reordering by probability and duplication are visible and counted', () => {
  const { arrivals, counters } = runTx({ reorder: { probability: 0.1 }, duplicate: 0.1 }, 77, 1000, 1);
  const seen = ids(arrivals);
  let outOfOrder = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i]! < seen[i - 1]!) outOfOrder++;
  let dups = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i] === seen[i - 1]) dups++;
  assert.ok(counters.reordered > 50 && counters.reordered < 150, `reordered ${counters.reordered}`);
  assert.ok(counters.duplicated > 50 && counters.duplicated < 150, `duplicated ${counters.duplicated}`);
  assert.ok(outOfOrder > 0);
  assert.equal(new Set(seen).size, 1000, 'nothing lost');
  assert.equal(seen.length, 1000 + counters.duplicated);
  // A duplicate follows its original unless the original was held back.
  assert.ok(dups >= counters.duplicated - counters.reordered, `adjacent duplicates ${dups}`);
});

test('rx direction: faults apply to what the inner device receives', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const fault = new FaultDevice(a, { seed: 11, rx: { delayMs: 7, drop: 0.5 }, scheduler: clock });
  const got: Arrival[] = [];
  fault.onFrames((frames) => {
    for (const f of frames) got.push({ id: idOf(f.data), at: clock.now() });
  });
  b.write(Array.from({ length: 100 }, (_, i) => ({ data: packet(i) })));
  clock.runUntilIdle();
  const c = fault.counters.rx;
  assert.equal(got.length, 100 - c.dropped);
  assert.ok(c.dropped > 25 && c.dropped < 75);
  assert.ok(got.every((g) => g.at === 7));
  assert.equal(fault.counters.tx.packets, 0);
});

test('held frames are copies: the inner device may reuse its buffers', () => {
  // The memory pair poisons delivered frames after the handler returns; delayed frames survive.
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const fault = new FaultDevice(a, { seed: 1, rx: { delayMs: 3, reorder: { every: 2 } }, scheduler: clock });
  const got: number[] = [];
  fault.onFrames((frames) => {
    for (const f of frames) got.push(idOf(f.data));
  });
  b.write([{ data: packet(1) }, { data: packet(2) }, { data: packet(3) }]);
  clock.runUntilIdle();
  assert.deepEqual(got, [1, 3, 2]);
});

test('backpressure of the inner device is passed on; bad options throw', async () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, highWaterMark: 150, queueLimit: 10_000 });
  b.onFrames(() => {
    // Consumes and forgets.
  });
  const fault = new FaultDevice(a, { seed: 1, scheduler: clock });
  let drained = 0;
  fault.onDrain(() => drained++);
  assert.equal(fault.write([{ data: packet(1) }]), true);
  assert.equal(fault.write([{ data: packet(2) }]), false);
  clock.runUntilIdle();
  assert.equal(drained, 1);
  assert.equal(fault.write([{ data: packet(3) }]), true);
  await fault.close();
  assert.equal(a.isClosed, true);
  assert.throws(() => fault.write([{ data: packet(4) }]), { code: 'MPTUN_ERR_DEVICE_CLOSED' });

  const [c] = createMemoryPair({ scheduler: clock });
  assert.throws(() => new FaultDevice(c, { seed: 1, tx: { drop: 1.5 } }), { code: 'MPTUN_ERR_INVALID_ARG' });
  assert.throws(() => new FaultDevice(c, { seed: 1, rx: { rateBytesPerSec: 0 } }), {
    code: 'MPTUN_ERR_INVALID_ARG',
  });
  assert.throws(() => new FaultDevice(c, { seed: 1, tx: { reorder: { gap: 0 } } }), {
    code: 'MPTUN_ERR_INVALID_ARG',
  });
  assert.throws(() => new FaultDevice(c, { seed: 0.5 }), { code: 'MPTUN_ERR_INVALID_ARG' });
});
