import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { ManualScheduler, RealScheduler } from '../src/stack/device/clock.js';
import { SeededRandom } from '../src/stack/device/prng.js';

test('manual clock runs due timers in time order, ties in the order they were set', () => {
  const clock = new ManualScheduler(1000);
  const log: string[] = [];
  clock.setTimer(1020, () => log.push(`c@${clock.now()}`));
  clock.setTimer(1010, () => log.push(`a@${clock.now()}`));
  clock.setTimer(1010, () => log.push(`b@${clock.now()}`));
  clock.setTimer(1030, () => log.push(`d@${clock.now()}`));
  assert.equal(clock.pending, 4);
  assert.equal(clock.advance(20), 3);
  assert.deepEqual(log, ['a@1010', 'b@1010', 'c@1020']);
  assert.equal(clock.now(), 1020);
  assert.equal(clock.nextAt(), 1030);
  assert.equal(clock.runUntilIdle(), 1);
  assert.deepEqual(log.at(-1), 'd@1030');
  assert.equal(clock.pending, 0);
  assert.equal(clock.nextAt(), undefined);
});

test('manual clock: cancel, timers set from timers, timers set in the past', () => {
  const clock = new ManualScheduler();
  const log: number[] = [];
  const h = clock.setTimer(5, () => log.push(5));
  clock.cancel(h);
  clock.cancel(h);
  clock.setTimer(10, () => {
    log.push(10);
    // Due within the same advance(): runs in it.
    clock.setTimer(12, () => log.push(12));
    // In the past: due now, never moves the clock back.
    clock.setTimer(1, () => log.push(clock.now()));
  });
  clock.setTimer(12, () => log.push(-12));
  clock.advance(15);
  assert.deepEqual(log, [10, 10, -12, 12]);
  assert.equal(clock.now(), 15);
  assert.equal(clock.pending, 0);
});

test('manual clock: advance with nothing due just moves time; runaway timers are caught', () => {
  const clock = new ManualScheduler();
  assert.equal(clock.advance(7.5), 0);
  assert.equal(clock.now(), 7.5);
  assert.equal(clock.advanceTo(3), 0);
  assert.equal(clock.now(), 7.5);
  const rearm = () => {
    clock.setTimer(clock.now(), rearm);
  };
  rearm();
  assert.throws(() => clock.runUntilIdle(1000), { code: 'MPTUN_ERR_INVALID_ARG' });
  assert.throws(() => clock.advance(-1), { code: 'MPTUN_ERR_INVALID_ARG' });
  assert.throws(() => clock.setTimer(Number.NaN, () => assert.fail('must not be set')), {
    code: 'MPTUN_ERR_INVALID_ARG',
  });
});

test('manual clock: many random timers fire sorted by (time, insertion)', () => {
  const clock = new ManualScheduler();
  const rng = new SeededRandom(42);
  const fired: [number, number][] = [];
  const expected: [number, number][] = [];
  const handles = [];
  for (let i = 0; i < 2000; i++) {
    const at = rng.int(100);
    handles.push(clock.setTimer(at, () => fired.push([clock.now(), i])));
    if (i % 7 === 0) clock.cancel(handles[i]!);
    else expected.push([at, i]);
  }
  expected.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  clock.runUntilIdle();
  assert.deepEqual(fired, expected);
});

test('real scheduler runs timers at about their time and cancels', async () => {
  const clock = new RealScheduler();
  const start = clock.now();
  const cancelled = clock.setTimer(start + 5, () => assert.fail('cancelled timer ran'));
  clock.cancel(cancelled);
  const cancelledNow = clock.setTimer(start, () => assert.fail('cancelled immediate ran'));
  clock.cancel(cancelledNow);
  const order: string[] = [];
  await new Promise<void>((resolve) => {
    clock.setTimer(start + 20, () => {
      order.push('later');
      resolve();
    });
    clock.setTimer(start - 1, () => order.push('due'));
  });
  assert.deepEqual(order, ['due', 'later']);
  assert.ok(clock.now() - start >= 19, `timer fired after ${clock.now() - start} ms`);
});

test('RealScheduler: input that arrived while the process was busy is read before a timer that fell due meanwhile', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const peer = await accepted;
  try {
    const clock = new RealScheduler();
    const order: string[] = [];
    const both = new Promise<void>((resolve) => {
      peer.once('data', () => {
        order.push('input');
        if (order.length === 2) resolve();
      });
      clock.setTimer(clock.now() + 5, () => {
        order.push('timer');
        if (order.length === 2) resolve();
      });
    });
    client.write('x');
    // The process is busy past the timer's time; the byte is in the kernel's buffer by then.
    const until = clock.now() + 30;
    while (clock.now() < until) {
      // busy: no event loop turn
    }
    await both;
    assert.deepEqual(order, ['input', 'timer']);
  } finally {
    client.destroy();
    peer.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('PRNG: same seed same stream, streams and seeds differ, roughly uniform', () => {
  const take = (r: SeededRandom) => Array.from({ length: 8 }, () => r.nextU32());
  assert.deepEqual(take(new SeededRandom(1)), take(new SeededRandom(1)));
  assert.notDeepEqual(take(new SeededRandom(1)), take(new SeededRandom(2)));
  assert.notDeepEqual(take(new SeededRandom(1, 0)), take(new SeededRandom(1, 1)));
  const r = new SeededRandom(7);
  let sum = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
});
