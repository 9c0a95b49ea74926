import { DeviceClosedError, InvalidArgumentError } from '../../errors.js';
import type { Device, Frame, FrameHandler } from './device.js';
import { DEFAULT_SNAPLEN, LINKTYPE_RAW, PcapWriter } from './pcap-writer.js';

/**
 * A Device wrapper that passes frames through both ways unchanged and appends each one to a
 * .pcap file (LINKTYPE_RAW: the IP packet as the stack sees it). Frames written to the tap are
 * recorded before they go to the inner device, received ones before they reach the handler.
 *
 * Super-packets (GSO) are recorded as they are, one record of up to 64 KB: the snap length
 * (262144) is above that, and Wireshark shows them like a capture taken on an offload-enabled NIC.
 * Classic pcap has no direction field: tell directions apart by addresses.
 * The tap takes over the inner device's frame callback; use the tap's.
 */
export interface PcapTapOptions {
  /** File to create (truncated if it exists); closed with the tap. */
  path?: string;
  /** Or an open writer to share (e.g. one file for both ends of a link); not closed by the tap. */
  writer?: PcapWriter;
  /**
   * Timestamps from this clock (ms), e.g. a ManualScheduler so a simulation's pcap shows
   * simulated time. Default: the wall clock.
   */
  clock?: { now(): number };
  name?: string;
}

export interface PcapTapStats {
  recordedTx: number;
  recordedRx: number;
  /** Records that could not be written (e.g. disk full); frames still pass. */
  writeErrors: number;
}

export class PcapTap implements Device {
  readonly name: string;
  readonly mtu: number;
  readonly offload: boolean;
  readonly stats: PcapTapStats = { recordedTx: 0, recordedRx: 0, writeErrors: 0 };
  /** The last write failure, for diagnostics. */
  lastWriteError: unknown;
  readonly writer: PcapWriter;
  private readonly ownsWriter: boolean;
  private readonly clock: { now(): number } | undefined;
  private handler: FrameHandler | undefined;
  private closed = false;

  constructor(
    private readonly inner: Device,
    options: PcapTapOptions,
  ) {
    if (options.writer !== undefined) {
      this.writer = options.writer;
      this.ownsWriter = false;
    } else if (options.path !== undefined) {
      this.writer = new PcapWriter(options.path, { linkType: LINKTYPE_RAW, snapLen: DEFAULT_SNAPLEN });
      this.ownsWriter = true;
    } else {
      throw new InvalidArgumentError('pcap tap needs a path or a writer');
    }
    this.clock = options.clock;
    this.name = options.name ?? `pcap(${inner.name})`;
    this.mtu = inner.mtu;
    this.offload = inner.offload;
    inner.onFrames((frames) => {
      this.record(frames, 'rx');
      this.handler?.(frames);
    });
  }

  onFrames(handler: FrameHandler): void {
    this.handler = handler;
  }

  onDrain(callback: () => void): void {
    this.inner.onDrain(callback);
  }

  write(frames: readonly Frame[]): boolean {
    if (this.closed) throw new DeviceClosedError(`${this.name}: write after close`);
    this.record(frames, 'tx');
    return this.inner.write(frames);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handler = undefined;
    if (this.ownsWriter) this.writer.close();
    await this.inner.close();
  }

  private record(frames: readonly Frame[], dir: 'tx' | 'rx'): void {
    if (this.closed) return;
    const time = this.clock === undefined ? undefined : this.clock.now() * 1000;
    for (const frame of frames) {
      try {
        this.writer.write(frame.data, time);
      } catch (err) {
        // A capture problem must not break the data path: count it and carry on.
        this.stats.writeErrors++;
        this.lastWriteError = err;
        continue;
      }
      if (dir === 'tx') this.stats.recordedTx++;
      else this.stats.recordedRx++;
    }
  }
}
