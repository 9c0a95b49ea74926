import { DeviceClosedError, InvalidArgumentError } from '../../errors.js';
import { RealScheduler, type Scheduler, type TimerHandle } from './clock.js';
import type { Device, Frame, FrameHandler } from './device.js';
import { SeededRandom } from './prng.js';

/**
 * A seeded fault injector wrapping a Device: random loss, delay with jitter, a rate-limited
 * bottleneck queue with tail drop, reordering and duplication. This kernel has no netem, so this
 * is how tests emulate bad paths. Every random choice comes from a PRNG seeded by `seed`, and
 * every delay from the injected Scheduler: with a ManualScheduler the same seed and the same input
 * give exactly the same packet trace.
 *
 * Each direction (tx = frames written to this wrapper, rx = frames the inner device receives) has
 * its own spec and its own PRNG streams, one per kind of fault, so changing one fault's parameter
 * does not shift the random choices of the others.
 *
 * Per packet, in order: drop → duplicate → rate-limited queue (tail drop) → delay + jitter →
 * reorder → delivery. A super-packet (GSO) is one packet to every stage.
 *
 * The wrapper takes over the inner device's frame and drain callbacks; use the wrapper's.
 */
export interface FaultSpec {
  /** Probability of dropping each packet. */
  drop?: number;
  /** Probability of delivering a packet twice (the copy follows right behind the original). */
  duplicate?: number;
  /** Fixed one-way delay in ms. */
  delayMs?: number;
  /**
   * Extra delay, uniform in [0, jitterMs). Jitter never reorders packets (a packet never overtakes
   * the one before it); use `reorder` for that, so that each effect can be tested alone.
   */
  jitterMs?: number;
  /** Bottleneck rate in bytes per second (a FIFO link that serializes packets). */
  rateBytesPerSec?: number;
  /**
   * Bytes the bottleneck queue holds (not yet serialized) before tail drop. Default: 100 ms at
   * the rate, at least 128 KiB.
   */
  queueLimitBytes?: number;
  reorder?: ReorderSpec;
}

/**
 * A reordered packet is held back until `gap` later packets of the same direction have been
 * delivered (then goes right after them), or `maxHoldMs` has passed, whichever comes first.
 */
export interface ReorderSpec {
  /** Probability that a packet is held back. */
  probability?: number;
  /** Hold back every Nth packet (1-based count of packets reaching this stage). */
  every?: number;
  /** Number of packets that overtake a held one. Default 1. */
  gap?: number;
  /** Longest hold, so the last packets of a burst are not held forever. Default 100 ms. */
  maxHoldMs?: number;
}

export interface FaultOptions {
  /** Any 32-bit integer. */
  seed: number;
  tx?: FaultSpec;
  rx?: FaultSpec;
  scheduler?: Scheduler;
  name?: string;
}

export interface FaultCounters {
  /** Packets that entered this direction. */
  packets: number;
  /** Packets handed on (including duplicates). */
  delivered: number;
  deliveredBytes: number;
  /** Random drops (`drop`). */
  dropped: number;
  /** Tail drops at the rate limiter's queue. */
  queueDropped: number;
  duplicated: number;
  /** Packets given a non-zero delay. */
  delayed: number;
  /** Packets held back by `reorder`. */
  reordered: number;
}

function newCounters(): FaultCounters {
  return {
    packets: 0,
    delivered: 0,
    deliveredBytes: 0,
    dropped: 0,
    queueDropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
  };
}

interface InFlight {
  frame: Frame;
  at: number;
}

interface Held {
  frame: Frame;
  /** Packets still to overtake it. */
  remaining: number;
  /** Time at which it goes anyway. */
  deadline: number;
}

function checkProbability(name: string, p: number | undefined): void {
  if (p !== undefined && !(p >= 0 && p <= 1)) {
    throw new InvalidArgumentError(`${name} must be a probability in [0, 1], got ${p}`);
  }
}

function checkNonNegative(name: string, v: number | undefined): void {
  if (v !== undefined && !(v >= 0 && Number.isFinite(v))) {
    throw new InvalidArgumentError(`${name} must be a finite number >= 0, got ${v}`);
  }
}

