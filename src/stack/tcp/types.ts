/**
 * The public types of one TCP connection as the iface layer sees it (docs/TCP-ENGINE.md).
 * Re-exported from connection.ts; kept apart so the engine's internals can import them without
 * a cycle.
 */
import type { TcpFields, TcpHeader } from '../wire/tcp.js';
import type { CongestionControl } from './congestion.js';

/** RFC 9293 §3.3.2 states (LISTEN lives in the iface: a listener is not a connection). */
export type TcpState =
  | 'CLOSED'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT';

/** Bits of `takeEvents()`. */
export const TcpEvent = {
  /** The handshake completed (SYN-SENT/SYN-RECEIVED -> ESTABLISHED). */
  CONNECTED: 0x01,
  /** New bytes can be read (or, with PEER_FIN, the end of the stream). */
  READABLE: 0x02,
  /** Room appeared in the send buffer after it had refused bytes. */
  WRITABLE: 0x04,
  /** The peer's FIN was received: no more bytes after what is buffered. */
  PEER_FIN: 0x08,
  /** The connection reached CLOSED (any reason; see `error`). The iface forgets it. */
  CLOSED: 0x10,
  /** The connection was reset by the peer (error ECONNRESET or ECONNREFUSED). */
  RESET: 0x20,
  /** The connection gave up retransmitting (error ETIMEDOUT). */
  TIMEOUT: 0x40,
  /** New data was acknowledged: room in the congestion window (an MPTCP scheduler pushes more). */
  ACKED: 0x80,
  /** A retransmission timeout fired with data outstanding (hooks only): the path may be dead. */
  RTO: 0x100,
} as const;

/** Why a connection closed abnormally, in the codes Node users know. */
export type TcpErrorCode = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT';

export interface KeepaliveConfig {
  /** Idle time before the first probe (ms). Linux default 7200 s. */
  idleMs: number;
  /** Between unanswered probes (ms). Linux default 75 s. */
  intervalMs: number;
  /** Unanswered probes before the connection times out. Linux default 9. */
  count: number;
}

export interface TcpConfig {
  /** MSS we advertise: what we can receive (MTU - 40 for IPv4). */
  mss: number;
  /** Clamp for the MSS we send with (e.g. a path MTU), applied to the peer's MSS. */
  mssClamp: number;
  /** Send buffer: bytes `write` accepts beyond SND.UNA. */
  sendBufferSize: number;
  /** Initial receive buffer (window) in bytes. */
  recvBufferSize: number;
  /** Autotuning grows the receive buffer up to this (RFC 7323 §2.3 bounds it at 2^30). */
  maxRecvBufferSize: number;
  /** Offer window scaling (RFC 7323 §2). */
  windowScale: boolean;
  /** Offer SACK (RFC 2018). */
  sack: boolean;
  /** Offer timestamps (RFC 7323 §3). */
  timestamps: boolean;
  /** Nagle's algorithm (RFC 9293 §3.7.4); true by default, false is TCP_NODELAY. */
  nagle: boolean;
  /** Delayed-ACK timer (ms, RFC 9293 §3.8.6.3 says < 500); 0 acks every segment at once. */
  delayedAckMs: number;
  /** 'cubic' (default) or 'newreno'. */
  congestion: 'newreno' | 'cubic';
  /** RFC 6928 initial window in segments. */
  initialCwndSegments: number;
  /** RFC 6298 §2.1 initial RTO, §2.4 minimum, and the backoff cap (ms). */
  initialRto: number;
  minRto: number;
  maxRto: number;
  /** SYN (or SYN-ACK) retransmissions before ETIMEDOUT. */
  synRetries: number;
  /** Data retransmissions (RTO expiries in a row) before ETIMEDOUT. */
  maxRetransmits: number;
  /** TIME_WAIT duration, 2*MSL (ms). */
  timeWaitMs: number;
  /**
   * How long a connection the application has closed (`close()`: it will never read again) may
   * wait in FIN-WAIT-2 for the peer's FIN (ms); Linux's tcp_fin_timeout, 60 s. A half-close
   * (`shutdown()`) waits as long as the peer likes.
   */
  finWait2TimeoutMs: number;
  /** Persist timer bounds (ms) for zero-window probes. */
  persistMinMs: number;
  persistMaxMs: number;
  /** Off when undefined (the default). */
  keepalive: KeepaliveConfig | undefined;
  /** RFC 5961 §7: at most this many challenge ACKs per second per connection. */
  challengeAckLimit: number;
  /**
   * Unacceptable segments without data (out of window, PAWS-rejected, ACKs of unsent data or
   * too old) are answered at most once per this interval (ms), so the stack cannot be used as a
   * reflector or pulled into an ACK loop (Linux's tcp_invalid_ratelimit, 500 ms).
   */
  invalidAckIntervalMs: number;
  /**
   * Largest payload one OutgoingSegment may carry; above the MSS the iface cuts it into
   * MSS-sized packets (gsoSize). 0 means one MSS.
   */
  maxPayload: number;
}

