/**
 * One TCP connection as a pure state machine (RFC 9293), in the manner of smoltcp's
 * socket/tcp.rs: `process` takes a received segment, `dispatch` emits every segment now due,
 * `pollAt` says when `dispatch` must run next. No I/O and no clock: time is passed in (ms).
 *
 * Input never throws: a segment that cannot be used is counted (counters.ts) and dropped.
 *
 * This class is the state machine (in the manner of gVisor's tcp/connect.go + endpoint): segment
 * arrival in RFC 9293 §3.10.7 order, open and close, timer dispatch, events, the receive side
 * (receiver.ts holds the bytes; RCV.NXT, the advertised window, delayed ACKs and autotuning are
 * here) and the building of every segment (ACK, window, options). It delegates:
 *  - the send side to `TcpSender` (sender.ts): the send sequence space, new data, FIN, probes,
 *    persist, retransmitting a range, RTT/RTO, the congestion controller; it emits through
 *    `emitSegment` here;
 *  - loss recovery to `LossRecovery` (recovery.ts, owned by the sender): duplicate-ACK/SACK loss
 *    detection, SACK recovery with PRR, NewReno, the RTO recovery state, Eifel counting;
 *  - the send buffer to send-buffer.ts (or the subflow's SendQueue), option parsing and SYN
 *    options to options.ts.
 */
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../wire/seqnum.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_MAX_SACK_BLOCKS,
  TCP_RST,
  TCP_SYN,
  type TcpFields,
  type TcpHeader,
  type TcpOption,
  tcpOptionsLength,
} from '../wire/tcp.js';
import { createCongestionControl } from './congestion.js';
import { createTcpCounters, type TcpCounters } from './counters.js';
import {
  DEFAULT_PEER_MSS,
  emptySegmentOptions,
  MAX_UNSCALED_WINDOW,
  MIN_PEER_MSS,
  rcvWindowScaleFor,
  readSegmentOptions,
  type SegmentOptions,
  synOptions,
} from './options.js';
import { ReceiveBuffer } from './receiver.js';
import type { LossRecovery } from './recovery.js';
import { SendBuffer } from './send-buffer.js';
import { type Emit, NEVER, TcpSender } from './sender.js';
import {
  DEFAULT_TCP_CONFIG,
  type OutgoingSegment,
  type ReceivedKind,
  type SubflowHooks,
  type SynCookieOptions,
  type TcpConfig,
  type TcpErrorCode,
  TcpEvent,
  type TcpInfo,
  type TcpOpenParams,
  type TcpState,
} from './types.js';

export { rcvWindowScaleFor } from './options.js';
export * from './types.js';

/** Timestamps option as laid out on data segments (10 + 2 NOPs, RFC 7323 Appendix A). */
const TS_OPTION_SPACE = 12;
/** RFC 9293 §3.1: at most 40 bytes of options. */
const OPTION_SPACE = 40;
/** A SACK option's kind, length and 2 NOPs, and each block (RFC 2018 §3). */
const SACK_BASE_SPACE = 4;
const SACK_BLOCK_SPACE = 8;
/** RFC 5961 §7: the challenge ACK rate limit counts per this interval (ms). */
const CHALLENGE_ACK_INTERVAL_MS = 1000;
/** Delayed ACK: acknowledge at least every second full-sized segment (RFC 9293 §3.8.6.3). */
const ACK_EVERY_SEGMENTS = 2;
/** Segments ACKed at once after a hole is filled (Linux TCP_MAX_QUICKACKS). */
const QUICK_ACKS_AFTER_GAP = 16;
/**
 * Small-window ACKs (see `smallWindowFlow`): a flow delivering fewer full segments than this per
 * round trip gets every full segment ACKed at once ...
 */
const SMALL_WINDOW_SEGMENTS = 32;
/** ... provided it delivers at least this many (a trickle keeps its delayed, piggybacked ACKs). */
const SMALL_WINDOW_MIN_SEGMENTS = 2;
/** Autotuning epoch when no RTT is known yet (ms). */
const DEFAULT_TUNING_EPOCH_MS = 100;

const SYNCHRONIZED_SEND_STATES: ReadonlySet<TcpState> = new Set([
  'ESTABLISHED',
  'CLOSE-WAIT',
  'FIN-WAIT-1',
  'CLOSING',
  'LAST-ACK',
]);
const RECEIVE_DATA_STATES: ReadonlySet<TcpState> = new Set(['ESTABLISHED', 'FIN-WAIT-1', 'FIN-WAIT-2']);

interface PendingRst {
  seq: number;
  ack: number | undefined;
}

export class TcpConnection {
  readonly counters: TcpCounters = createTcpCounters();
  readonly config: Readonly<TcpConfig>;
  /** The subflow seam (MPTCP), given at construction; undefined for plain TCP. */
  private readonly hooks: SubflowHooks | undefined;

  private _state: TcpState = 'CLOSED';
  private _error: TcpErrorCode | undefined;
  private events = 0;
  /** Opened by connect() (SYN-SENT): a reset in SYN-RECEIVED then means "refused". */
  private readonly active: boolean;
  readonly localPort: number;
  readonly remotePort: number;

  /** The send side (sequence space, output, RTT/RTO, congestion control) and its loss recovery. */
  private readonly snd: TcpSender;
  private readonly rec: LossRecovery;
  private peerMss: number | undefined;

  // Receive sequence space.
  private irs = 0;
  private rcvNxt = 0;
  /** Right edge of the window we last advertised (never moved left on purpose). */
  private rcvAdvRight = 0;
  /** The window we last advertised, in bytes (the field scaled; unscaled in a SYN). */
  private rcvWndAdvertised = 0;
  private rcvWindowScale = 0;
  private readonly recv: ReceiveBuffer;
  private peerFinSeq: number | undefined;
  private finReceived = false;

  // Negotiated options.
  private wsNegotiated = false;
  private sackOk = false;
  private tsOk = false;
  private tsRecent = 0;
  private lastAckSent = 0;

  // Control.
  private synPending = false;
  private ackNow = false;
  private unackedSegments = 0;
  private quickAcks = 0;
  private readonly rstQueue: PendingRst[] = [];
  /** A keepalive probe is due on the next dispatch. */
  private keepalivePending = false;
  private challengeWindowStart = Number.NEGATIVE_INFINITY;
  private challengeCount = 0;
  /** When an unacceptable segment was last answered (the invalid-ACK rate limit). */
  private lastInvalidAckAt = Number.NEGATIVE_INFINITY;
  /** Built from a SYN cookie: the segment being processed is the handshake's third ACK. */
  private cookieAck = false;

  // Timers (absolute ms, NEVER when off); the RTO and persist timers are the sender's.
  private delAckAt = NEVER;
  private keepaliveAt = NEVER;
  private timeWaitAt = NEVER;
  /** An orphaned connection's FIN-WAIT-2 deadline (config.finWait2TimeoutMs). */
  private finWait2At = NEVER;
  /** close() was called: the application will never read again. */
  private orphaned = false;
  private keepaliveProbes = 0;
  private synRetransmits = 0;

