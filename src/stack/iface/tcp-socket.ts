/**
 * The Node-shaped face of a connection: a Duplex with net.Socket's habits. `end()` sends FIN
 * after the queued bytes (the readable side keeps working: half-close), `destroy()` sends RST,
 * errors carry the codes Node users match on (ECONNREFUSED, ETIMEDOUT, ECONNRESET), and
 * backpressure holds both ways: a write's callback runs only once the engine has taken its
 * bytes, and bytes are only read from the engine (opening its window) when the reader wants them.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import type { MptcpInfo } from '../mptcp/connection.js';
import type { TcpErrorCode, TcpInfo } from '../tcp/connection.js';

/**
 * The byte stream a socket fronts: a plain TCP connection, or an MPTCP connection (which may
 * have fallen back to TCP). Both have these calls, so one Duplex serves all three.
 */
export interface StreamConnection {
  write(data: Uint8Array): number;
  read(max?: number, oneChunk?: boolean): Uint8Array | undefined;
  shutdown(): void;
  abort(): void;
  readonly error: TcpErrorCode | undefined;
  readonly state: string;
  info(): SocketInfo;
}

/** A socket's engine view: TCP's, plus the MPTCP connection and its subflows when it is one. */
export type SocketInfo = TcpInfo & { mptcp?: MptcpInfo };

/** What the stack gives a socket. */
export interface TcpSocketHost {
  readonly conn: StreamConnection;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly family: 'IPv4' | 'IPv6';
  /** The connection has something to send: dispatch it (soon, batched). */
  kick(): void;
}

/** Errors shaped like Node's system errors (code, syscall, address, port). */
export class TcpSocketError extends Error {
  constructor(
    readonly code: TcpErrorCode,
    readonly syscall: 'connect' | 'read',
    readonly address: string,
    readonly port: number,
  ) {
    super(`${syscall} ${code} ${address}:${port}`);
    this.name = 'TcpSocketError';
  }
}

export interface TcpSocketOptions {
  allowHalfOpen: boolean;
}

