import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualScheduler } from '../src/stack/device/clock.js';
import type { Frame } from '../src/stack/device/device.js';
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

test('what one end writes, the other receives, in order, asynchronously, as copies', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  const gotB: number[] = [];
  const gotA: number[] = [];
  const kept: Uint8Array[] = [];
  b.onFrames((frames) => {
    for (const f of frames) {
      gotB.push(idOf(f.data));
      kept.push(f.data);
    }
  });
  a.onFrames((frames) => {
    for (const f of frames) gotA.push(idOf(f.data));
  });
  const src = packet(1);
  assert.equal(a.write([{ data: src }, { data: packet(2) }]), true);
  // The writer may reuse its buffer right away.
  src.fill(0);
  assert.equal(b.write([{ data: packet(100) }]), true);
  assert.deepEqual(gotB, [], 'delivery is asynchronous');
  a.write([{ data: packet(3) }]);
  clock.runUntilIdle();
  assert.deepEqual(gotB, [1, 2, 3]);
  assert.deepEqual(gotA, [100]);
  // Frames are borrowed: after the handler returns their bytes are gone (poisoned).
  assert.ok(kept.every((d) => d.every((x) => x === 0xee)));
  assert.deepEqual(
    { tx: a.stats.txFrames, rx: b.stats.rxFrames, bytes: b.stats.rxBytes },
    { tx: 3, rx: 3, bytes: 300 },
  );
});

test('batches of at most batchSize frames per handler call', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, batchSize: 4 });
  const sizes: number[] = [];
  const ids: number[] = [];
  b.onFrames((frames) => {
    sizes.push(frames.length);
    for (const f of frames) ids.push(idOf(f.data));
  });
  a.write(Array.from({ length: 10 }, (_, i) => ({ data: packet(i) })));
  clock.runUntilIdle();
  assert.deepEqual(sizes, [4, 4, 2]);
  assert.deepEqual(
    ids,
    Array.from({ length: 10 }, (_, i) => i),
  );
});

test('backpressure: write() returns false above the high-water mark, drain after delivery', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, highWaterMark: 1000, queueLimit: 2000 });
  let drains = 0;
  a.onDrain(() => drains++);
  const ids: number[] = [];
  b.onFrames((frames) => {
    for (const f of frames) ids.push(idOf(f.data));
  });
  const results: boolean[] = [];
  for (let i = 0; i < 12; i++) results.push(a.write([{ data: packet(i, 200) }]));
  // 200..1000 bytes queued: true; 1200.. : false; 2200 would exceed the hard limit: dropped.
  assert.deepEqual(results, [true, true, true, true, true, false, false, false, false, false, false, false]);
  assert.equal(a.stats.dropQueueFull, 2);
  assert.equal(b.queuedBytes, 2000);
  assert.equal(drains, 0);
  clock.runUntilIdle();
  assert.equal(drains, 1);
  assert.deepEqual(
    ids,
    Array.from({ length: 10 }, (_, i) => i),
  );
  assert.equal(a.write([{ data: packet(99) }]), true);
  clock.runUntilIdle();
  assert.equal(drains, 1, 'no drain without a preceding false');
});

test('a writer that waits for drain moves everything, none dropped', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, highWaterMark: 4000, batchSize: 8 });
  const total = 1000;
  let next = 0;
  const pump = () => {
    while (next < total) {
      if (!a.write([{ data: packet(next++, 500) }])) return;
    }
  };
  a.onDrain(pump);
  const ids: number[] = [];
  b.onFrames((frames) => {
    for (const f of frames) ids.push(idOf(f.data));
  });
  pump();
  clock.runUntilIdle();
  assert.equal(ids.length, total);
  assert.ok(ids.every((id, i) => id === i));
  assert.equal(a.stats.dropQueueFull, 0);
});

test('frames queue until a handler is attached', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  a.write([{ data: packet(1) }]);
  clock.runUntilIdle();
  const ids: number[] = [];
  b.onFrames((frames) => {
    for (const f of frames) ids.push(idOf(f.data));
  });
  clock.runUntilIdle();
  assert.deepEqual(ids, [1]);
});

test('MTU, offload and bad frames are counted and dropped, never thrown', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, mtu: 1280 });
  let got = 0;
  b.onFrames((frames) => {
    got += frames.length;
  });
  const gso = {
    needsCsum: true,
    dataValid: false,
    gsoType: 'tcpv4' as const,
    hdrLen: 52,
    gsoSize: 1228,
    csumStart: 20,
    csumOffset: 16,
  };
  a.write([
    { data: packet(1, 1280) },
    { data: packet(2, 1281) },
    { data: new Uint8Array(0) },
    { data: packet(3, 4000), gso },
  ]);
  clock.runUntilIdle();
  assert.equal(got, 1);
  assert.deepEqual(
    { tooBig: a.stats.dropTooBig, empty: a.stats.dropEmpty, gso: a.stats.dropBadGso },
    { tooBig: 1, empty: 1, gso: 1 },
  );
});

test('offload pair carries super-packets with their GSO header', () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock, offload: true, mtu: 1500 });
  assert.equal(a.offload, true);
  const received: Frame[] = [];
  b.onFrames((frames) => {
    for (const f of frames)
      received.push(f.gso ? { data: f.data.slice(), gso: { ...f.gso } } : { data: f.data.slice() });
  });
  const gso = {
    needsCsum: true,
    dataValid: false,
    gsoType: 'tcpv4' as const,
    hdrLen: 52,
    gsoSize: 1448,
    csumStart: 20,
    csumOffset: 16,
  };
  a.write([
    { data: packet(7, 64_000), gso },
    { data: packet(8, 70_000), gso },
  ]);
  clock.runUntilIdle();
  assert.equal(received.length, 1);
  assert.equal(idOf(received[0]!.data), 7);
  assert.deepEqual(received[0]!.gso, gso);
  assert.equal(a.stats.dropTooBig, 1);
});

test('close: writes after close throw, writes to a closed peer are counted', async () => {
  const clock = new ManualScheduler();
  const [a, b] = createMemoryPair({ scheduler: clock });
  let got = 0;
  b.onFrames((frames) => {
    got += frames.length;
  });
  a.write([{ data: packet(1) }]);
  await b.close();
  clock.runUntilIdle();
  assert.equal(got, 0);
  a.write([{ data: packet(2) }]);
  assert.equal(a.stats.dropPeerClosed, 1);
  assert.throws(() => b.write([{ data: packet(3) }]), { code: 'MPTUN_ERR_DEVICE_CLOSED' });
  await b.close();
});

test('options are validated', () => {
  assert.throws(() => createMemoryPair({ mtu: 10 }), { code: 'MPTUN_ERR_INVALID_ARG' });
  assert.throws(() => createMemoryPair({ highWaterMark: 100, queueLimit: 10 }), {
    code: 'MPTUN_ERR_INVALID_ARG',
  });
  assert.throws(() => createMemoryPair({ batchSize: 0 }), { code: 'MPTUN_ERR_INVALID_ARG' });
});

test('real-time scheduler by default: delivery happens on a later turn', async () => {
  const [a, b] = createMemoryPair();
  const got = new Promise<number>((resolve) => b.onFrames((frames) => resolve(idOf(frames[0]!.data))));
  a.write([{ data: packet(5) }]);
  assert.equal(await got, 5);
  await a.close();
  await b.close();
});
