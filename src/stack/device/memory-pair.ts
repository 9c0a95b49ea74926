import { DeviceClosedError, InvalidArgumentError } from '../../errors.js';
import { RealScheduler, type Scheduler, type TimerHandle } from './clock.js';
import type { Device, Frame, FrameHandler, GsoInfo } from './device.js';

/**
 * Two connected in-memory Devices: what one writes, the other receives, in order, delivered
 * asynchronously through a Scheduler (a manual one makes tests deterministic). The pair models a
 * wire with no delay and no loss; wrap an end in a FaultDevice for delay, rate and loss.
 */
export interface MemoryPairOptions {
  /** Largest non-GSO packet, default 1500. */
  mtu?: number;
  /** Carry GsoInfo and allow super-packets (up to MAX_GSO_FRAME bytes). Default false. */
  offload?: boolean;
  scheduler?: Scheduler;
  /** Bytes queued towards the peer above which write() returns false. Default 256 KiB. */
  highWaterMark?: number;
  /** Hard cap on queued bytes: frames beyond it are dropped and counted. Default 4x highWaterMark. */
  queueLimit?: number;
  /** Frames per handler call, default 64 (what the TUN addon reads per wakeup). */
  batchSize?: number;
  /**
   * Overwrite delivered frames once the handler returns, as a real device reuses its read buffer:
   * a consumer that keeps a borrowed frame without copying sees garbage. Default true.
   */
  poisonDelivered?: boolean;
  /** Names of the two ends, default `mem0` / `mem1`. */
  names?: readonly [string, string];
}

/** Counters of one end (tx = written by this end, rx = delivered to this end's handler). */
export interface MemoryDeviceStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Non-GSO frame larger than the MTU, or a super-packet above the GSO limit. */
  dropTooBig: number;
  /** A frame with GSO on a device without offload, or with an invalid GSO header. */
  dropBadGso: number;
  /** Empty frame. */
  dropEmpty: number;
  /** Peer queue above queueLimit. */
  dropQueueFull: number;
  /** Written after the peer closed. */
  dropPeerClosed: number;
}

/** Largest frame on an offload device: a 64 KiB TCP super-packet plus IP and TCP headers. */
export const MAX_GSO_FRAME = 65_535 + 60 + 60;

interface Queued {
  data: Uint8Array;
  gso: GsoInfo | undefined;
}

export class MemoryDevice implements Device {
  readonly name: string;
  readonly mtu: number;
  readonly offload: boolean;
  readonly stats: MemoryDeviceStats = {
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    dropTooBig: 0,
    dropBadGso: 0,
    dropEmpty: 0,
    dropQueueFull: 0,
    dropPeerClosed: 0,
  };
  /** The other end; set by createMemoryPair. */
  peer!: MemoryDevice;

  private handler: FrameHandler | undefined;
  private drainCallback: (() => void) | undefined;
  /** Frames on their way to this end (written by the peer). */
  private readonly inbound: Queued[] = [];
  private inboundHead = 0;
  private inboundBytes = 0;
  private deliveryTimer: TimerHandle | undefined;
  /** The peer's write() returned false; tell it when our inbound queue has drained. */
  private peerNeedsDrain = false;
  private closed = false;