export class TcpSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
  /** True until the handshake completes (like net.Socket's `pending`). */
  pending = true;
  private readonly host: TcpSocketHost;
  /** The reader asked for more (`_read`) and we have not pushed enough yet. */
  private wantRead = false;
  private readEnded = false;
  /** A write the engine only partly took: the rest and its callback. */
  private pendingChunk: Uint8Array | undefined;
  private pendingCallback: ((error?: Error | null) => void) | undefined;
  private connClosed = false;
  private peerFin = false;
  private deferredFinal: ((error?: Error | null) => void) | undefined;

  constructor(host: TcpSocketHost, options: TcpSocketOptions) {
    // decodeStrings: string writes arrive as Buffers. allowHalfOpen false: like net.Socket, our
    // side ends once the peer's FIN has been read.
    super({ allowHalfOpen: options.allowHalfOpen, decodeStrings: true });
    this.host = host;
    this.remoteAddress = host.remoteAddress;
    this.remotePort = host.remotePort;
    this.localAddress = host.localAddress;
    this.localPort = host.localPort;
    this.remoteFamily = host.family;
  }

  /** The engine's view: negotiated options, RTT, retransmissions. */
  info(): SocketInfo {
    return this.host.conn.info();
  }

  get state(): string {
    return this.host.conn.state;
  }

  // ------------------------------------------------------------ Duplex implementation

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.connClosed) {
      callback(this.closedError());
      return;
    }
    const data = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const taken = this.host.conn.write(data);
    if (taken > 0) this.host.kick();
    if (taken >= data.length) {
      callback();
      return;
    }
    this.pendingChunk = data.subarray(taken);
    this.pendingCallback = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    // RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the connection; like net.Socket, an end()
    // before the handshake waits for it instead.
    if (this.pending && !this.connClosed) {
      this.deferredFinal = callback;
      return;
    }
    if (!this.connClosed) {
      this.host.conn.shutdown();
      this.host.kick();
    }
    callback();
  }

  override _read(): void {
    this.wantRead = true;
    this.pull();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const graceful = error === null && this.readableEnded && this.writableFinished;
    if (!this.connClosed && !graceful) {
      // destroy() is RST (like SO_LINGER 0); a graceful close has already sent FIN.
      this.host.conn.abort();
      this.host.kick();
    }
    const cb = this.pendingCallback;
    this.pendingCallback = undefined;
    this.pendingChunk = undefined;
    cb?.(error ?? this.closedError());
    const final = this.deferredFinal;
    this.deferredFinal = undefined;
    final?.(error ?? this.closedError());
    callback(error);
  }

  // ------------------------------------------------------------ events from the stack

  /** @internal */
  _onConnected(): void {
    if (!this.pending) return;
    this.pending = false;
    this.emit('connect');
    this.emit('ready');
    const final = this.deferredFinal;
    if (final !== undefined) {
      this.deferredFinal = undefined;
      this._final(final);
    }
  }

  /** @internal New bytes, or (peerFin) the peer's FIN: no bytes after those buffered. */
  _onReadable(peerFin: boolean): void {
    if (peerFin) this.peerFin = true;
    if (this.wantRead || this.peerFin) this.pull();
  }

  /** @internal Room in the send buffer. */
  _onWritable(): void {
    const chunk = this.pendingChunk;
    if (chunk === undefined) return;
    const taken = this.host.conn.write(chunk);
    if (taken > 0) this.host.kick();
    if (taken < chunk.length) {
      this.pendingChunk = chunk.subarray(taken);
      return;
    }
    const cb = this.pendingCallback!;
    this.pendingChunk = undefined;
    this.pendingCallback = undefined;
    cb();
  }

  /** @internal The connection reached CLOSED; `code` says why when it was not a clean close. */
  _onClosed(code: TcpErrorCode | undefined): void {
    if (this.connClosed) return;
    // Bytes that arrived before the close are still the reader's.
    this.pull();
    this.connClosed = true;
    if (this.destroyed) return;
    if (code !== undefined) {
      this.destroy(this.errorFor(code));
      return;
    }
    // A clean close ends the stream, but only after the bytes a reader that applies backpressure
    // has not taken yet: pull() pushes them as it asks, then the end.
    this.peerFin = true;
    this.pull();
  }

  // ------------------------------------------------------------ helpers

  private pull(): void {
    if (this.readEnded) return;
    const conn = this.host.conn;
    let took = false;
    while (this.wantRead) {
      // One chunk at a time: a view the engine handed over, pushed without another copy.
      const chunk = conn.read(Number.MAX_SAFE_INTEGER, true);
      if (chunk === undefined) break;
      took = true;
      this.wantRead = this.push(chunk);
    }
    // Reading opens the receive window: let the engine send a window update if it wants.
    if (took) this.host.kick();
    // The FIN ends the stream once every byte before it has been pushed.
    if (this.peerFin && this.wantRead) {
      this.readEnded = true;
      this.push(null);
    }
  }

  private errorFor(code: TcpErrorCode): TcpSocketError {
    return new TcpSocketError(code, this.pending ? 'connect' : 'read', this.remoteAddress, this.remotePort);
  }

  private closedError(): Error {
    const code = this.host.conn.error;
    return code !== undefined ? this.errorFor(code) : new Error('write after the connection closed');
  }
}

/** What `listen()` returns: emits 'connection' (TcpSocket) and 'close'. */
export class TcpServer extends EventEmitter {
  /** @internal */
  _listener: import('./stack.js').Listener | undefined;
  private boundHost: string | undefined;
  private boundPort = 0;
  private closed = false;

  constructor(private readonly onClose: (server: TcpServer) => void) {
    super();
  }

  /** @internal */
  bind(listener: import('./stack.js').Listener, host: string | undefined, port: number): void {
    this._listener = listener;
    this.boundHost = host;
    this.boundPort = port;
  }

  address(): { address: string | undefined; port: number; anyDestination: boolean } {
    return {
      address: this.boundHost,
      port: this.boundPort,
      anyDestination: this._listener?.anyDestination ?? false,
    };
  }

  /** Number of half-open (SYN-RECEIVED) connections waiting on this listener. */
  get synBacklogCount(): number {
    return this._listener?.synBacklogCount ?? 0;
  }

  /** @internal */
  _accept(socket: TcpSocket): void {
    this.emit('connection', socket);
  }

  /** Stops accepting; established sockets are not touched. */
  close(callback?: () => void): this {
    if (!this.closed) {
      this.closed = true;
      this.onClose(this);
      queueMicrotask(() => {
        this.emit('close');
        callback?.();
      });
    }
    return this;
  }
}
