import { constants } from 'node:os';
import {
  DeviceClosedError,
  InterfaceError,
  InvalidArgumentError,
  type MptunError,
  PermissionError,
  TunUnavailableError,
} from '../../errors.js';
import {
  emptyGsoInfo,
  encodeVirtioNetHdr,
  parseVirtioNetHdr,
  VIRTIO_NET_HDR_LEN,
} from '../wire/virtio-net-hdr.js';
import type { Device, Frame, FrameHandler, GsoInfo } from './device.js';
import { isNativeError, loadNativeTun, type NativePoller, type NativeTun } from './tun-native.js';

export interface TunOptions {
  /** Interface name, 1–15 characters without '/', ':' or white space. */
  name: string;
  /**
   * Checksum offload and TSO both ways (IFF_VNET_HDR + TUNSETOFFLOAD): frames carry GsoInfo and
   * may be 64 KB TCP super-packets that the kernel segments and checksums.
   */
  offload?: boolean;
  /** Network namespace to open the TUN in: a name under /var/run/netns, or a path to an nsfs file. */
  netns?: string;
  /** Set the MTU; when absent the interface keeps its MTU (1500 for a new TUN). */
  mtu?: number;
  /** Bring the link up (default true). */
  up?: boolean;
  /** Turn IPv6 off on the link (default true), so router solicitations don't land in the TUN. */
  disableIpv6?: boolean;
  /** Bytes queued by write() (when the kernel says EAGAIN) above which write() returns false. */
  highWaterMark?: number;
}

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  rxBatches: number;
  /** Received packets dropped because their virtio-net header was unusable. */
  rxDropBadVnetHdr: number;
  txPackets: number;
  txBytes: number;
  /** Packets the kernel rejected on write (e.g. an inconsistent GSO header). */
  txErrors: number;
  /** Times a write hit EAGAIN and packets were queued. */
  txQueued: number;
}

const MAX_IP_PACKET = 65535;
const NAME_RE = /^[^/:\s]{1,15}$/;

/** Throws InterfaceError unless `name` is a valid Linux interface name. */
export function validateInterfaceName(name: string): void {
  if (!NAME_RE.test(name) || name === '.' || name === '..') {
    throw new InterfaceError(
      `invalid interface name '${name}': use 1–15 characters without '/', ':' or white space`,
    );
  }
}

/**
 * Opens the TUN for `--tun NAME`, the flag every command that uses a TUN shares:
 * - if an interface NAME exists in the namespace and is a TUN (e.g. a persistent one made with
 *   `ip tuntap add NAME mode tun`, possibly owned by an unprivileged user), we attach to it;
 *   it stays after we exit, as it was before;
 * - if none exists, we create it; it disappears when we close it;
 * - an existing interface of another kind (veth, TAP...) or a TUN that another process holds
 *   open is an InterfaceError; a missing /dev/net/tun a TunUnavailableError; lacking
 *   CAP_NET_ADMIN a PermissionError.
 * The link is brought up and IPv6 turned off on it unless told otherwise; addresses and routes
 * are the caller's business (see src/proxy/host-net.ts).
 */
export function openTun(opts: TunOptions): TunDevice {
  validateInterfaceName(opts.name);
  if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > MAX_IP_PACKET)) {
    throw new InvalidArgumentError(`invalid MTU ${opts.mtu}: use an integer from 68 to 65535`);
  }
  const netns = opts.netns === undefined ? undefined : netnsPath(opts.netns);
  const native = loadNativeTun();
  let opened: ReturnType<typeof native.open>;
  try {
    opened = native.open({
      name: opts.name,
      vnetHdr: opts.offload === true,
      offload: opts.offload === true,
      ...(netns === undefined ? {} : { netns }),
      ...(opts.mtu === undefined ? {} : { mtu: opts.mtu }),
      up: opts.up !== false,
      disableIpv6: opts.disableIpv6 !== false,
    });
  } catch (err) {
    throw mapOpenError(err, opts.name, opts.netns);
  }
  return new TunDevice(opened.fd, opened.name, opened.mtu, opts.offload === true, opened.created, opts);
}

