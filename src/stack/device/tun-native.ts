import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeBindingError } from '../../errors.js';

/** The shape of native/tun.cc's exports (built by `npm ci` through node-gyp). */
export interface NativeTun {
  open(opts: {
    name: string;
    vnetHdr: boolean;
    offload: boolean;
    netns?: string;
    mtu?: number;
    up: boolean;
    disableIpv6: boolean;
  }): { fd: number; name: string; created: boolean; mtu: number };
  /**
   * `lens` has 2 * batch + 2 entries: [offset, length] per packet of the last read batch, then
   * the count of packets the kernel rejected on write and the last such errno.
   */
  Poller: new (
    fd: number,
    readBuffer: ArrayBuffer,
    lens: Uint32Array,
    maxRead: number,
    onRead: (n: number) => void,
    onWritable: () => void,
  ) => NativePoller;
  /** Most packets one read wakeup delivers. */
  batch: number;
}

export interface NativePoller {
  setEvents(readable: boolean, writable: boolean): void;
  /** Writes packets[start..end) (each after its header in hdrs); returns the index reached (< end at EAGAIN). */
  write(
    hdrs: Uint8Array | null,
    hdrSize: number,
    packets: readonly Uint8Array[],
    start: number,
    end: number,
  ): number;
  close(done?: () => void): void;
}

/** Errors thrown by the binding carry the errno name and the failing step. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).syscall === 'string';
}

let cached: NativeTun | undefined;

export function loadNativeTun(): NativeTun {
  if (cached) return cached;
  const path = fileURLToPath(new URL('../../../build/Release/mptun_tun.node', import.meta.url));
  try {
    cached = createRequire(import.meta.url)(path) as NativeTun;
  } catch (err) {
    throw new NativeBindingError(
      `cannot load the TUN binding ${path}; build it with 'npm ci' (or 'npx node-gyp rebuild'), which needs g++, make and the Node.js headers`,
      { cause: err },
    );
  }
  return cached;
}