  // Autotuning (receive side).
  private tuneEpochStart = 0;
  private tuneBytes = 0;
  /** Bytes that arrived in order during the last complete autotuning epoch (about one RTT). */
  private lastEpochBytes: number | undefined;

  // Statistics.
  private bytesReceived = 0;
  private writeBlocked = false;

  private readonly segOpts: SegmentOptions = emptySegmentOptions();

  private constructor(params: TcpOpenParams, active: boolean) {
    const config: Readonly<TcpConfig> = { ...DEFAULT_TCP_CONFIG, ...params.config };
    this.config = config;
    this.hooks = params.hooks;
    this.active = active;
    this.localPort = params.localPort ?? 0;
    this.remotePort = params.remotePort ?? 0;
    const newCongestionControl =
      params.congestion ??
      ((mss: number) =>
        createCongestionControl(config.congestion, mss, { initialCwndSegments: config.initialCwndSegments }));
    this.snd = new TcpSender(
      config,
      params.isn >>> 0,
      params.sendQueue ?? new SendBuffer(config.sendBufferSize),
      this.counters,
      params.tsOffset ?? 0,
      newCongestionControl,
      (now, emit, seq, flags, payload, gso) => this.emitSegment(now, emit, seq, flags, payload, gso),
    );
    this.rec = this.snd.rec;
    // An MPTCP subflow advertises the connection-level window (RFC 8684 §3.3.4), which its own
    // buffer must not cap: in-order bytes leave it at once, so a small subflow buffer would
    // limit the whole connection's window (and never autotune, each subflow seeing a share).
    const shared = params.hooks?.receiveSpace?.() ?? 0;
    this.recv = new ReceiveBuffer(Math.max(config.recvBufferSize, shared));
    this.tuneEpochStart = params.now;
  }

  /** Active open: SYN-SENT; the first `dispatch` sends the SYN. */
  static connect(params: TcpOpenParams): TcpConnection {
    const conn = new TcpConnection(params, true);
    conn._state = 'SYN-SENT';
    conn.synPending = true;
    return conn;
  }

  /**
   * Passive open from a received SYN (the iface checked it is one: SYN without ACK/RST):
   * SYN-RECEIVED; the first `dispatch` sends the SYN-ACK with what both sides offered.
   */
  static accept(syn: TcpHeader, params: TcpOpenParams): TcpConnection {
    const conn = new TcpConnection(params, false);
    conn._state = 'SYN-RECEIVED';
    const opts = conn.segOpts;
    if (!readSegmentOptions(syn.options, opts)) {
      // A SYN with a contradictory option list: answer as if it carried no options.
      conn.counters.dropBadOptions++;
      Object.assign(opts, emptySegmentOptions());
    }
    conn.irs = syn.seqNumber;
    conn.rcvNxt = seqAdd(syn.seqNumber, 1);
    if (conn.hooks !== undefined && !conn.hookAccepts(syn, 0, 'syn')) return conn;
    conn.rcvAdvRight = seqAdd(conn.rcvNxt, Math.min(conn.receiveSpace(), MAX_UNSCALED_WINDOW));
    conn.negotiate(opts);
    const snd = conn.snd;
    snd.sndWnd = syn.window; // RFC 7323 §2.2: never scaled in a SYN
    snd.maxSndWnd = snd.sndWnd;
    snd.sndWl1 = syn.seqNumber;
    conn.synPending = true;
    return conn;
  }

  /**
   * A connection rebuilt from the ACK that returned a valid SYN cookie: ESTABLISHED at once,
   * with the options the cookie encodes. `params.isn` is our ISN (the cookie, ack - 1). The
   * ACK's own payload and FIN are processed as if they had arrived on the connection.
   */
  static fromCookie(
    ack: TcpHeader,
    payload: Uint8Array,
    cookie: SynCookieOptions,
    params: TcpOpenParams,
  ): TcpConnection {
    const conn = new TcpConnection(params, false);
    conn.irs = seqAdd(ack.seqNumber, -1);
    conn.rcvNxt = ack.seqNumber;
    const opts = emptySegmentOptions();
    opts.mss = cookie.mss;
    opts.windowScale = cookie.peerWindowScale;
    opts.sackPermitted = cookie.sackPermitted;
    const received = emptySegmentOptions();
    readSegmentOptions(ack.options, received);
    opts.tsVal = cookie.timestamps ? (received.tsVal ?? 0) : undefined;
    conn.negotiate(opts);
    const snd = conn.snd;
    snd.sndUna = seqAdd(snd.iss, 1);
    snd.sndNxt = snd.sndUna;
    snd.sndMax = snd.sndUna;
    // What the cookie SYN-ACK advertised (unscaled, RFC 7323 §2.2).
    conn.rcvWndAdvertised = Math.min(conn.receiveSpace(), MAX_UNSCALED_WINDOW);
    conn.rcvAdvRight = seqAdd(conn.rcvNxt, conn.rcvWndAdvertised);
    conn.lastAckSent = conn.rcvNxt;
    snd.sndWnd = ack.window * 2 ** snd.sndWindowScale;
    snd.maxSndWnd = snd.sndWnd;
    snd.sndWl1 = ack.seqNumber;
    snd.sndWl2 = ack.ackNumber;
    conn.establish(params.now);
    conn.cookieAck = true;
    conn.process(ack, payload, params.now);
    conn.cookieAck = false;
    return conn;
  }

  // ---------------------------------------------------------------------------------------
  // Public state.

  get state(): TcpState {
    return this._state;
  }

  /** Why the connection closed abnormally; undefined while open or after an orderly close. */
  get error(): TcpErrorCode | undefined {
    return this._error;
  }

  /** In-order bytes waiting for `read`. */
  get readableLength(): number {
    return this.recv.readable;
  }

  /** The peer's FIN was received (end of stream once `readableLength` is 0). */
  get peerFinished(): boolean {
    return this.finReceived;
  }

  /** Bytes `write` would take now. */
  get writableLength(): number {
    return this.canWrite() ? this.snd.queue.free : 0;
  }

  // What an MPTCP connection reads of its subflows (cheap: no TcpInfo object per call).

  /** Our initial sequence number, and the peer's (0 until known): DSS SSNs are relative to them. */
  get initialSendSeq(): number {
    return this.snd.iss;
  }

  get initialRecvSeq(): number {
    return this.irs;
  }

  /** Smoothed RTT (ms), undefined before the first sample. */
  get srtt(): number | undefined {
    return this.snd.rtt.srtt;
  }

  /** Payload bytes per packet now, and the most one (super-)segment carries: a multiple of it. */
  get mss(): number {
    return this.effectiveMss();
  }

  get maxSegmentPayload(): number {
    const mss = this.effectiveMss();
    const max = Math.max(this.config.maxPayload, mss);
    return max - (max % mss);
  }

  /**
   * Bytes the windows would let this connection send now beyond what it holds unsent: how much
   * a scheduler may give it (0 before ESTABLISHED and once closing).
   */
  get sendRoom(): number {
    if (this._state !== 'ESTABLISHED' && this._state !== 'CLOSE-WAIT') return 0;
    return this.snd.sendRoom();
  }

  /** Bytes sent and not yet acknowledged (in flight, by SND.NXT). */
  get inFlight(): number {
    return this.snd.flightSize();
  }