function netnsPath(netns: string): string {
  if (netns.includes('/')) return netns;
  if (netns === '' || netns === '.' || netns === '..')
    throw new InvalidArgumentError(`invalid netns '${netns}'`);
  return `/var/run/netns/${netns}`;
}

function mapOpenError(err: unknown, name: string, netns: string | undefined): Error {
  if (!isNativeError(err)) return err as Error;
  const where = netns === undefined ? '' : ` in network namespace '${netns}'`;
  const cause = { cause: err };
  if (err.code === 'EPERM' || err.code === 'EACCES') {
    return new PermissionError(
      `opening TUN '${name}'${where} was refused (${err.syscall}: ${err.code}): run as root or grant CAP_NET_ADMIN`,
      cause,
    );
  }
  if (err.syscall === 'open /dev/net/tun') {
    return new TunUnavailableError(
      `/dev/net/tun is not usable (${err.code}): load the tun module (modprobe tun) or, in a container, pass the device (--device /dev/net/tun)`,
      cause,
    );
  }
  if (err.syscall === 'open netns' || err.syscall === 'setns') {
    return new InvalidArgumentError(`network namespace '${netns}' cannot be entered (${err.code})`, cause);
  }
  if (err.syscall === 'TUNSETIFF' && err.code === 'EBUSY') {
    return new InterfaceError(
      `TUN '${name}'${where} is busy: another process has it open (a TUN without multiqueue takes one)`,
      cause,
    );
  }
  if (err.syscall === 'TUNSETIFF' && err.code === 'EINVAL') {
    return new InterfaceError(`interface '${name}'${where} exists and is not a TUN (a TAP, veth...)`, cause);
  }
  if (err.syscall === 'SIOCSIFMTU') {
    return new InvalidArgumentError(`TUN '${name}' refused the MTU (${err.code})`, cause);
  }
  return new InterfaceError(`cannot open TUN '${name}'${where}: ${err.message}`, cause);
}

/**
 * A TUN as a Device. Reads are driven by a uv_poll in the binding: each wakeup delivers up to 64
 * packets, read into one reused buffer, in one handler call (frames are borrowed: views into that
 * buffer, valid during the call only). Writes go out immediately in one native call per batch;
 * only when the kernel says EAGAIN are the rest copied and queued until the fd is writable.
 */
export class TunDevice implements Device {
  readonly stats: TunStats = {
    rxPackets: 0,
    rxBytes: 0,
    rxBatches: 0,
    rxDropBadVnetHdr: 0,
    txPackets: 0,
    txBytes: 0,
    txErrors: 0,
    txQueued: 0,
  };

  private readonly poller: NativePoller;
  private readonly hdrSize: number;
  private readonly readBuf: ArrayBuffer;
  private readonly readView: DataView;
  private readonly lens: Uint32Array;
  private readonly writeErrorIndex: number;
  private readonly highWaterMark: number;
  private handler: FrameHandler | undefined;
  private drainCallback: (() => void) | undefined;
  private errorCallback: ((err: Error) => void) | undefined;
  private paused = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  // Reused per read batch: frames are borrowed, so their objects may be recycled.
  private readonly framePool: Frame[] = [];
  private readonly batch: Frame[] = [];

  // Write side: headers for one batch, and what EAGAIN left behind (copies).
  private hdrBuf: Uint8Array;
  private hdrView: DataView;
  private readonly outPackets: Uint8Array[] = [];
  private queuedPackets: Uint8Array[] = [];
  private queuedHdrs: Uint8Array | null = null;
  private queuedBytes = 0;
  private needDrain = false;

