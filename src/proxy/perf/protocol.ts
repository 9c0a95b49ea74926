/**
 * iperf3's control protocol, as spoken by iperf 3.x (learned from its source and by watching
 * two stock iperf3 processes talk on loopback):
 *
 *   client → server  cookie: 36 characters of [a-z2-7] and a NUL (37 bytes), on the control
 *                    connection and again first thing on every data connection
 *   server → client  one signed byte per state change (PARAM_EXCHANGE, CREATE_STREAMS, ...)
 *   either way       JSON objects (parameters, results) behind a 4-byte big-endian length
 *
 * The happy path: cookie → 9 → params → 10 → data connections → 1 → 2 → (test) → client 4 →
 * 13 → client results → server results → 14 → client 16.
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { PerfError } from '../../errors.js';

export const TEST_START = 1;
export const TEST_RUNNING = 2;
export const TEST_END = 4;
export const PARAM_EXCHANGE = 9;
export const CREATE_STREAMS = 10;
export const SERVER_TERMINATE = 11;
export const CLIENT_TERMINATE = 12;
export const EXCHANGE_RESULTS = 13;
export const DISPLAY_RESULTS = 14;
export const IPERF_START = 15;
export const IPERF_DONE = 16;
export const ACCESS_DENIED = -1;
export const SERVER_ERROR = -2;

export const DEFAULT_PORT = 5201;
export const COOKIE_SIZE = 37;
/** iperf3's default TCP block (write size): 128 KiB. */
export const DEFAULT_BLOCK_SIZE = 128 * 1024;
/** iperf3's MAX_BLOCKSIZE for TCP: 1 MiB. */
export const MAX_BLOCK_SIZE = 1024 * 1024;
/** iperf3's MAX_STREAMS. */
export const MAX_STREAMS = 128;
/** Larger JSON than this is not iperf3 talking to us; iperf3 itself caps messages near this size. */
const MAX_JSON = 1 << 20;

/** iperf3's i_errno values we send with SERVER_ERROR (src/iperf_api.h). */
export const IE_NUM_STREAMS = 6;
export const IE_BLOCK_SIZE = 7;
export const IE_UNIMPLEMENTED = 13;

const COOKIE_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** A fresh cookie: 36 random characters and the NUL iperf3 sends with them. */
export function makeCookie(): Buffer {
  const cookie = Buffer.alloc(COOKIE_SIZE);
  for (let i = 0; i < COOKIE_SIZE - 1; i++) cookie[i] = COOKIE_ALPHABET.charCodeAt(randomInt(32));
  return cookie;
}

/** The cookie as text (without the NUL), as iperf3 prints it in `start.cookie`. */
export function cookieText(cookie: Buffer): string {
  const nul = cookie.indexOf(0);
  return cookie.subarray(0, nul < 0 ? cookie.length : nul).toString('latin1');
}

/** The test parameters a client sends at PARAM_EXCHANGE (the fields we use or refuse). */
export interface TestParams {
  tcp?: boolean;
  udp?: boolean;
  sctp?: boolean;
  omit?: number;
  time?: number;
  num?: number;
  blockcount?: number;
  parallel?: number;
  reverse?: boolean;
  bidirectional?: boolean;
  len?: number;
  pacing_timer?: number;
  client_version?: string;
  [key: string]: unknown;
}

/** One stream's entry in the results each side sends at EXCHANGE_RESULTS. */
export interface StreamResult {
  id: number;
  bytes: number;
  retransmits: number;
  jitter: number;
  errors: number;
  omitted_errors: number;
  packets: number;
  omitted_packets: number;
  start_time: number;
  end_time: number;
}

export interface TestResults {
  cpu_util_total: number;
  cpu_util_user: number;
  cpu_util_system: number;
  /** 1 when the sender counted retransmissions, 0 when it could not, -1 from the receiver. */
  sender_has_retransmits: number;
  congestion_used?: string;
  streams: StreamResult[];
}

/**
 * iperf3 numbers its streams 1, 3, 4, 5... (its list code starts the second at 3); both ends
 * number independently and match results by id, so we must do the same.
 */
export function streamId(index: number): number {
  return index === 0 ? 1 : index + 2;
}