  constructor(
    name: string,
    private readonly options: Required<Omit<MemoryPairOptions, 'names'>>,
  ) {
    this.name = name;
    this.mtu = options.mtu;
    this.offload = options.offload;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Bytes written by the peer not yet delivered here. */
  get queuedBytes(): number {
    return this.inboundBytes;
  }

  onFrames(handler: FrameHandler): void {
    this.handler = handler;
    // Frames may have queued while nobody listened.
    this.scheduleDelivery();
  }

  /** Replaces the drain callback (called once after each write() that returned false). */
  onDrain(callback: () => void): void {
    this.drainCallback = callback;
  }

  write(frames: readonly Frame[]): boolean {
    if (this.closed) throw new DeviceClosedError(`${this.name}: write after close`);
    const peer = this.peer;
    for (const frame of frames) {
      if (!this.acceptable(frame)) continue;
      if (peer.closed) {
        this.stats.dropPeerClosed++;
        continue;
      }
      const len = frame.data.length;
      if (peer.inboundBytes + len > this.options.queueLimit) {
        this.stats.dropQueueFull++;
        continue;
      }
      // Frames written to us are borrowed too: copy before returning.
      peer.inbound.push({ data: frame.data.slice(), gso: frame.gso ? { ...frame.gso } : undefined });
      peer.inboundBytes += len;
      this.stats.txFrames++;
      this.stats.txBytes += len;
    }
    peer.scheduleDelivery();
    if (peer.inboundBytes > this.options.highWaterMark) {
      peer.peerNeedsDrain = true;
      return false;
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deliveryTimer !== undefined) this.options.scheduler.cancel(this.deliveryTimer);
    this.deliveryTimer = undefined;
    this.inbound.length = 0;
    this.inboundHead = 0;
    this.inboundBytes = 0;
    this.handler = undefined;
    this.drainCallback = undefined;
  }

  private acceptable(frame: Frame): boolean {
    const len = frame.data.length;
    if (len === 0) {
      this.stats.dropEmpty++;
      return false;
    }
    const gso = frame.gso;
    const superPacket = gso !== undefined && gso.gsoType !== 'none';
    if (gso !== undefined && !this.offload) {
      this.stats.dropBadGso++;
      return false;
    }
    if (superPacket && (gso.gsoSize <= 0 || gso.hdrLen <= 0 || gso.hdrLen >= len)) {
      this.stats.dropBadGso++;
      return false;
    }
    if (len > (superPacket ? MAX_GSO_FRAME : this.mtu)) {
      this.stats.dropTooBig++;
      return false;
    }
    return true;
  }

  private scheduleDelivery(): void {
    if (this.closed || this.handler === undefined || this.deliveryTimer !== undefined) return;
    if (this.inboundHead >= this.inbound.length) return;
    const scheduler = this.options.scheduler;
    this.deliveryTimer = scheduler.setTimer(scheduler.now(), () => this.deliver());
  }

  private deliver(): void {
    this.deliveryTimer = undefined;
    const { batchSize, poisonDelivered } = this.options;
    // Deliver what is queued now; frames the handler causes to be queued come in a later turn.
    const end = this.inbound.length;
    while (this.inboundHead < end && this.handler !== undefined && !this.closed) {
      const stop = Math.min(end, this.inboundHead + batchSize);
      const batch: Frame[] = [];
      for (let i = this.inboundHead; i < stop; i++) {
        const q = this.inbound[i]!;
        batch.push(q.gso ? { data: q.data, gso: q.gso } : { data: q.data });
        this.inboundBytes -= q.data.length;
        this.stats.rxFrames++;
        this.stats.rxBytes += q.data.length;
      }
      this.inboundHead = stop;
      this.handler(batch);
      if (poisonDelivered) for (const f of batch) f.data.fill(0xee);
    }
    if (this.inboundHead === this.inbound.length) {
      this.inbound.length = 0;
      this.inboundHead = 0;
    } else {
      this.scheduleDelivery();
    }
    if (this.peerNeedsDrain && this.inboundBytes <= this.options.highWaterMark / 2) {
      this.peerNeedsDrain = false;
      this.peer.drainCallback?.();
    }
  }
}

/** Creates two connected in-memory devices. */
export function createMemoryPair(options: MemoryPairOptions = {}): [MemoryDevice, MemoryDevice] {
  const highWaterMark = options.highWaterMark ?? 256 * 1024;
  const resolved: Required<Omit<MemoryPairOptions, 'names'>> = {
    mtu: options.mtu ?? 1500,
    offload: options.offload ?? false,
    scheduler: options.scheduler ?? new RealScheduler(),
    highWaterMark,
    queueLimit: options.queueLimit ?? 4 * highWaterMark,
    batchSize: options.batchSize ?? 64,
    poisonDelivered: options.poisonDelivered ?? true,
  };
  if (!Number.isInteger(resolved.mtu) || resolved.mtu < 68 || resolved.mtu > 65_535) {
    throw new InvalidArgumentError(`mtu must be an integer in 68..65535, got ${resolved.mtu}`);
  }
  if (!(resolved.highWaterMark > 0) || !(resolved.queueLimit >= resolved.highWaterMark)) {
    throw new InvalidArgumentError('highWaterMark must be > 0 and queueLimit >= highWaterMark');
  }
  if (!Number.isInteger(resolved.batchSize) || resolved.batchSize < 1) {
    throw new InvalidArgumentError(`batchSize must be a positive integer, got ${resolved.batchSize}`);
  }
  const [n0, n1] = options.names ?? ['mem0', 'mem1'];
  const a = new MemoryDevice(n0, resolved);
  const b = new MemoryDevice(n1, resolved);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