function validate(dir: string, spec: FaultSpec): void {
  checkProbability(`${dir}.drop`, spec.drop);
  checkProbability(`${dir}.duplicate`, spec.duplicate);
  checkNonNegative(`${dir}.delayMs`, spec.delayMs);
  checkNonNegative(`${dir}.jitterMs`, spec.jitterMs);
  checkNonNegative(`${dir}.queueLimitBytes`, spec.queueLimitBytes);
  if (
    spec.rateBytesPerSec !== undefined &&
    !(spec.rateBytesPerSec > 0 && Number.isFinite(spec.rateBytesPerSec))
  ) {
    throw new InvalidArgumentError(`${dir}.rateBytesPerSec must be > 0, got ${spec.rateBytesPerSec}`);
  }
  const r = spec.reorder;
  if (r !== undefined) {
    checkProbability(`${dir}.reorder.probability`, r.probability);
    checkNonNegative(`${dir}.reorder.maxHoldMs`, r.maxHoldMs);
    if (r.every !== undefined && !(Number.isInteger(r.every) && r.every >= 1)) {
      throw new InvalidArgumentError(`${dir}.reorder.every must be an integer >= 1, got ${r.every}`);
    }
    if (r.gap !== undefined && !(Number.isInteger(r.gap) && r.gap >= 1)) {
      throw new InvalidArgumentError(`${dir}.reorder.gap must be an integer >= 1, got ${r.gap}`);
    }
  }
}

function copyFrame(frame: Frame): Frame {
  return frame.gso ? { data: frame.data.slice(), gso: { ...frame.gso } } : { data: frame.data.slice() };
}

/** One direction of the fault pipeline. */
class FaultLane {
  readonly counters = newCounters();
  private readonly dropRng: SeededRandom;
  private readonly dupRng: SeededRandom;
  private readonly jitterRng: SeededRandom;
  private readonly reorderRng: SeededRandom;
  private readonly queueLimit: number;
  /** When the bottleneck finishes serializing what it already has. */
  private linkFreeAt = Number.NEGATIVE_INFINITY;
  /** Arrival time of the last packet put in flight (arrivals never go backwards). */
  private lastArrival = Number.NEGATIVE_INFINITY;
  /** FIFO, sorted by `at` because arrivals are monotonic. */
  private readonly inFlight: InFlight[] = [];
  private inFlightHead = 0;
  private readonly held: Held[] = [];
  private reorderCount = 0;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    seed: number,
    laneIndex: number,
    private readonly spec: FaultSpec,
    private readonly scheduler: Scheduler,
    private readonly deliver: (frames: Frame[]) => void,
  ) {
    const base = laneIndex * 8;
    this.dropRng = new SeededRandom(seed, base + 1);
    this.dupRng = new SeededRandom(seed, base + 2);
    this.jitterRng = new SeededRandom(seed, base + 3);
    this.reorderRng = new SeededRandom(seed, base + 4);
    const rate = spec.rateBytesPerSec;
    this.queueLimit = spec.queueLimitBytes ?? (rate === undefined ? 0 : Math.max(rate / 10, 128 * 1024));
  }

  /** Frames are borrowed: copied if they are held, passed through as they are if not. */
  input(frames: readonly Frame[]): void {
    const now = this.scheduler.now();
    const immediate: Frame[] = [];
    for (const frame of frames) {
      this.counters.packets++;
      if (this.spec.drop !== undefined && this.dropRng.chance(this.spec.drop)) {
        this.counters.dropped++;
        continue;
      }
      this.enqueue(frame, now, immediate);
      if (this.spec.duplicate !== undefined && this.dupRng.chance(this.spec.duplicate)) {
        this.counters.duplicated++;
        this.enqueue(frame, now, immediate);
      }
    }
    if (immediate.length > 0) this.emit(immediate, now);
    this.arm();
  }

  close(): void {
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.inFlight.length = 0;
    this.inFlightHead = 0;
    this.held.length = 0;
  }

  private enqueue(frame: Frame, now: number, immediate: Frame[]): void {
    let departure = now;
    const rate = this.spec.rateBytesPerSec;
    const len = frame.data.length;
    if (rate !== undefined) {
      const start = Math.max(now, this.linkFreeAt);
      // Bytes still waiting to be serialized ahead of this packet.
      const backlog = ((start - now) * rate) / 1000;
      if (backlog + len > this.queueLimit) {
        this.counters.queueDropped++;
        return;
      }
      departure = start + (len * 1000) / rate;
      this.linkFreeAt = departure;
    }
    let delay = this.spec.delayMs ?? 0;
    if (this.spec.jitterMs) delay += this.jitterRng.next() * this.spec.jitterMs;
    const at = Math.max(departure + delay, this.lastArrival);
    this.lastArrival = at;
    if (at > now) this.counters.delayed++;
    if (at <= now && this.inFlightHead === this.inFlight.length) {
      immediate.push(frame);
    } else {
      this.inFlight.push({ frame: copyFrame(frame), at });
    }
  }

  /** Reorder stage, then delivery. `frames` are due now, in order. */
  private emit(frames: Frame[], now: number): void {
    const out: Frame[] = [];
    const spec = this.spec.reorder;
    for (const frame of frames) {
      if (spec !== undefined && this.holdBack(spec)) {
        this.counters.reordered++;
        this.held.push({
          frame: copyFrame(frame),
          remaining: spec.gap ?? 1,
          deadline: now + (spec.maxHoldMs ?? 100),
        });
        continue;
      }
      out.push(frame);
      this.releaseHeld(out, (h) => --h.remaining <= 0);
    }
    this.releaseHeld(out, (h) => h.deadline <= now);
    if (out.length === 0) return;
    this.counters.delivered += out.length;
    for (const f of out) this.counters.deliveredBytes += f.data.length;
    this.deliver(out);
  }

  private holdBack(spec: ReorderSpec): boolean {
    this.reorderCount++;
    const byCount = spec.every !== undefined && this.reorderCount % spec.every === 0;
    // Always draw, so `every` and `probability` combine without shifting the stream.
    const byChance = spec.probability !== undefined && this.reorderRng.chance(spec.probability);
    return byCount || byChance;
  }

  /** Moves held packets for which `release` is true (visiting all, in hold order) to `out`. */
  private releaseHeld(out: Frame[], release: (h: Held) => boolean): void {
    if (this.held.length === 0) return;
    let kept = 0;
    for (const h of this.held) {
      if (release(h)) out.push(h.frame);
      else this.held[kept++] = h;
    }
    this.held.length = kept;
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.scheduler.now();
    const due: Frame[] = [];
    while (this.inFlightHead < this.inFlight.length) {
      const head = this.inFlight[this.inFlightHead]!;
      if (head.at > now) break;
      due.push(head.frame);
      this.inFlightHead++;
    }
    if (this.inFlightHead === this.inFlight.length) {
      this.inFlight.length = 0;
      this.inFlightHead = 0;
    }
    this.emit(due, now);
    this.arm();
  }

  /** Keeps one timer at the earliest of: next arrival, next held-packet deadline. */
  private arm(): void {
    let next = this.inFlight[this.inFlightHead]?.at ?? Number.POSITIVE_INFINITY;
    for (const h of this.held) next = Math.min(next, h.deadline);
    if (next === this.timerAt) return;
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next !== Number.POSITIVE_INFINITY) this.timer = this.scheduler.setTimer(next, () => this.onTimer());
  }
}