  /** Use openTun(); this wraps an fd the binding opened. */
  constructor(
    fd: number,
    readonly name: string,
    readonly mtu: number,
    readonly offload: boolean,
    /** False when we attached to an interface that already existed (it is left in place on close). */
    readonly created: boolean,
    opts: Pick<TunOptions, 'highWaterMark'> & {
      /** Tests substitute the binding to drive the EAGAIN path, which a real TUN rarely takes. */
      native?: NativeTun;
    } = {},
  ) {
    const native = opts.native ?? loadNativeTun();
    this.hdrSize = offload ? VIRTIO_NET_HDR_LEN : 0;
    this.highWaterMark = opts.highWaterMark ?? 4 * 1024 * 1024;
    // Room for a full batch of MTU-sized packets, or ~32 super-packets, plus one largest read.
    const maxRead = MAX_IP_PACKET + this.hdrSize;
    const perPacket = (offload ? 65536 / 2 : mtu + this.hdrSize + 8) | 0;
    this.readBuf = new ArrayBuffer(native.batch * perPacket + maxRead);
    this.readView = new DataView(this.readBuf);
    this.lens = new Uint32Array(2 * native.batch + 2);
    this.writeErrorIndex = 2 * native.batch;
    this.hdrBuf = new Uint8Array(native.batch * Math.max(this.hdrSize, 1));
    this.hdrView = new DataView(this.hdrBuf.buffer);
    this.poller = new native.Poller(
      fd,
      this.readBuf,
      this.lens,
      maxRead,
      // Called from the native poll loop: a throw there would abort the process in C++
      // (std::terminate), so it is rethrown on the JS side as an ordinary uncaught exception.
      (n) => fromNative(() => this.onRead(n)),
      () => fromNative(() => this.onWritable()),
    );
  }

  onFrames(handler: FrameHandler): void {
    this.handler = handler;
    this.updatePoll();
  }

  onDrain(callback: () => void): void {
    this.drainCallback = callback;
  }

  /** Called when reading fails for good (e.g. the interface was deleted); reading stops. */
  onError(callback: (err: Error) => void): void {
    this.errorCallback = callback;
  }

  /** Stops delivering frames (the kernel queues up to txqueuelen packets, then drops). */
  pause(): void {
    this.paused = true;
    this.updatePoll();
  }

  resume(): void {
    this.paused = false;
    this.updatePoll();
  }

  write(frames: readonly Frame[]): boolean {
    if (this.closed) throw new DeviceClosedError(`TUN '${this.name}' is closed`);
    const n = frames.length;
    if (n === 0) return this.queuedBytes < this.highWaterMark;
    if (this.queuedPackets.length > 0) {
      // Keep order: behind what is already waiting.
      this.encodeHeaders(frames);
      this.enqueue(frames, 0);
      return this.afterQueue();
    }
    this.encodeHeaders(frames);
    const out = this.outPackets;
    out.length = n;
    for (let i = 0; i < n; i++) out[i] = frames[i]!.data;
    const reached = this.poller.write(this.hdrSize ? this.hdrBuf : null, this.hdrSize, out, 0, n);
    out.length = 0;
    this.countWritten(frames, 0, reached);
    if (reached === n) return true;
    this.enqueue(frames, reached);
    return this.afterQueue();
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.handler = undefined;
    this.queuedPackets = [];
    this.queuedBytes = 0;
    this.closing = new Promise((resolve) => this.poller.close(resolve));
    return this.closing;
  }

  private updatePoll(): void {
    if (this.closed) return;
    const readable = this.handler !== undefined && !this.paused;
    this.poller.setEvents(readable, this.queuedPackets.length > 0);
  }