  /** The peer's window, bytes (scaled). */
  get peerWindow(): number {
    return this.snd.sndWnd;
  }

  /** The shift our window fields carry (RFC 7323 §2.3), 0 when window scaling is off. */
  get windowShift(): number {
    return this.rcvWindowScale;
  }

  /** The shift the peer's window fields carry (applies to every segment after the SYN). */
  get peerWindowShift(): number {
    return this.snd.sndWindowScale;
  }

  /** An ACK goes out on the next dispatch (to carry new options: DATA_ACK, ADD_ADDR, ...). */
  requestAck(): void {
    if (this.isSynchronized()) this.ackNow = true;
  }

  /**
   * The receive space (SubflowHooks.receiveSpace) grew: send a window update when it opened by
   * a useful amount (RFC 9293 §3.8.6.2.2), as `read` does for our own buffer.
   */
  receiveSpaceGrew(): void {
    if (!this.isSynchronized()) return;
    const gain = seqDiff(seqAdd(this.rcvNxt, this.receiveSpace()), this.rcvAdvRight);
    if (gain >= Math.min(2 * this.rcvMss(), this.recv.capacity / 2)) this.ackNow = true;
  }

  takeEvents(): number {
    const e = this.events;
    this.events = 0;
    return e;
  }

  info(): TcpInfo {
    const snd = this.snd;
    return {
      state: this._state,
      localMss: this.config.mss,
      peerMss: this.peerMss,
      sendMss: snd.sendMss,
      sndWindowScale: this.wsNegotiated ? snd.sndWindowScale : undefined,
      rcvWindowScale: this.wsNegotiated ? this.rcvWindowScale : undefined,
      sack: this.sackOk,
      timestamps: this.tsOk,
      congestion: snd.cc.name,
      cwnd: snd.cc.cwnd,
      ssthresh: snd.cc.ssthresh,
      srtt: snd.rtt.srtt,
      rttvar: snd.rtt.rttvar,
      rto: snd.rtt.rto,
      sndWnd: snd.sndWnd,
      rcvWnd: this.rcvWndAdvertised,
      bytesSent: snd.bytesSent,
      bytesRetransmitted: snd.bytesRetransmitted,
      bytesAcked: snd.bytesAcked,
      bytesReceived: this.bytesReceived,
      retransmitSegments: this.counters.retransmitSegments,
      unsentBytes: snd.unsentBytes(),
      unreadBytes: this.recv.readable,
      error: this._error,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Application side.

  /** Takes as much of `data` as the send buffer has room for; 0 when full or closing. */
  write(data: Uint8Array): number {
    if (!this.canWrite()) return 0;
    const n = this.snd.queue.write(data);
    if (n < data.length) this.writeBlocked = true;
    return n;
  }

  /**
   * Up to `max` bytes received in order (the caller owns them), or undefined when there are
   * none. `oneChunk`: only the next contiguous chunk, never copied (may be fewer bytes).
   */
  read(max = Number.MAX_SAFE_INTEGER, oneChunk = false): Uint8Array | undefined {
    if (this.recv.readable === 0 || max <= 0) return undefined;
    const out = this.recv.read(max, oneChunk);
    // RFC 9293 §3.8.6.2.2: tell the peer when the window opened by a useful amount.
    if (this.isSynchronized()) {
      const gain = seqDiff(seqAdd(this.rcvNxt, this.receiveSpace()), this.rcvAdvRight);
      if (gain >= Math.min(2 * this.rcvMss(), this.recv.capacity / 2)) this.ackNow = true;
    }
    return out;
  }

  /** Half-close: a FIN follows the data already written (RFC 9293 §3.10.4 CLOSE). */
  shutdown(): void {
    switch (this._state) {
      case 'SYN-SENT':
        this.closeWith(undefined, 0);
        return;
      case 'SYN-RECEIVED':
        // RFC 9293 §3.10.4: the FIN waits for ESTABLISHED, then FIN-WAIT-1.
        this.snd.finQueued = true;
        return;
      case 'ESTABLISHED':
        this.snd.finQueued = true;
        this._state = 'FIN-WAIT-1';
        return;
      case 'CLOSE-WAIT':
        this.snd.finQueued = true;
        this._state = 'LAST-ACK';
        return;
      default:
        return;
    }
  }

  /**
   * Full close (RFC 9293 §3.10.4 CLOSE, as close(2) on the last descriptor): a FIN follows the
   * queued data as with `shutdown()`, and the application will not read again, so the
   * connection is orphaned: should the peer never send its FIN, FIN-WAIT-2 ends after
   * `finWait2TimeoutMs` with a RST (Linux's tcp_fin_timeout) instead of lasting forever.
   */
  close(): void {
    this.orphaned = true;
    this.shutdown();
  }

  /** Abort (RFC 9293 §3.10.5): RST on the next dispatch when synchronized, then CLOSED. */
  abort(): void {
    switch (this._state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
        this.rstQueue.push({ seq: this.snd.sndNxt, ack: this.rcvNxt });
        break;
      default:
        break;
    }
    this.closeWith(undefined, 0);
  }

  /**
   * TIME-WAIT only: may a new SYN take over this four-tuple (RFC 6191 with timestamps, RFC 1122
   * §4.2.2.13 without)? When true the iface closes this connection and hands the SYN to its
   * listener.
   */
  canReopen(syn: TcpHeader): boolean {
    if (this._state !== 'TIME-WAIT' || (syn.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) return false;
    const opts = emptySegmentOptions();
    if (!readSegmentOptions(syn.options, opts)) return false;
    if (this.tsOk && opts.tsVal !== undefined) return seqGt(opts.tsVal, this.tsRecent);
    return seqGt(syn.seqNumber, this.rcvNxt);
  }

  // ---------------------------------------------------------------------------------------
  // Timers.

  pollAt(): number {
    if (this._state === 'CLOSED') return this.rstQueue.length > 0 ? 0 : NEVER;
    if (
      this.synPending ||
      this.ackNow ||
      this.rstQueue.length > 0 ||
      this.rec.retransmitHead ||
      this.rec.firstRetransmitPending ||
      (this.orphaned && this._state === 'FIN-WAIT-2' && this.finWait2At === NEVER)
    ) {
      return 0;
    }
    let at = Math.min(
      this.snd.rtoAt,
      this.delAckAt,
      this.snd.persistAt,
      this.keepaliveAt,
      this.timeWaitAt,
      this.finWait2At,
    );
    if (this.canSendNow()) at = 0;
    return at;
  }

  private runTimers(now: number): void {
    if (now >= this.timeWaitAt) {
      this.timeWaitAt = NEVER;
      this.counters.timeWaitExpired++;
      this.closeWith(undefined, 0);
      return;
    }
    if (now >= this.finWait2At) {
      // The peer never finished: tell it we are gone (as Linux does when its FIN timeout ends).
      this.finWait2At = NEVER;
      this.counters.finWait2Timeouts++;
      this.rstQueue.push({ seq: this.snd.sndNxt, ack: this.rcvNxt });
      this.closeWith(undefined, 0);
      return;
    }
    if (now >= this.snd.rtoAt) this.onRtoExpired(now);
    if (this._state === 'CLOSED') return;
    if (now >= this.delAckAt) {
      this.delAckAt = NEVER;
      this.ackNow = true;
      this.counters.delayedAcks++;
    }
    if (now >= this.snd.persistAt) this.snd.onPersistExpired(SYNCHRONIZED_SEND_STATES.has(this._state));
    if (now >= this.keepaliveAt) this.onKeepaliveExpired(now);
  }

  private onRtoExpired(now: number): void {
    const snd = this.snd;
    snd.rtoAt = NEVER;
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') {
      if (this.synRetransmits >= this.config.synRetries) {
        this.counters.connectionTimeouts++;
        this.closeWith('ETIMEDOUT', TcpEvent.TIMEOUT);
        return;
      }
      this.synRetransmits++;
      this.counters.synRetransmits++;
      snd.rtt.backoff();
      this.synPending = true;
      return;
    }
    if (snd.sndUna === snd.sndMax) return; // nothing outstanding
    if (snd.rtoRetries >= this.config.maxRetransmits) {
      this.counters.connectionTimeouts++;
      this.closeWith('ETIMEDOUT', TcpEvent.TIMEOUT);
      return;
    }
    snd.onRto(now);
    if (this.hooks !== undefined) this.events |= TcpEvent.RTO;
  }

  private onKeepaliveExpired(now: number): void {
    const ka = this.config.keepalive;
    this.keepaliveAt = NEVER;
    if (ka === undefined || !this.isSynchronized()) return;
    if (this.keepaliveProbes >= ka.count) {
      this.counters.keepaliveTimeouts++;
      this.closeWith('ETIMEDOUT', TcpEvent.TIMEOUT);
      return;
    }
    this.keepaliveProbes++;
    this.keepalivePending = true;
    this.counters.keepalivesSent++;
    this.keepaliveAt = now + ka.intervalMs;
  }

  private armKeepalive(now: number): void {
    const ka = this.config.keepalive;
    this.keepaliveProbes = 0;
    this.keepaliveAt = ka !== undefined && this.isSynchronized() ? now + ka.idleMs : NEVER;
  }

  // ---------------------------------------------------------------------------------------
  // Input.

  /** One received segment (already checksummed and demultiplexed by the iface). Never throws. */
  process(h: TcpHeader, payload: Uint8Array, now: number): void {
    this.counters.segmentsIn++;
    const opts = this.segOpts;
    if (!readSegmentOptions(h.options, opts)) {
      this.counters.dropBadOptions++;
      return;
    }
    const flags = h.flags;
    // SYN with RST or FIN: no RFC gives such a segment a meaning; scanners send them.
    if ((flags & TCP_SYN) !== 0 && (flags & (TCP_RST | TCP_FIN)) !== 0) {
      this.counters.dropBadFlags++;
      return;
    }
    switch (this._state) {
      case 'CLOSED':
        this.counters.dropAfterClose++;
        return;
      case 'SYN-SENT':
        this.processSynSent(h, payload, opts, now);
        return;
      default:
        this.processSynchronized(h, payload, opts, now);
    }
  }

  /** RFC 9293 §3.10.7.3. */
  private processSynSent(h: TcpHeader, payload: Uint8Array, opts: SegmentOptions, now: number): void {
    const flags = h.flags;
    const hasAck = (flags & TCP_ACK) !== 0;
    const snd = this.snd;
    if (hasAck && (seqLe(h.ackNumber, snd.iss) || seqGt(h.ackNumber, snd.sndMax))) {
      // An ACK for something we never sent: reset it (unless it is a reset itself).
      this.counters.dropBadAck++;
      if ((flags & TCP_RST) === 0) this.rstQueue.push({ seq: h.ackNumber, ack: undefined });
      return;
    }
    if ((flags & TCP_RST) !== 0) {
      if (hasAck) {
        this.counters.rstAccepted++;
        this.hooks?.onReceive(h, payload.length, 'rst');
        this.closeWith('ECONNREFUSED', TcpEvent.RESET);
      } else {
        this.counters.rstOutOfWindow++;
      }
      return;
    }
    if ((flags & TCP_SYN) === 0) {
      this.counters.dropNoAckFlag++;
      return;
    }
    this.irs = h.seqNumber;
    this.rcvNxt = seqAdd(h.seqNumber, 1);
    if (this.hooks !== undefined && !this.hookAccepts(h, payload.length, hasAck ? 'syn-ack' : 'syn')) return;
    // Our SYN offered this much (unscaled, RFC 7323 §2.2).
    this.rcvAdvRight = seqAdd(this.rcvNxt, Math.min(this.receiveSpace(), MAX_UNSCALED_WINDOW));
    this.negotiate(opts);
    if (!hasAck) {
      // Simultaneous open (RFC 9293 §3.5 figure 7): answer with SYN-ACK.
      this._state = 'SYN-RECEIVED';
      snd.sndWnd = h.window;
      snd.maxSndWnd = h.window;
      snd.sndWl1 = h.seqNumber;
      this.synPending = true;
      snd.rtoAt = NEVER;
      snd.rtt.resetBackoff();
      return;
    }
    snd.sndUna = h.ackNumber;
    snd.sndWnd = h.window; // unscaled in a SYN (RFC 7323 §2.2)
    snd.maxSndWnd = h.window;
    snd.sndWl1 = h.seqNumber;
    snd.sndWl2 = h.ackNumber;
    snd.synRttSample(opts, now, this.synRetransmits === 0);
    this.establish(now);
    this.ackNow = true;
    if (payload.length > 0 || (flags & TCP_FIN) !== 0) {
      this.processText(h, payload, seqAdd(h.seqNumber, 1), now);
    }
  }

  /** RFC 9293 §3.10.7.4 with RFC 5961 and RFC 7323 checks. */
  private processSynchronized(h: TcpHeader, payload: Uint8Array, opts: SegmentOptions, now: number): void {
    const flags = h.flags;
    const seq = h.seqNumber;
    const isSyn = (flags & TCP_SYN) !== 0;
    const isRst = (flags & TCP_RST) !== 0;
    const hasAck = (flags & TCP_ACK) !== 0;
    const snd = this.snd;

    if (this._state === 'SYN-RECEIVED' && isSyn && !isRst) {
      // Simultaneous open: the peer's SYN-ACK acknowledges our SYN (Linux accepts it the same way).
      if (hasAck && seqAdd(seq, 1) === this.rcvNxt && h.ackNumber === snd.sndMax) {
        if (this.hooks !== undefined && !this.hookAccepts(h, payload.length, 'syn-ack')) return;
        snd.sndUna = h.ackNumber;
        snd.sndWnd = h.window;
        snd.maxSndWnd = Math.max(snd.maxSndWnd, h.window);
        snd.sndWl1 = seq;
        snd.sndWl2 = h.ackNumber;
        if (this.tsOk && opts.tsVal !== undefined) this.tsRecent = opts.tsVal;
        this.establish(now);
        this.ackNow = true;
        return;
      }
      // A retransmitted SYN: our SYN-ACK was lost; send it again.
      if (!hasAck && seq === this.irs) {
        this.counters.duplicateSegments++;
        this.synPending = true;
        return;
      }
    }

    // RFC 7323 §5.3 R1: PAWS.
    if (this.tsOk && opts.tsVal !== undefined && !isRst && seqLt(opts.tsVal, this.tsRecent)) {
      this.counters.dropPawsReject++;
      this.answerUnacceptable(payload.length, now);
      return;
    }

    // RFC 9293 §3.10.7.4 first: the sequence number acceptability test.
    if (!this.isAcceptable(seq, this.segmentLength(h, payload))) {
      if (isRst) {
        this.counters.rstOutOfWindow++;
        return;
      }
      if (isSyn) {
        // RFC 5961 §4.2: a SYN, whatever its sequence number, gets a challenge ACK.
        this.counters.dropSyn++;
        this.challengeAck(now);
        return;
      }
      this.counters.dropOutOfWindow++;
      if (this._state === 'TIME-WAIT' && (flags & TCP_FIN) !== 0) this.startTimeWait(now);
      this.answerUnacceptable(payload.length, now);
      return;
    }

    // Second: RST (RFC 5961 §3.2: only an exact match resets; in the window, challenge).
    if (isRst) {
      if (seq !== this.rcvNxt) {
        this.challengeAck(now);
        return;
      }
      this.counters.rstAccepted++;
      this.hooks?.onReceive(h, payload.length, 'rst');
      this.onResetAccepted();
      return;
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4.2).
    if (isSyn) {
      this.counters.dropSyn++;
      this.challengeAck(now);
      return;
    }

    // Fifth: the ACK field.
    if (!hasAck) {
      this.counters.dropNoAckFlag++;
      return;
    }

    const ack = h.ackNumber;
    const completing = this._state === 'SYN-RECEIVED';
    if (completing && !(seqLt(snd.sndUna, ack) && seqLe(ack, snd.sndMax))) {
      this.counters.dropBadAck++;
      this.rstQueue.push({ seq: ack, ack: undefined });
      return;
    }

    // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
    if (seqGt(ack, snd.sndMax)) {
      this.counters.dropAckUnsent++;
      this.answerUnacceptable(0, now);
      return;
    }
    if (seqLt(ack, seqAdd(snd.sndUna, -Math.max(snd.maxSndWnd, 1)))) {
      this.counters.dropOldAck++;
      this.answerUnacceptable(0, now);
      return;
    }

    // The segment passed every check: the subflow sees it before it changes anything.
    if (this.hooks !== undefined) {
      const kind = completing || this.cookieAck ? 'third-ack' : 'segment';
      if (!this.hookAccepts(h, payload.length, kind)) return;
    }

    // Anything acceptable shows the peer alive.
    this.armKeepalive(now);

    // RFC 7323 §4.3: remember the peer's TSval for echoing, only from a segment whose ACK was
    // acceptable too (as Linux's tcp_ack() does): one segment with a bad ACK must not be able to
    // set TS.Recent to a value that makes PAWS reject every legitimate segment after it.
    if (
      this.tsOk &&
      opts.tsVal !== undefined &&
      seqGe(opts.tsVal, this.tsRecent) &&
      seqLe(seq, this.lastAckSent)
    ) {
      this.tsRecent = opts.tsVal;
    }

    if (completing) {
      snd.sndWnd = h.window << snd.sndWindowScale;
      snd.sndWl1 = seq;
      snd.sndWl2 = ack;
      snd.maxSndWnd = Math.max(snd.maxSndWnd, snd.sndWnd);
      snd.synRttSample(opts, now, this.synRetransmits === 0);
      snd.sndUna = ack;
      this.establish(now);
      if (snd.finQueued) this._state = 'FIN-WAIT-1';
    }

    this.processAck(h, payload, opts, now);
    if (this._state === 'CLOSED') return;

    if (payload.length > 0 || (flags & TCP_FIN) !== 0) this.processText(h, payload, seq, now);
  }

  /** RFC 9293 §3.10.7.4: the four cases of the acceptability test. */
  private isAcceptable(seq: number, segLen: number): boolean {
    const rcvWnd = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    if (segLen === 0) {
      if (rcvWnd === 0) return seq === this.rcvNxt;
      return seqGe(seq, this.rcvNxt) && seqLt(seq, seqAdd(this.rcvNxt, rcvWnd));
    }
    if (rcvWnd === 0) return false;
    const end = seqAdd(seq, segLen - 1);
    const inWnd = (s: number) => seqGe(s, this.rcvNxt) && seqLt(s, seqAdd(this.rcvNxt, rcvWnd));
    return inWnd(seq) || inWnd(end);
  }

  private segmentLength(h: TcpHeader, payload: Uint8Array): number {
    return payload.length + ((h.flags & TCP_SYN) !== 0 ? 1 : 0) + ((h.flags & TCP_FIN) !== 0 ? 1 : 0);
  }

  private onResetAccepted(): void {
    switch (this._state) {
      case 'SYN-RECEIVED':
        // Passive: back to LISTEN, which for us means gone; active: refused.
        this.closeWith(this.active ? 'ECONNREFUSED' : undefined, this.active ? TcpEvent.RESET : 0);
        return;
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
        this.closeWith('ECONNRESET', TcpEvent.RESET);
        return;
      default:
        // CLOSING, LAST-ACK, TIME-WAIT: just close.
        this.closeWith(undefined, 0);
    }
  }

  /**
   * An unacceptable segment (out of window, PAWS-rejected, ACK of unsent data or too old) is
   * answered with an ACK. One without data is answered at most once per invalidAckIntervalMs
   * (Linux's tcp_invalid_ratelimit), so blind or looping peers cannot make us reflect every one;
   * one with data always is, as in Linux: a retransmitted duplicate needs its duplicate ACK.
   */
  private answerUnacceptable(payloadLength: number, now: number): void {
    if (payloadLength === 0) {
      if (now - this.lastInvalidAckAt < this.config.invalidAckIntervalMs) {
        this.counters.invalidAckRateLimited++;
        return;
      }
      this.lastInvalidAckAt = now;
    }
    this.ackNow = true;
  }

  /** Asks the subflow hook about a segment that passed TCP's checks; false: do not use it. */
  private hookAccepts(h: TcpHeader, payloadLength: number, kind: ReceivedKind): boolean {
    const verdict = this.hooks!.onReceive(h, payloadLength, kind);
    if (verdict === 'accept') return true;
    if (verdict === 'drop') {
      this.counters.dropVetoed++;
      return false;
    }
    this.counters.resetByHook++;
    // In SYN-SENT nothing is synchronized yet: answer the SYN-ACK's ACK (RFC 9293 §3.10.7.3).
    if (this._state === 'SYN-SENT') this.rstQueue.push({ seq: h.ackNumber, ack: undefined });
    else if (kind === 'syn') this.rstQueue.push({ seq: 0, ack: seqAdd(h.seqNumber, 1) });
    else this.rstQueue.push({ seq: this.snd.sndNxt, ack: this.rcvNxt });
    this.closeWith('ECONNRESET', TcpEvent.RESET);
    return false;
  }

  /**
   * The receive space the window advertises: our buffer's room, or less when the subflow hook
   * says the connection has less (RFC 8684 §3.3.4). The one place the advertised window comes from.
   */
  private receiveSpace(): number {
    const own = this.recv.window;
    const shared = this.hooks?.receiveSpace?.();
    const space = shared === undefined ? own : Math.min(own, shared);
    // No more than the window field can carry (RFC 7323 §2.3), or a window update would be due
    // for room the peer can never be told of.
    return Math.min(space, MAX_UNSCALED_WINDOW * 2 ** this.rcvWindowScale);
  }

  /** RFC 5961 §7: challenge ACKs, rate-limited per connection. */
  private challengeAck(now: number): void {
    if (now - this.challengeWindowStart >= CHALLENGE_ACK_INTERVAL_MS) {
      this.challengeWindowStart = now;
      this.challengeCount = 0;
    }
    if (this.challengeCount >= this.config.challengeAckLimit) {
      this.counters.challengeAckRateLimited++;
      return;
    }
    this.challengeCount++;
    this.counters.challengeAckSent++;
    this.ackNow = true;
  }

  /**
   * RFC 9293 §3.10.7.4 fifth, for an acceptable ACK: loss detection sees the SACK blocks, the
   * sender takes a new cumulative ACK (or recovery a duplicate one), then our FIN's fate, loss
   * recovery's per-ACK bookkeeping, and last the send window.
   */
  private processAck(h: TcpHeader, payload: Uint8Array, opts: SegmentOptions, now: number): void {
    const snd = this.snd;
    const rec = this.rec;
    const ack = h.ackNumber;
    const wnd = h.window * 2 ** snd.sndWindowScale;
    rec.onAckStart(ack, opts);
    if (seqGt(ack, snd.sndUna)) {
      this.onNewAck(ack, opts, now);
    } else if (ack === snd.sndUna && payload.length === 0 && (h.flags & (TCP_SYN | TCP_FIN)) === 0) {
      rec.onAckAtUna(wnd, now);
    }
    rec.onAckEnd(now, this.isSynchronized());
    snd.updateWindow(h.seqNumber, ack, wnd);
  }

  private onNewAck(ack: number, opts: SegmentOptions, now: number): void {
    const snd = this.snd;
    const dataAcked = snd.onNewAck(ack, opts, now);
    if (dataAcked > 0) {
      if (this.hooks !== undefined) this.events |= TcpEvent.ACKED;
      if (this.writeBlocked && this.canWrite()) {
        this.writeBlocked = false;
        this.events |= TcpEvent.WRITABLE;
      }
    }

    // Our FIN acknowledged?
    if (snd.finQueued && seqGt(ack, snd.finSeq())) {
      switch (this._state) {
        case 'FIN-WAIT-1':
          this._state = 'FIN-WAIT-2';
          this.armFinWait2(now);
          break;
        case 'CLOSING':
          this.startTimeWait(now);
          break;
        case 'LAST-ACK':
          this.closeWith(undefined, 0);
          break;
        default:
          break;
      }
    }
  }

  /** Segment text and FIN (RFC 9293 §3.10.7.4 seventh and eighth). */
  private processText(h: TcpHeader, payload: Uint8Array, seq: number, now: number): void {
    const hasFin = (h.flags & TCP_FIN) !== 0;
    if (payload.length > 0) {
      if (RECEIVE_DATA_STATES.has(this._state)) this.receiveData(payload, seq, now);
      else {
        // After the peer's FIN, text is ignored (RFC 9293 §3.10.7.4); re-ACK, as Linux does,
        // in case our ACK of its FIN was lost.
        this.counters.dropAfterClose++;
        this.ackNow = true;
      }
    }
    if (hasFin && this.peerFinSeq === undefined) {
      const finSeq = seqAdd(seq, payload.length);
      // Only a FIN we could place: all its data fits the window.
      if (seqLe(finSeq, seqAdd(this.rcvNxt, this.recv.window))) this.peerFinSeq = finSeq;
    }
    if (this.peerFinSeq !== undefined && !this.finReceived && this.rcvNxt === this.peerFinSeq) {
      this.finReceived = true;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.events |= TcpEvent.PEER_FIN | TcpEvent.READABLE;
      this.ackNow = true;
      switch (this._state) {
        case 'SYN-RECEIVED':
        case 'ESTABLISHED':
          this._state = 'CLOSE-WAIT';
          break;
        case 'FIN-WAIT-1':
          this._state = 'CLOSING';
          break;
        case 'FIN-WAIT-2':
          this.startTimeWait(now);
          break;
        default:
          break;
      }
    } else if (hasFin && this._state === 'TIME-WAIT') {
      this.ackNow = true;
      this.startTimeWait(now);
    }
  }

  private receiveData(payload: Uint8Array, seq: number, now: number): void {
    let data = payload;
    let at = seq;
    const skip = seqDiff(this.rcvNxt, seq);
    if (skip > 0) {
      if (skip >= data.length) {
        this.counters.duplicateSegments++;
        this.ackNow = true;
        return;
      }
      data = data.subarray(skip);
      at = this.rcvNxt;
    }
    const offset = seqDiff(at, this.rcvNxt);
    const room = this.recv.window - offset;
    if (room <= 0) {
      this.counters.dropRecvBufferFull++;
      this.ackNow = true;
      return;
    }
    if (data.length > room) data = data.subarray(0, room);
    const hadGap = this.recv.hasOutOfOrder;
    const r = this.recv.insert(this.rcvNxt, at, data);
    if (r.advance === 0) {
      // Out of order: ACK at once so the sender sees the hole (RFC 5681 §4.2).
      if (r.duplicate) this.counters.duplicateSegments++;
      else {
        this.counters.outOfOrderSegments++;
        this.counters.outOfOrderBytes += data.length;
      }
      this.ackNow = true;
      return;
    }
    this.rcvNxt = seqAdd(this.rcvNxt, r.advance);
    this.bytesReceived += r.advance;
    this.events |= TcpEvent.READABLE;
    this.autotune(r.advance, now);
    if (hadGap || this.config.delayedAckMs === 0) {
      this.ackNow = true; // filling a gap: ACK at once (RFC 5681 §4.2)
      // ... and the next segments too, as Linux's quick-ACK mode: the sender is rebuilding
      // its ACK clock after recovery.
      if (hadGap && !this.recv.hasOutOfOrder) this.quickAcks = QUICK_ACKS_AFTER_GAP;
      return;
    }
    if (this.quickAcks > 0) {
      this.quickAcks--;
      this.ackNow = true;
      return;
    }
    if (this.smallWindowFlow() && r.advance >= this.rcvMss()) {
      this.ackNow = true;
      return;
    }
    this.unackedSegments += Math.max(1, Math.floor(r.advance / this.rcvMss()));
    if (this.unackedSegments >= ACK_EVERY_SEGMENTS) this.ackNow = true;
    else if (this.delAckAt === NEVER) this.delAckAt = now + this.config.delayedAckMs;
  }

  /**
   * The peer sends a steady flow with a small window: the last RTT epoch delivered at least
   * SMALL_WINDOW_MIN_SEGMENTS and fewer than SMALL_WINDOW_SEGMENTS full segments. Such a flow
   * gets an ACK for every full segment (RFC 5681 §4.2 and RFC 9293 §3.8.6.3 only bound how
   * rarely a receiver ACKs): with a window of a dozen segments each delayed ACK holds one of them
   * back, and with a window far below the path's bandwidth-delay product a window's segments
   * arrive in one bunch, so the last of an odd bunch waits the whole delayed-ACK timer (40 ms,
   * most of an RTT on a 50 ms path) every round trip. Measured on the simulator (1% loss, 50 ms,
   * 20 Mbit/s, windows of 10-20 segments): +1.5-2% goodput, and the sender's ACK clock then
   * matches what the Mathis model assumes. The extra ACKs are at most SMALL_WINDOW_SEGMENTS per
   * RTT. Linux similarly ACKs every segment in its quick-ACK mode at the start of a connection.
   */
  private smallWindowFlow(): boolean {
    const bytes = this.lastEpochBytes;
    if (bytes === undefined) return false;
    const mss = this.rcvMss();
    return bytes >= SMALL_WINDOW_MIN_SEGMENTS * mss && bytes < SMALL_WINDOW_SEGMENTS * mss;
  }

  /**
   * Receive buffer autotuning: when a whole epoch (about one RTT) delivered more than half
   * the buffer and the application keeps up (less than half of it unread), double it.
   * "Unread" is what was waiting before the `advance` bytes that just arrived: the application
   * cannot have read those yet, and a peer that sends the whole window in one (GSO) segment,
   * as the kernel does over a TUN, would otherwise always look like an application behind.
   */
  private autotune(advance: number, now: number): void {
    this.tuneBytes += advance;
    const epoch = Math.max(this.snd.rtt.srtt ?? DEFAULT_TUNING_EPOCH_MS, 1);
    if (now - this.tuneEpochStart < epoch) return;
    const cap = this.recv.capacity;
    const windowLimit = MAX_UNSCALED_WINDOW * 2 ** this.rcvWindowScale;
    if (
      this.tuneBytes * 2 > cap &&
      (this.recv.readable - advance) * 2 < cap &&
      cap < this.config.maxRecvBufferSize &&
      cap < windowLimit
    ) {
      this.recv.grow(Math.min(cap * 2, this.config.maxRecvBufferSize, windowLimit));
      this.counters.windowGrowths++;
    }
    this.lastEpochBytes = now - this.tuneEpochStart < 2 * epoch ? this.tuneBytes : undefined;
    this.tuneEpochStart = now;
    this.tuneBytes = 0;
  }

  // ---------------------------------------------------------------------------------------
  // Output.

  dispatch(now: number, emit: (seg: OutgoingSegment) => void): void {
    this.flushRsts(emit);
    if (this._state === 'CLOSED') return;
    this.runTimers(now);
    if (this.isClosed()) {
      this.flushRsts(emit);
      return;
    }
    if (this._state === 'FIN-WAIT-2') this.armFinWait2(now);

    if (this.synPending) {
      this.synPending = false;
      this.sendSyn(now, emit);
    }
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') {
      if (this.ackNow && this._state === 'SYN-RECEIVED') this.sendSyn(now, emit);
      this.ackNow = false;
      return;
    }
    if (SYNCHRONIZED_SEND_STATES.has(this._state)) this.snd.sendData(now, emit, this.effectiveMss());
    if (this.keepalivePending) {
      this.keepalivePending = false;
      // RFC 9293 §3.8.4: a probe is an ACK with SEG.SEQ = SND.NXT - 1 and no data.
      this.emitSegment(now, emit, seqAdd(this.snd.sndUna, -1), TCP_ACK, undefined, false);
    }
    if (this.ackNow) this.emitSegment(now, emit, this.snd.sndNxt, TCP_ACK, undefined, false);
  }

  private flushRsts(emit: Emit): void {
    while (this.rstQueue.length > 0) {
      const r = this.rstQueue.shift()!;
      const header: TcpFields = {
        srcPort: this.localPort,
        dstPort: this.remotePort,
        seqNumber: r.seq,
        ackNumber: r.ack ?? 0,
        flags: r.ack === undefined ? TCP_RST : TCP_RST | TCP_ACK,
        window: 0,
        options: [],
      };
      // MP_TCPRST and MP_FASTCLOSE ride on resets (RFC 8684 §3.5, §3.6).
      this.hooks?.onSend(header, 0, OPTION_SPACE);
      this.counters.rstSent++;
      this.counters.segmentsOut++;
      emit({ header, payload: EMPTY, gsoSize: 0 });
    }
  }

  private sendSyn(now: number, emit: Emit): void {
    const snd = this.snd;
    const synAck = this._state === 'SYN-RECEIVED';
    const peer = synAck
      ? { windowScale: this.wsNegotiated, sackPermitted: this.sackOk, timestamps: this.tsOk }
      : undefined;
    const options = synOptions(this.config, snd.tsNow(now), synAck && this.tsOk ? this.tsRecent : 0, peer);
    const window = Math.min(this.receiveSpace(), MAX_UNSCALED_WINDOW);
    const header: TcpFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seqNumber: snd.iss,
      ackNumber: synAck ? this.rcvNxt : 0,
      flags: synAck ? TCP_SYN | TCP_ACK : TCP_SYN,
      window,
      options,
    };
    this.hooks?.onSend(header, 0, OPTION_SPACE - tcpOptionsLength(options));
    this.rcvAdvRight = seqAdd(this.rcvNxt, window);
    this.rcvWndAdvertised = window;
    if (synAck) this.lastAckSent = this.rcvNxt;
    snd.onSynSent(now, this.synRetransmits === 0);
    this.ackNow = false;
    this.counters.segmentsOut++;
    emit({ header, payload: EMPTY, gsoSize: 0 });
  }