/** Reads the results JSON defensively: anything malformed becomes a PerfError. */
export function parseResults(value: unknown): TestResults {
  if (typeof value !== 'object' || value === null)
    throw new PerfError('the peer sent results that are not a JSON object');
  const v = value as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const streams = Array.isArray(v['streams']) ? v['streams'] : [];
  return {
    cpu_util_total: num(v['cpu_util_total']),
    cpu_util_user: num(v['cpu_util_user']),
    cpu_util_system: num(v['cpu_util_system']),
    sender_has_retransmits: num(v['sender_has_retransmits']) === 1 ? 1 : -1,
    ...(typeof v['congestion_used'] === 'string' ? { congestion_used: v['congestion_used'] } : {}),
    streams: streams.map((s: unknown) => {
      const o = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>;
      const retransmits = num(o['retransmits']);
      return {
        id: num(o['id']),
        bytes: num(o['bytes']),
        // iperf3 writes -1 as an unsigned 64-bit number when it has no count.
        retransmits: retransmits > Number.MAX_SAFE_INTEGER ? -1 : retransmits,
        jitter: num(o['jitter']),
        errors: num(o['errors']),
        omitted_errors: num(o['omitted_errors']),
        packets: num(o['packets']),
        omitted_packets: num(o['omitted_packets']),
        start_time: num(o['start_time']),
        end_time: num(o['end_time']),
      };
    }),
  };
}

/**
 * The control connection: exact-length reads over a Duplex (state bytes, cookies, length-prefixed
 * JSON) and writes of the same. A read pending when the peer closes fails with a PerfError.
 */
export class ControlChannel {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly closeListeners: ((err: Error) => void)[] = [];

  constructor(
    readonly stream: Duplex,
    peer: string,
    initial?: Buffer,
  ) {
    if (initial && initial.length > 0) {
      this.chunks.push(initial);
      this.buffered = initial.length;
    }
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.pump();
    });
    stream.once('end', () =>
      this.fail(new PerfError(`the control connection to ${peer} was closed by the peer`)),
    );
    stream.once('error', (err: NodeJS.ErrnoException) =>
      this.fail(
        new PerfError(`the control connection to ${peer} failed: ${err.code ?? err.message}`, { cause: err }),
      ),
    );
    stream.once('close', () => this.fail(new PerfError(`the control connection to ${peer} was closed`)));
    stream.resume();
  }

  /** True once the peer closed or the connection failed. */
  get closed(): boolean {
    return this.failure !== undefined;
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('ControlChannel: one read at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.pump();
    });
  }

  async readState(): Promise<number> {
    return (await this.read(1)).readInt8(0);
  }

  async readJson(): Promise<unknown> {
    const len = (await this.read(4)).readUInt32BE(0);
    if (len > MAX_JSON) throw new PerfError(`the peer announced a ${len}-byte JSON message; not iperf3?`);
    const text = (await this.read(len)).toString('utf8');
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new PerfError(`the peer sent malformed JSON: ${(err as Error).message}`, { cause: err });
    }
  }

  writeState(state: number): void {
    const b = Buffer.alloc(1);
    b.writeInt8(state, 0);
    this.write(b);
  }

  writeJson(value: unknown): void {
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length, 0);
    this.write(Buffer.concat([len, body]));
  }

  write(b: Buffer): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.write(b);
  }

  close(): void {
    this.stream.end();
  }

  /** Calls `fn` once when the peer closes or the connection fails (at once if it already has). */
  onClose(fn: (err: Error) => void): void {
    if (this.failure) fn(this.failure);
    else this.closeListeners.push(fn);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.pump();
    for (const fn of this.closeListeners.splice(0)) fn(err);
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.buffered >= w.n) {
      this.waiter = undefined;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const rest = all.subarray(w.n);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      w.resolve(all.subarray(0, w.n));
    } else if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}

/** Reads exactly `n` bytes from the start of a fresh stream (a data connection's cookie). */
export function readPrefix(stream: Duplex, n: number): Promise<{ prefix: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= n) {
        cleanup();
        stream.pause();
        const all = Buffer.concat(chunks);
        resolve({ prefix: all.subarray(0, n), rest: all.subarray(n) });
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new PerfError(`the connection closed after ${have} of ${n} cookie bytes`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

/** iperf3-style sizes: a number with an optional K/M/G/T suffix (powers of 1024); undefined if not one. */
export function tryParseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)$/.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

export function parseSize(text: string): number {
  const n = tryParseSize(text);
  if (n === undefined)
    throw new Error(`'${text}' is not a size: use a number with an optional K, M, G or T suffix`);
  return n;
}

/**
 * Closes a connection the polite way: FIN after what we wrote, then wait (bounded) for the peer
 * to close too. Destroying at once would drop a last state byte, and on the userspace stack a
 * destroy() before both FINs is an RST, which iperf3 reports as an error.
 */
export function closeGracefully(stream: Duplex, timeoutMs = 2000): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => stream.destroy(), timeoutMs);
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    // Errors after our FIN (a peer's RST) end it the same way; 'close' follows.
    stream.once('error', () => stream.destroy());
    stream.resume();
    stream.end();
  });
}