  private onRead(n: number): void {
    if (n < 0) {
      this.failRead(-n);
      return;
    }
    const handler = this.handler;
    if (handler === undefined || this.closed) return;
    const lens = this.lens;
    const hdr = this.hdrSize;
    const batch = this.batch;
    batch.length = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const off = lens[2 * i]!;
      const len = lens[2 * i + 1]!;
      let frame = this.framePool[i];
      if (frame === undefined) {
        frame = this.offload ? { data: new Uint8Array(0), gso: emptyGsoInfo() } : { data: new Uint8Array(0) };
        this.framePool[i] = frame;
      }
      if (hdr !== 0) {
        const reason = len < hdr ? 'vnet-hdr-truncated' : parseVirtioNetHdr(this.readView, off, frame.gso!);
        if (reason !== undefined) {
          this.stats.rxDropBadVnetHdr++;
          continue;
        }
      }
      frame.data = new Uint8Array(this.readBuf, off + hdr, len - hdr);
      bytes += len - hdr;
      batch.push(frame);
    }
    this.stats.rxPackets += batch.length;
    this.stats.rxBytes += bytes;
    this.stats.rxBatches++;
    if (batch.length > 0) handler(batch);
  }

  private failRead(errno: number): void {
    if (this.closed) return;
    this.paused = true;
    this.updatePoll();
    const code = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
    // The kernel detaches the fd from a deleted TUN: reads and polls then fail with EBADF(D).
    const gone = code === 'EBADF' || code === 'EBADFD' ? ': the interface was deleted' : '';
    const err = new InterfaceError(`reading TUN '${this.name}' failed (${code})${gone}; reading stopped`);
    if (this.errorCallback) this.errorCallback(err);
    else process.emitWarning(err);
  }

  private encodeHeaders(frames: readonly Frame[]): void {
    if (this.hdrSize === 0) return;
    const need = frames.length * this.hdrSize;
    if (this.hdrBuf.length < need) {
      this.hdrBuf = new Uint8Array(need * 2);
      this.hdrView = new DataView(this.hdrBuf.buffer);
    }
    for (let i = 0; i < frames.length; i++) {
      encodeVirtioNetHdr(frames[i]!.gso, this.hdrView, i * this.hdrSize);
    }
  }

  /** Copies frames[from..] (and their encoded headers) behind the queue. */
  private enqueue(frames: readonly Frame[], from: number): void {
    const hdr = this.hdrSize;
    const before = this.queuedPackets.length;
    const count = frames.length - from;
    if (hdr !== 0) {
      const hdrs = new Uint8Array((before + count) * hdr);
      if (this.queuedHdrs) hdrs.set(this.queuedHdrs.subarray(0, before * hdr));
      hdrs.set(this.hdrBuf.subarray(from * hdr, frames.length * hdr), before * hdr);
      this.queuedHdrs = hdrs;
    }
    for (let i = from; i < frames.length; i++) {
      const data = frames[i]!.data;
      this.queuedPackets.push(data.slice());
      this.queuedBytes += data.length;
    }
    this.stats.txQueued++;
  }

  private afterQueue(): boolean {
    this.updatePoll();
    const below = this.queuedBytes < this.highWaterMark;
    if (!below) this.needDrain = true;
    return below;
  }

  private onWritable(): void {
    if (this.closed) return;
    const packets = this.queuedPackets;
    const reached = this.poller.write(this.queuedHdrs, this.hdrSize, packets, 0, packets.length);
    let bytes = 0;
    for (let i = 0; i < reached; i++) bytes += packets[i]!.length;
    this.stats.txPackets += reached;
    this.stats.txBytes += bytes;
    this.queuedBytes -= bytes;
    this.queuedPackets = packets.slice(reached);
    this.queuedHdrs = this.queuedHdrs && this.hdrSize ? this.queuedHdrs.slice(reached * this.hdrSize) : null;
    this.syncWriteErrors();
    this.updatePoll();
    if (this.needDrain && this.queuedBytes < this.highWaterMark) {
      this.needDrain = false;
      this.drainCallback?.();
    }
  }

  private countWritten(frames: readonly Frame[], from: number, to: number): void {
    let bytes = 0;
    for (let i = from; i < to; i++) bytes += frames[i]!.data.length;
    this.stats.txPackets += to - from;
    this.stats.txBytes += bytes;
    this.syncWriteErrors();
  }

  private syncWriteErrors(): void {
    const count = this.lens[this.writeErrorIndex]!;
    if (count !== this.stats.txErrors) {
      this.stats.txPackets -= count - this.stats.txErrors;
      this.stats.txErrors = count;
    }
  }
}

/** True for errors that mean "this machine or user cannot have a TUN" rather than a bug. */
export function isTunEnvironmentError(err: unknown): err is MptunError {
  return err instanceof TunUnavailableError || err instanceof PermissionError;
}

export type { GsoInfo };

/** Runs a callback the native binding invoked; an exception surfaces on the JS side instead. */
function fromNative(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    setImmediate(() => {
      throw err;
    });
  }
}