  /**
   * Builds and emits one segment carrying an ACK (every segment after the SYN does): the
   * sender's (`SegmentEmitter`, seq/flags/payload chosen there) and the connection's own ACKs.
   */
  private emitSegment(
    now: number,
    emit: Emit,
    seq: number,
    flags: number,
    payload: Uint8Array | undefined,
    gso: boolean,
  ): void {
    // Pieces of a super-segment are as long as its sizing said (before the hook saw it).
    const gsoSize = gso ? this.effectiveMss() : 0;
    // Options in priority order: timestamps, the subflow's (MPTCP), SACK blocks in what is left.
    const options: TcpOption[] = [];
    if (this.tsOk) {
      options.push(
        { type: 'nop' },
        { type: 'nop' },
        { type: 'timestamps', tsVal: this.snd.tsNow(now), tsEcr: this.tsRecent },
      );
    }
    const body = payload ?? EMPTY;
    const header: TcpFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seqNumber: seq,
      ackNumber: this.rcvNxt,
      flags,
      window: this.advertiseWindow(),
      options,
    };
    if (this.sackOk && this.recv.hasOutOfOrder) {
      let left = OPTION_SPACE - (this.tsOk ? TS_OPTION_SPACE : 0);
      if (this.hooks !== undefined) {
        // A data segment was sized (effectiveMss) for the hook's whole room: read it before onSend.
        const sizedFor = body.length > 0 ? this.hookDataSpace() : 0;
        this.hooks.onSend(header, body.length, left);
        const hookUsed = tcpOptionsLength(options) - (this.tsOk ? TS_OPTION_SPACE : 0);
        left -= Math.max(hookUsed, sizedFor);
      }
      const blocks = this.recv.sackBlocks(sackBlocksFitting(left));
      if (blocks.length > 0) {
        options.push({ type: 'nop' }, { type: 'nop' }, { type: 'sack', blocks });
        this.counters.sackBlocksSent += blocks.length;
      }
    } else if (this.hooks !== undefined) {
      this.hooks.onSend(header, body.length, OPTION_SPACE - (this.tsOk ? TS_OPTION_SPACE : 0));
    }
    this.lastAckSent = this.rcvNxt;
    this.ackNow = false;
    this.unackedSegments = 0;
    this.delAckAt = NEVER;
    this.counters.segmentsOut++;
    emit({ header, payload: body, gsoSize });
  }

  /**
   * The window field (RFC 7323 §2.3 scaled). Receiver SWS avoidance (RFC 9293 §3.8.6.2.2):
   * the right edge moves on only by at least min(buffer/2, MSS); it never moves left.
   */
  private advertiseWindow(): number {
    const avail = this.receiveSpace();
    const current = Math.max(0, seqDiff(this.rcvAdvRight, this.rcvNxt));
    let wnd = avail;
    if (avail > current && avail - current < Math.min(this.recv.capacity / 2, this.rcvMss())) wnd = current;
    if (wnd < current) wnd = current; // do not shrink (RFC 9293 §3.8.6.2.2)
    // Rounding down may pull the right edge back by less than one scale unit. Rounding up instead
    // would let the edge creep past the buffer on every ACK (RFC 7323 Appendix F; Linux allows
    // the same small shrink with tcp_shrink_window), and data there would only be trimmed.
    const field = Math.min(Math.floor(wnd / 2 ** this.rcvWindowScale), MAX_UNSCALED_WINDOW);
    this.rcvWndAdvertised = field * 2 ** this.rcvWindowScale;
    this.rcvAdvRight = seqAdd(this.rcvNxt, this.rcvWndAdvertised);
    return field;
  }

  // ---------------------------------------------------------------------------------------
  // Helpers.

  private negotiate(opts: SegmentOptions): void {
    const peerMss = opts.mss ?? DEFAULT_PEER_MSS;
    this.peerMss = Math.max(peerMss, MIN_PEER_MSS);
    this.wsNegotiated = this.config.windowScale && opts.windowScale !== undefined;
    const sndWindowScale = this.wsNegotiated ? (opts.windowScale ?? 0) : 0;
    this.rcvWindowScale = this.wsNegotiated ? rcvWindowScaleFor(this.config) : 0;
    this.sackOk = this.config.sack && opts.sackPermitted;
    this.tsOk = this.config.timestamps && opts.tsVal !== undefined;
    if (this.tsOk) this.tsRecent = opts.tsVal ?? 0;
    const reserved = this.hooks?.dataOptionSpace ?? 0;
    const sendMss = Math.max(
      1,
      Math.min(this.peerMss, this.config.mssClamp) - (this.tsOk ? TS_OPTION_SPACE : 0) - reserved,
    );
    this.snd.negotiated(sendMss, sndWindowScale, this.sackOk, this.tsOk);
  }

  private establish(now: number): void {
    this._state = 'ESTABLISHED';
    this.events |= TcpEvent.CONNECTED;
    this.synRetransmits = 0;
    this.snd.establish();
    this.armKeepalive(now);
  }

  private armFinWait2(now: number): void {
    if (this.orphaned && this.finWait2At === NEVER) this.finWait2At = now + this.config.finWait2TimeoutMs;
  }

  private startTimeWait(now: number): void {
    this._state = 'TIME-WAIT';
    this.finWait2At = NEVER;
    this.timeWaitAt = now + this.config.timeWaitMs;
    this.snd.stopTimers();
    this.keepaliveAt = NEVER;
    this.delAckAt = NEVER;
  }

  private closeWith(error: TcpErrorCode | undefined, extra: number): void {
    if (this._state === 'CLOSED') return;
    this._state = 'CLOSED';
    this._error = error;
    this.events |= TcpEvent.CLOSED | extra;
    this.snd.close();
    this.delAckAt = NEVER;
    this.keepaliveAt = NEVER;
    this.timeWaitAt = NEVER;
    this.finWait2At = NEVER;
    this.ackNow = false;
    this.synPending = false;
    this.keepalivePending = false;
  }

  /** A method, not a field read, so TypeScript does not narrow `_state` across calls. */
  private isClosed(): boolean {
    return this._state === 'CLOSED';
  }

  private isSynchronized(): boolean {
    return this._state !== 'CLOSED' && this._state !== 'SYN-SENT' && this._state !== 'SYN-RECEIVED';
  }

  private canWrite(): boolean {
    return (
      !this.snd.finQueued &&
      (this._state === 'SYN-SENT' ||
        this._state === 'SYN-RECEIVED' ||
        this._state === 'ESTABLISHED' ||
        this._state === 'CLOSE-WAIT')
    );
  }

  private rcvMss(): number {
    return this.config.mss - (this.tsOk ? TS_OPTION_SPACE : 0);
  }

  /** Option bytes a data segment sized now gives the hook: its fixed room and what it asks beyond. */
  private hookDataSpace(): number {
    const h = this.hooks;
    return h === undefined ? 0 : h.dataOptionSpace + (h.extraDataOptionSpace?.() ?? 0);
  }

  /**
   * Payload per packet: the send MSS less the option room the hook asks beyond its fixed share
   * and the SACK blocks this segment will carry.
   */
  private effectiveMss(): number {
    const extra = this.hooks?.extraDataOptionSpace?.() ?? 0;
    const mss = Math.max(1, this.snd.sendMss - extra);
    if (!(this.sackOk && this.recv.hasOutOfOrder)) return mss;
    const left = OPTION_SPACE - (this.tsOk ? TS_OPTION_SPACE : 0) - this.hookDataSpace();
    const blocks = Math.min(this.recv.sackBlocks(TCP_MAX_SACK_BLOCKS).length, sackBlocksFitting(left));
    return blocks === 0 ? mss : Math.max(1, mss - (SACK_BASE_SPACE + SACK_BLOCK_SPACE * blocks));
  }

  /** Whether dispatch would send data right now (for pollAt). */
  private canSendNow(): boolean {
    if (!SYNCHRONIZED_SEND_STATES.has(this._state)) return false;
    const snd = this.snd;
    if (snd.probePending || this.keepalivePending) return true;
    if (this.rec.sackRecovering() && this.rec.retransmissionDue(this.effectiveMss())) return true;
    const unsent = snd.unsentBytes();
    if (unsent === 0) return snd.finToSend();
    return snd.canSendNewData(unsent, this.effectiveMss());
  }
}

const EMPTY = new Uint8Array(0);

/** SACK blocks that fit in `space` option bytes (RFC 2018 §3: at most four). */
function sackBlocksFitting(space: number): number {
  return Math.max(0, Math.min(TCP_MAX_SACK_BLOCKS, Math.floor((space - SACK_BASE_SPACE) / SACK_BLOCK_SPACE)));
}
