import { InvalidArgumentError } from '../../errors.js';

/**
 * Time and timers for everything above the wire codecs. Time is a number of milliseconds (may be
 * fractional) on the scheduler's own monotonic scale; `setTimer` takes an absolute time on that
 * scale. The real-time scheduler runs on Node's timers; the manual one only moves when a test
 * says so, which is what makes packet-level simulations deterministic.
 */
export type TimerHandle = number & { readonly __timerHandle: unique symbol };

export interface Scheduler {
  /** Current time in milliseconds. */
  now(): number;
  /** Runs `fn` once at (or as soon as possible after) absolute time `at`. */
  setTimer(at: number, fn: () => void): TimerHandle;
  /** Cancels a timer; cancelling one that already ran or was cancelled does nothing. */
  cancel(handle: TimerHandle): void;
}

function checkTime(at: number): void {
  if (!Number.isFinite(at)) throw new InvalidArgumentError(`timer time must be a finite number, got ${at}`);
}

/** Wall-clock scheduler: `performance.now()` and `setTimeout`/`setImmediate`. */
export class RealScheduler implements Scheduler {
  private nextId = 1;
  private readonly timers = new Map<number, { timeout: NodeJS.Timeout } | { immediate: NodeJS.Immediate }>();

  now(): number {
    return performance.now();
  }

  setTimer(at: number, fn: () => void): TimerHandle {
    checkTime(at);
    const id = this.nextId++;
    const run = () => {
      this.timers.delete(id);
      fn();
    };
    const delay = at - this.now();
    // setImmediate for due timers: setTimeout(0) would wait for the next 1 ms timer tick.
    // A timeout runs its callback in the loop's check phase, after the poll phase: when the
    // process was starved of CPU, packets that arrived meanwhile (the ACK a retransmission timer
    // waits for) are read first, as a kernel would have, instead of the timer firing on stale state.
    const deferred = () => {
      this.timers.set(id, { immediate: setImmediate(run) });
    };
    this.timers.set(
      id,
      delay <= 0 ? { immediate: setImmediate(run) } : { timeout: setTimeout(deferred, delay) },
    );
    return id as TimerHandle;
  }

  cancel(handle: TimerHandle): void {
    const timer = this.timers.get(handle);
    if (timer === undefined) return;
    this.timers.delete(handle);
    if ('timeout' in timer) clearTimeout(timer.timeout);
    else clearImmediate(timer.immediate);
  }
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only advances when told to. Timers run in order of their time; timers set for the
 * same time run in the order they were set (so a run is fully determined by the calls made).
 * While a timer runs, `now()` is that timer's time.
 */
export class ManualScheduler implements Scheduler {
  private time: number;
  private seq = 0;
  /** Binary min-heap on (at, seq). Cancelled timers are removed from `live` and skipped lazily. */
  private readonly heap: ManualTimer[] = [];
  private readonly live = new Map<number, ManualTimer>();

  constructor(start = 0) {
    checkTime(start);
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(at: number, fn: () => void): TimerHandle {
    checkTime(at);
    // A timer set in the past is due now; it never moves the clock backwards.
    const timer: ManualTimer = { at: Math.max(at, this.time), seq: ++this.seq, fn };
    this.live.set(timer.seq, timer);
    this.push(timer);
    return timer.seq as TimerHandle;
  }

  cancel(handle: TimerHandle): void {
    this.live.delete(handle);
  }

  /** Number of timers not yet run or cancelled. */
  get pending(): number {
    return this.live.size;
  }

  /** Time of the next live timer, or undefined when there is none. */
  nextAt(): number | undefined {
    this.dropCancelledHead();
    return this.heap[0]?.at;
  }

  /**
   * Moves the clock forward by `ms`, running every timer due by then (including timers those
   * timers set, if due). Returns the number of timers run. `maxTimers` bounds runaway loops.
   */
  advance(ms: number, maxTimers = 10_000_000): number {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new InvalidArgumentError(`advance() takes a finite ms >= 0, got ${ms}`);
    }
    const target = this.time + ms;
    const ran = this.runWhile((at) => at <= target, maxTimers);
    this.time = target;
    return ran;
  }

  /** Moves the clock to absolute time `at` (not backwards) running due timers. */
  advanceTo(at: number, maxTimers?: number): number {
    checkTime(at);
    return this.advance(Math.max(0, at - this.time), maxTimers);
  }

  /**
   * Runs timers in time order, jumping the clock to each, until none is left. Throws when more
   * than `maxTimers` run: some timer keeps re-arming itself and the system never goes idle.
   */
  runUntilIdle(maxTimers = 10_000_000): number {
    return this.runWhile(() => true, maxTimers);
  }

  private runWhile(due: (at: number) => boolean, maxTimers: number): number {
    let ran = 0;
    for (;;) {
      this.dropCancelledHead();
      const head = this.heap[0];
      if (head === undefined || !due(head.at)) return ran;
      if (ran >= maxTimers) {
        throw new InvalidArgumentError(`manual clock: more than ${maxTimers} timers ran without going idle`);
      }
      this.pop();
      this.live.delete(head.seq);
      this.time = head.at;
      ran++;
      head.fn();
    }
  }

  private dropCancelledHead(): void {
    for (let head = this.heap[0]; head !== undefined && !this.live.has(head.seq); head = this.heap[0]) {
      this.pop();
    }
  }

  private static before(a: ManualTimer, b: ManualTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(timer: ManualTimer): void {
    const heap = this.heap;
    let i = heap.push(timer) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!ManualScheduler.before(timer, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && ManualScheduler.before(heap[r]!, heap[l]!) ? r : l;
      const c = heap[child]!;
      if (!ManualScheduler.before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
  }
}