export const DEFAULT_TCP_CONFIG: Readonly<TcpConfig> = Object.freeze({
  mss: 1460,
  mssClamp: 65535,
  sendBufferSize: 1 << 20,
  recvBufferSize: 1 << 16,
  maxRecvBufferSize: 1 << 22,
  windowScale: true,
  sack: true,
  timestamps: true,
  nagle: true,
  delayedAckMs: 40,
  congestion: 'cubic',
  initialCwndSegments: 10,
  initialRto: 1000,
  minRto: 200,
  maxRto: 120_000,
  synRetries: 6,
  maxRetransmits: 15,
  timeWaitMs: 60_000,
  finWait2TimeoutMs: 60_000,
  persistMinMs: 200,
  persistMaxMs: 60_000,
  keepalive: undefined,
  challengeAckLimit: 10,
  invalidAckIntervalMs: 500,
  maxPayload: 0,
});

/** What every constructor takes. */
export interface TcpOpenParams {
  /** Our initial sequence number (RFC 6528, computed by the iface). */
  isn: number;
  now: number;
  /** Filled into outgoing segments for convenience; the iface may overwrite them. */
  localPort?: number;
  remotePort?: number;
  /** Added to `now` for TSval (RFC 7323 §7.1: a per-connection random offset). */
  tsOffset?: number;
  config?: Partial<TcpConfig>;
  /** The subflow seam (MPTCP); none for a plain TCP connection. */
  hooks?: SubflowHooks;
  /** Where outgoing bytes live; the engine's own ring buffer of `sendBufferSize` by default. */
  sendQueue?: SendQueue;
  /**
   * Builds the congestion controller once the send MSS is known (coupled controllers share state
   * across subflows); `config.congestion` names the built-in one otherwise.
   */
  congestion?: (mss: number) => CongestionControl;
}

/**
 * What a validated SYN cookie encodes: the options negotiated in the SYN the iface answered
 * statelessly. Our side of the negotiation (our window scale, our MSS) follows from the config,
 * so the SYN-ACK the iface sent must have been made with the same config (see docs).
 */
export interface SynCookieOptions {
  /** The peer's MSS (as encoded: the cookie's MSS table entry). */
  mss: number;
  /** The peer's window scale shift, or undefined when the SYN had none. */
  peerWindowScale: number | undefined;
  sackPermitted: boolean;
  timestamps: boolean;
}

/** One segment to send. Valid until the next call into the connection. */
export interface OutgoingSegment {
  header: TcpFields;
  /** A view into the send buffer; do not keep it past the next engine call. */
  payload: Uint8Array;
  /** The MSS when `payload` is longer than one MSS (cut it into packets of this size), else 0. */
  gsoSize: number;
}

/**
 * Which step of a connection's life a received segment belongs to, as the subflow hooks see it.
 * `third-ack` is the ACK that completes a passive open (also the one returning a SYN cookie);
 * `segment` is any later segment (data, pure ACK, FIN); `rst` a reset the engine accepted.
 */
export type ReceivedKind = 'syn' | 'syn-ack' | 'third-ack' | 'segment' | 'rst';