export class FaultDevice implements Device {
  readonly name: string;
  readonly mtu: number;
  readonly offload: boolean;
  private readonly txLane: FaultLane;
  private readonly rxLane: FaultLane;
  private handler: FrameHandler | undefined;
  private drainCallback: (() => void) | undefined;
  /** The inner device's write() returned false and has not drained yet. */
  private innerFull = false;
  private closed = false;

  constructor(
    private readonly inner: Device,
    options: FaultOptions,
  ) {
    if (!Number.isInteger(options.seed))
      throw new InvalidArgumentError(`seed must be an integer, got ${options.seed}`);
    const tx = options.tx ?? {};
    const rx = options.rx ?? {};
    validate('tx', tx);
    validate('rx', rx);
    const scheduler = options.scheduler ?? new RealScheduler();
    this.name = options.name ?? `fault(${inner.name})`;
    this.mtu = inner.mtu;
    this.offload = inner.offload;
    this.txLane = new FaultLane(options.seed, 0, tx, scheduler, (frames) => {
      if (this.closed) return;
      if (!this.inner.write(frames)) this.innerFull = true;
    });
    this.rxLane = new FaultLane(options.seed, 1, rx, scheduler, (frames) => {
      if (!this.closed) this.handler?.(frames);
    });
    inner.onFrames((frames) => this.rxLane.input(frames));
    inner.onDrain(() => {
      this.innerFull = false;
      this.drainCallback?.();
    });
  }

  /** Counters per direction: tx = written through this device, rx = received from the inner one. */
  get counters(): { tx: Readonly<FaultCounters>; rx: Readonly<FaultCounters> } {
    return { tx: this.txLane.counters, rx: this.rxLane.counters };
  }

  onFrames(handler: FrameHandler): void {
    this.handler = handler;
  }

  /** Replaces the drain callback; forwarded from the inner device. */
  onDrain(callback: () => void): void {
    this.drainCallback = callback;
  }

  /**
   * A lossy link does not push back: frames go into the emulated path, whose own queue tail-drops.
   * Returns false only while the inner device itself reports backpressure.
   */
  write(frames: readonly Frame[]): boolean {
    if (this.closed) throw new DeviceClosedError(`${this.name}: write after close`);
    this.txLane.input(frames);
    return !this.innerFull;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.txLane.close();
    this.rxLane.close();
    this.handler = undefined;
    this.drainCallback = undefined;
    await this.inner.close();
  }
}
