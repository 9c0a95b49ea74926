/**
 * One proxied connection: the client's stream (our MPTCP or fallen-back TCP socket) bridged to the
 * backend over Node's kernel TCP. Two `stream.pipeline`s, one per direction, carry the bytes with
 * backpressure both ways; both sockets are half-open capable, so the client's FIN reaches the
 * backend as end() and the backend's reply still flows back (and the other way round). An error
 * on either side destroys both (the client sees a reset).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../log.js';
import { releaseChunk } from '../../stack/tcp/slab-pool.js';
import type { TcpConfig } from '../../stack/tcp/types.js';
import { connectBackend, pooledReads } from './backend-socket.js';

/**
 * Engine settings for every connection of a proxy's own stack (the apps' intercepted ones, the
 * MPTCP subflows). No Nagle (TCP_NODELAY, as on the backend sockets): the sender on the far side
 * already chose its segments, and holding a small one back until the previous is acknowledged
 * meets the peer's delayed ACK. An iperf3 control message (TEST_START) waited 40 ms in mptun
 * client that way, and a request/response protocol waits as long on every exchange.
 */
export const RELAY_TCP: Readonly<Partial<TcpConfig>> = Object.freeze({ nagle: false });

export interface BridgeStats {
  /** Client → backend bytes. */
  up: number;
  /** Backend → client bytes. */
  down: number;
}

export interface BridgeOptions {
  front: Duplex;
  backend: { host: string; port: number };
  connectTimeoutMs: number;
  log: Logger;
  /**
   * Opens the back side instead of a kernel TCP connection to `backend` (which then only names
   * it in logs and errors): mptun client opens an MPTCP connection on its own stack. The stream
   * must emit 'connect' once established and 'error' if that fails.
   */
  openBack?: () => BackSide;
  /**
   * A back side already connected (no connect timeout, no 'connect' awaited): converter mode
   * connects to the destination first, so that a failure can be answered with an Error TLV.
   */
  connected?: BackSide | undefined;
  /** Bytes for the back side before any of the client's (a PROXY protocol v2 header). */
  header?: Buffer | undefined;
}

/** What the bridge needs of its back side: a Duplex; Node's Socket and our TcpSocket both fit. */
export type BackSide = Duplex & {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localPort?: number | undefined;
  setNoDelay?: (noDelay?: boolean) => unknown;
};

/** A running bridge; `done` settles once both directions ended (or one failed). */
export class Bridge {
  readonly stats: BridgeStats = { up: 0, down: 0 };
  readonly done: Promise<'ok' | Error>;
  private readonly back: BackSide;

  constructor(private readonly o: BridgeOptions) {
    const { front, backend, log } = o;
    const back: BackSide = o.connected ?? o.openBack?.() ?? connectBackend(backend.host, backend.port);
    this.back = back;
    back.setNoDelay?.(true);
    const timer = setTimeout(() => {
      back.destroy(
        new Error(`backend ${backend.host}:${backend.port} did not answer within ${o.connectTimeoutMs} ms`),
      );
    }, o.connectTimeoutMs);
    back.once('connect', () => {
      clearTimeout(timer);
      log.debug(
        { backend: `${back.remoteAddress}:${back.remotePort}`, local: back.localPort },
        'backend connected',
      );
    });
    back.once('close', () => clearTimeout(timer));
    if (o.connected !== undefined) clearTimeout(timer);
    // Written before the pipeline starts, so it precedes every client byte (a socket still
    // connecting queues it).
    if (o.header !== undefined) back.write(o.header);
    front.on('data', (d: Buffer) => {
      this.stats.up += d.length;
    });
    // A failure on one side resets the other, before pipeline() destroys it (a plain destroy of
    // Node's socket would send FIN: a clean end of stream the peer could take for success).
    back.once('error', () => reset(front));
    front.once('error', () => reset(back));
    releaseWhenWritten(back);
    releaseWhenWritten(front);
    const reads = pooledReads(back);
    if (reads === undefined) {
      back.on('data', (d: Buffer) => {
        this.stats.down += d.length;
      });
    } else {
      // A backend socket reading into pooled slabs emits no 'data': its bytes come here, with
      // the backpressure pipeline() would apply (the pipeline still carries its end and errors).
      reads.attach((chunk) => {
        this.stats.down += chunk.length;
        if (front.write(chunk)) return true;
        front.once('drain', () => back.resume());
        return false;
      });
    }
    const up = pipeline(front, back).then(() =>
      log.debug({ bytes: this.stats.up }, 'client finished sending'),
    );
    const down = pipeline(back, front).then(() =>
      log.debug({ bytes: this.stats.down }, 'backend finished sending'),
    );
    this.done = Promise.all([up, down]).then(
      () => {
        front.destroy();
        back.destroy();
        return 'ok' as const;
      },
      (err: Error) => {
        reset(front);
        reset(back);
        return err;
      },
    );
  }

  /** Ends the connection now (after a drain that ran out): both sides are destroyed. */
  abort(reason: Error): void {
    reset(this.back, reason);
    reset(this.o.front, reason);
  }
}

/**
 * The pipelines hold no chunk once its write completed, and the chunks our stack's sockets
 * read are views of its receive slabs: each goes back to the slab pool (slab-pool.ts) when
 * `dest` reports it written, so a busy bridge reuses its slabs instead of allocating new
 * ones. A failed write keeps its chunk (the socket may still hold it); other chunks (Node's
 * own reads, the PROXY header) are not slabs, and releasing them does nothing.
 */
function releaseWhenWritten(dest: Duplex): void {
  const write = dest.write;
  dest.write = function (this: Duplex, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const callback = (typeof encoding === 'function' ? encoding : cb) as WriteCallback | undefined;
    const enc = typeof encoding === 'function' ? undefined : (encoding as BufferEncoding | undefined);
    if (!(chunk instanceof Uint8Array)) return write.call(this, chunk, enc as BufferEncoding, callback);
    return write.call(this, chunk, enc as BufferEncoding, (err?: Error | null) => {
      if (err == null) releaseChunk(chunk);
      callback?.(err);
    });
  } as Duplex['write'];
}

type WriteCallback = (error?: Error | null) => void;

/**
 * Ends a failed side with a reset, so its peer learns the connection broke instead of reading a
 * clean end of stream: Node's sockets do that with resetAndDestroy() (destroy() alone sends
 * FIN); our stack's TcpSocket resets on destroy().
 */
function reset(stream: Duplex, reason?: Error): void {
  if (stream.destroyed) return;
  const rst = (stream as Partial<Socket>).resetAndDestroy;
  if (typeof rst === 'function') rst.call(stream);
  else stream.destroy(reason);
}