/**
 * What a hook decides about a received segment: use it, drop it as if it never arrived (counted
 * as `dropVetoed`), or reset the connection (the RST passes through `onSend` like any segment, so
 * the hook can add MP_TCPRST).
 */
export type HookVerdict = 'accept' | 'drop' | 'reset';

/**
 * The seam between the TCP engine and what runs over it as a subflow (MPTCP, RFC 8684; Linux's
 * tcp <-> mptcp calls: mptcp_established_options, mptcp_incoming_options, the shared window).
 * Given at construction (all three opens), so a passive open's SYN and its third ACK reach it.
 *
 * - Every outgoing segment (SYN, SYN-ACK, ACK, data, FIN, RST, probes) passes through `onSend`
 *   after the timestamps were placed and before SACK blocks, which get what is left.
 * - Every received segment reaches `onReceive` only after TCP's own checks (PAWS, the window,
 *   RFC 5961's RST/SYN/ACK rules) passed, and before it changes any state, so a veto is clean.
 */
export interface SubflowHooks {
  /**
   * Option bytes the hook may put on a segment carrying data (at most; 4-byte aligned). The
   * engine's send MSS leaves this room on every data segment.
   */
  readonly dataOptionSpace: number;
  /**
   * Option bytes beyond `dataOptionSpace` the data segments sized now need (absent: none). The
   * engine reads it once per dispatch, so it must not change while one sends.
   */
  extraDataOptionSpace?(): number;
  /**
   * Appends the hook's options to `header.options` (which holds the engine's so far) using at
   * most `spaceLeft` bytes. `payloadLength` bytes at `header.seqNumber` ride on the segment.
   */
  onSend(header: TcpFields, payloadLength: number, spaceLeft: number): void;
  onReceive(header: TcpHeader, payloadLength: number, kind: ReceivedKind): HookVerdict;
  /**
   * The receive space to advertise (RFC 8684 §3.3.4: a subflow announces the connection-level
   * window); the engine advertises the smaller of this and its own buffer's room.
   */
  receiveSpace?(): number;
}

/**
 * Where a connection's outgoing bytes live. The engine's own ring buffer by default; a subflow's
 * is filled by MPTCP (DSS mappings into the connection's buffer, never copied).
 * Offsets count from the first byte held (the oldest unacknowledged one).
 */
export interface SendQueue {
  /** Bytes held: unacknowledged, in flight or not yet sent. */
  readonly length: number;
  /** Bytes `write` would take. */
  readonly free: number;
  write(data: Uint8Array): number;
  /** The first `n` bytes were acknowledged. */
  ack(n: number): void;
  /** Bytes [offset, offset + n): a borrowed view, valid until the next call. */
  view(offset: number, n: number): Uint8Array;
  /**
   * Most bytes one segment starting at `offset` may carry: a segment never spans two DSS
   * mappings (RFC 8684 §3.3.1), and one that starts a mapping leaves room for it (only that one
   * carries it). Absent: no limit.
   */
  segmentLimit?(offset: number): number;
}

export interface TcpInfo {
  state: TcpState;
  /** MSS we advertised, and the peer's (undefined until known). */
  localMss: number;
  peerMss: number | undefined;
  /** Payload bytes per packet we send with (after clamps and option space). */
  sendMss: number;
  /** Shifts applied: to the peer's window (snd) and to ours (rcv); undefined when off. */
  sndWindowScale: number | undefined;
  rcvWindowScale: number | undefined;
  sack: boolean;
  timestamps: boolean;
  congestion: string;
  cwnd: number;
  ssthresh: number;
  srtt: number | undefined;
  rttvar: number | undefined;
  rto: number;
  /** The peer's last window, bytes (scaled). */
  sndWnd: number;
  /** The window we last advertised, bytes: the field times 2^rcvWindowScale (a SYN's unscaled). */
  rcvWnd: number;
  bytesSent: number;
  bytesRetransmitted: number;
  bytesAcked: number;
  bytesReceived: number;
  retransmitSegments: number;
  unsentBytes: number;
  unreadBytes: number;
  error: TcpErrorCode | undefined;
}
