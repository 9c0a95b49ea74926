import { InvalidArgumentError } from '../../errors.js';
import type { Device, Frame, FrameHandler } from './device.js';

/**
 * One Device in front of several paths: each frame written goes out on the path that `route`
 * picks for it (for a multihomed host, by its source address; for the far end, by its
 * destination), and frames received on any path reach the one handler. This is what a host with
 * two interfaces and a route per source address does, so that in a simulator each MPTCP subflow
 * crosses its own link with its own rate, delay and loss.
 *
 * `write` returns false when any path it wrote to pushed back; the drain callback runs when a
 * path drains. A frame `route` maps to no path (a negative or out-of-range index) is dropped and
 * counted in `unrouted`.
 */
export interface PathMuxOptions {
  name?: string;
  paths: readonly Device[];
  /** Index into `paths` for a frame about to be written. */
  route: (frame: Frame) => number;
}

export class PathMuxDevice implements Device {
  readonly name: string;
  readonly mtu: number;
  readonly offload: boolean;
  /** Frames written, per path. */
  readonly written: number[];
  /** Frames `route` placed on no path. */
  unrouted = 0;
  private readonly paths: readonly Device[];
  private readonly route: (frame: Frame) => number;
  private readonly batches: Frame[][];

  constructor(options: PathMuxOptions) {
    if (options.paths.length === 0) throw new InvalidArgumentError('PathMuxDevice needs at least one path');
    this.paths = options.paths;
    this.route = options.route;
    this.name = options.name ?? `mux(${options.paths.map((p) => p.name).join(',')})`;
    this.mtu = Math.min(...options.paths.map((p) => p.mtu));
    this.offload = options.paths.every((p) => p.offload);
    this.written = options.paths.map(() => 0);
    this.batches = options.paths.map(() => []);
  }

  onFrames(handler: FrameHandler): void {
    for (const p of this.paths) p.onFrames(handler);
  }

  onDrain(callback: () => void): void {
    for (const p of this.paths) p.onDrain(callback);
  }

  write(frames: readonly Frame[]): boolean {
    const n = this.paths.length;
    for (const f of frames) {
      const i = this.route(f);
      if (!(i >= 0 && i < n)) {
        this.unrouted++;
        continue;
      }
      this.batches[i]!.push(f);
    }
    let ok = true;
    for (let i = 0; i < n; i++) {
      const batch = this.batches[i]!;
      if (batch.length === 0) continue;
      this.written[i]! += batch.length;
      if (!this.paths[i]!.write(batch)) ok = false;
      batch.length = 0;
    }
    return ok;
  }

  async close(): Promise<void> {
    await Promise.all(this.paths.map((p) => p.close()));
  }
}

/** The IPv4 source (`'src'`) or destination address of a frame as a 32-bit number, or undefined. */
export function ipv4Address(frame: Frame, which: 'src' | 'dst'): number | undefined {
  const d = frame.data;
  if (d.length < 20 || d[0]! >>> 4 !== 4) return undefined;
  const o = which === 'src' ? 12 : 16;
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}
