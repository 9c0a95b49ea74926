/**
 * One TCP connection as a pure state machine (RFC 9293), in the manner of smoltcp's
 * socket/tcp.rs: `process` takes a received segment, `dispatch` emits every segment now due,
 * `pollAt` says when `dispatch` must run next. No I/O and no clock: time is passed in (ms).
 *
 * Input never throws: a segment that cannot be used is counted (counters.ts) and dropped.
 * Sender and receiver buffers live in sender.ts / receiver.ts, option negotiation in
 * options.ts; loss recovery drives the RFC 6675 scoreboard (sack-scoreboard.ts) and the
 * lost-retransmission detector (lost-retransmits.ts); congestion control (congestion.ts) and
 * the RTO estimator (rtt.ts) sit behind their narrow interfaces.
 */
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from '../wire/seqnum.js';
import {
  type SackBlock,
  TCP_ACK,
  TCP_FIN,
  TCP_MAX_SACK_BLOCKS,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpFields,
  type TcpHeader,
  type TcpOption,
  tcpOptionsLength,
} from '../wire/tcp.js';
import { type CongestionControl, createCongestionControl } from './congestion.js';
import { createTcpCounters, type TcpCounters } from './counters.js';
import { LostRetransmits } from './lost-retransmits.js';
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
import { RttEstimator } from './rtt.js';
import { SackScoreboard } from './sack-scoreboard.js';
import { SendBuffer } from './send-buffer.js';
import {
  DEFAULT_TCP_CONFIG,
  type OutgoingSegment,
  type ReceivedKind,
  type SendQueue,
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

/** RFC 5681 §3.2 / RFC 6675 §5: DupThresh. */
const DUP_THRESH = 3;
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

const NEVER = Number.POSITIVE_INFINITY;

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
  private readonly ccFactory: ((mss: number) => CongestionControl) | undefined;

  private _state: TcpState = 'CLOSED';
  private _error: TcpErrorCode | undefined;
  private events = 0;
  /** Opened by connect() (SYN-SENT): a reset in SYN-RECEIVED then means "refused". */
  private readonly active: boolean;
  readonly localPort: number;
  readonly remotePort: number;
  private readonly tsOffset: number;

  // Send sequence space (RFC 9293 §3.3.1).
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence number sent (SND.NXT before a go-back-N rewind after an RTO). */
  private sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  /** Shift applied to the peer's window fields (its window scale), 0 when not negotiated. */
  private sndWindowScale = 0;
  private peerMss: number | undefined;
  private sendMss = DEFAULT_PEER_MSS;
  private readonly sendBuf: SendQueue;
  /** Sequence number of the first byte held in sendBuf. */
  private bufSeq: number;
  /** shutdown() was called: a FIN follows the data. */
  private finQueued = false;

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
  /** The last sendNewData stopped because the peer's window (SWS avoidance) held data back. */
  private windowBlocked = false;
  /** The persist timer fired on a window too small to send into: send what it takes (SWS override). */
  private swsOverride = false;
  /** A zero-window probe / keepalive probe is due on the next dispatch. */
  private probePending = false;
  private keepalivePending = false;
  private challengeWindowStart = Number.NEGATIVE_INFINITY;
  private challengeCount = 0;
  /** When an unacceptable segment was last answered (the invalid-ACK rate limit). */
  private lastInvalidAckAt = Number.NEGATIVE_INFINITY;
  /** Built from a SYN cookie: the segment being processed is the handshake's third ACK. */
  private cookieAck = false;

  // Timers (absolute ms, NEVER when off).
  private rtoAt = NEVER;
  private delAckAt = NEVER;
  private persistAt = NEVER;
  private keepaliveAt = NEVER;
  private timeWaitAt = NEVER;
  /** An orphaned connection's FIN-WAIT-2 deadline (config.finWait2TimeoutMs). */
  private finWait2At = NEVER;
  /** close() was called: the application will never read again. */
  private orphaned = false;
  private persistBackoff = 0;
  private keepaliveProbes = 0;
  private rtoRetries = 0;
  private synRetransmits = 0;

  // Loss recovery.
  private readonly rtt: RttEstimator;
  private cc: CongestionControl;
  private sb: SackScoreboard;
  /** After an RTO, until SND.UNA passes what was outstanding (RFC 6582 "recover", RFC 6675 §5.1). */
  private rtoRecovery = false;
  private readonly lostRtx = new LostRetransmits();
  /** RFC 6675 §5 (4.3): the first retransmission goes out whatever pipe says. */
  private firstRetransmitPending = false;
  private dupAcks = 0;
  private inRecovery = false;
  private recoveryPoint = 0;
  /**
   * Proportional Rate Reduction (RFC 9937) during SACK fast recovery: the bytes delivered to the
   * peer and sent by us since recovery began, the flight it started from, and the window the
   * last ACK allows (pipe + sndcnt). See `prrOnAck`.
   */
  private prrDelivered = 0;
  private prrOut = 0;
  private recoverFs = 1;
  private prrCwnd = 0;
  /** NewReno (RFC 6582) window inflation during fast recovery, bytes. */
  private inflation = 0;
  /** NewReno: retransmit the segment at SND.UNA on the next dispatch. */
  private retransmitHead = false;
  /** Karn timing without timestamps: the sequence number being timed and when it was sent. */
  private rttSeq: number | undefined;
  private rttSentAt = 0;
  /** Eifel (RFC 3522): TSval of the first retransmission of the current loss episode. */
  private retransTsVal: number | undefined;

  // Autotuning (receive side).
  private tuneEpochStart = 0;
  private tuneBytes = 0;
  /** Bytes that arrived in order during the last complete autotuning epoch (about one RTT). */
  private lastEpochBytes: number | undefined;

  // Statistics.
  private bytesSent = 0;
  private bytesRetransmitted = 0;
  private bytesAcked = 0;
  private bytesReceived = 0;
  private writeBlocked = false;
  /** End of the last sub-MSS segment sent (Minshall's Nagle check). */
  private smallSentEnd = 0;

  private readonly segOpts: SegmentOptions = emptySegmentOptions();

  private constructor(params: TcpOpenParams, active: boolean) {
    this.config = { ...DEFAULT_TCP_CONFIG, ...params.config };
    this.hooks = params.hooks;
    this.ccFactory = params.congestion;
    this.active = active;
    this.localPort = params.localPort ?? 0;
    this.remotePort = params.remotePort ?? 0;
    this.tsOffset = params.tsOffset ?? 0;
    this.iss = params.isn >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.bufSeq = seqAdd(this.iss, 1);
    this.smallSentEnd = this.iss;
    this.sendBuf = params.sendQueue ?? new SendBuffer(this.config.sendBufferSize);
    this.recv = new ReceiveBuffer(this.config.recvBufferSize);
    this.rtt = new RttEstimator({
      initialRto: this.config.initialRto,
      minRto: this.config.minRto,
      maxRto: this.config.maxRto,
    });
    this.cc = this.newCongestionControl();
    this.sb = new SackScoreboard(this.iss, this.sendMss);
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
    conn.sndWnd = syn.window; // RFC 7323 §2.2: never scaled in a SYN
    conn.maxSndWnd = conn.sndWnd;
    conn.sndWl1 = syn.seqNumber;
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
    conn.sndUna = seqAdd(conn.iss, 1);
    conn.sndNxt = conn.sndUna;
    conn.sndMax = conn.sndUna;
    // What the cookie SYN-ACK advertised (unscaled, RFC 7323 §2.2).
    conn.rcvWndAdvertised = Math.min(conn.receiveSpace(), MAX_UNSCALED_WINDOW);
    conn.rcvAdvRight = seqAdd(conn.rcvNxt, conn.rcvWndAdvertised);
    conn.lastAckSent = conn.rcvNxt;
    conn.sndWnd = ack.window * 2 ** conn.sndWindowScale;
    conn.maxSndWnd = conn.sndWnd;
    conn.sndWl1 = ack.seqNumber;
    conn.sndWl2 = ack.ackNumber;
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
    return this.canWrite() ? this.sendBuf.free : 0;
  }

  // What an MPTCP connection reads of its subflows (cheap: no TcpInfo object per call).

  /** Our initial sequence number, and the peer's (0 until known): DSS SSNs are relative to them. */
  get initialSendSeq(): number {
    return this.iss;
  }

  get initialRecvSeq(): number {
    return this.irs;
  }

  /** Smoothed RTT (ms), undefined before the first sample. */
  get srtt(): number | undefined {
    return this.rtt.srtt;
  }

  /** Payload bytes per packet now, and the most one (super-)segment carries: a multiple of it. */
  get mss(): number {
    return this.effectiveMss();
  }

  get maxSegmentPayload(): number {
    const mss = this.sendMss;
    const max = Math.max(this.config.maxPayload, mss);
    return max - (max % mss);
  }

  /**
   * Bytes the windows would let this connection send now beyond what it holds unsent: how much
   * a scheduler may give it (0 before ESTABLISHED and once closing).
   */
  get sendRoom(): number {
    if (this._state !== 'ESTABLISHED' && this._state !== 'CLOSE-WAIT') return 0;
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    return Math.max(0, Math.min(this.cwndRoom(), wndRoom) - this.unsentBytes());
  }

  /** Bytes sent and not yet acknowledged (in flight, by SND.NXT). */
  get inFlight(): number {
    return this.flightSize();
  }

  /** The peer's window, bytes (scaled). */
  get peerWindow(): number {
    return this.sndWnd;
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
    return {
      state: this._state,
      localMss: this.config.mss,
      peerMss: this.peerMss,
      sendMss: this.sendMss,
      sndWindowScale: this.wsNegotiated ? this.sndWindowScale : undefined,
      rcvWindowScale: this.wsNegotiated ? this.rcvWindowScale : undefined,
      sack: this.sackOk,
      timestamps: this.tsOk,
      congestion: this.cc.name,
      cwnd: this.cc.cwnd,
      ssthresh: this.cc.ssthresh,
      srtt: this.rtt.srtt,
      rttvar: this.rtt.rttvar,
      rto: this.rtt.rto,
      sndWnd: this.sndWnd,
      rcvWnd: this.rcvWndAdvertised,
      bytesSent: this.bytesSent,
      bytesRetransmitted: this.bytesRetransmitted,
      bytesAcked: this.bytesAcked,
      bytesReceived: this.bytesReceived,
      retransmitSegments: this.counters.retransmitSegments,
      unsentBytes: this.unsentBytes(),
      unreadBytes: this.recv.readable,
      error: this._error,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Application side.

  /** Takes as much of `data` as the send buffer has room for; 0 when full or closing. */
  write(data: Uint8Array): number {
    if (!this.canWrite()) return 0;
    const n = this.sendBuf.write(data);
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
        this.finQueued = true;
        return;
      case 'ESTABLISHED':
        this.finQueued = true;
        this._state = 'FIN-WAIT-1';
        return;
      case 'CLOSE-WAIT':
        this.finQueued = true;
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
        this.rstQueue.push({ seq: this.sndNxt, ack: this.rcvNxt });
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
      this.retransmitHead ||
      this.firstRetransmitPending ||
      (this.orphaned && this._state === 'FIN-WAIT-2' && this.finWait2At === NEVER)
    ) {
      return 0;
    }
    let at = Math.min(
      this.rtoAt,
      this.delAckAt,
      this.persistAt,
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
      this.rstQueue.push({ seq: this.sndNxt, ack: this.rcvNxt });
      this.closeWith(undefined, 0);
      return;
    }
    if (now >= this.rtoAt) this.onRtoExpired(now);
    if (this._state === 'CLOSED') return;
    if (now >= this.delAckAt) {
      this.delAckAt = NEVER;
      this.ackNow = true;
      this.counters.delayedAcks++;
    }
    if (now >= this.persistAt) this.onPersistExpired();
    if (now >= this.keepaliveAt) this.onKeepaliveExpired(now);
  }

  private onRtoExpired(now: number): void {
    this.rtoAt = NEVER;
    if (this._state === 'SYN-SENT' || this._state === 'SYN-RECEIVED') {
      if (this.synRetransmits >= this.config.synRetries) {
        this.counters.connectionTimeouts++;
        this.closeWith('ETIMEDOUT', TcpEvent.TIMEOUT);
        return;
      }
      this.synRetransmits++;
      this.counters.synRetransmits++;
      this.rtt.backoff();
      this.synPending = true;
      return;
    }
    if (this.sndUna === this.sndMax) return; // nothing outstanding
    if (this.rtoRetries >= this.config.maxRetransmits) {
      this.counters.connectionTimeouts++;
      this.closeWith('ETIMEDOUT', TcpEvent.TIMEOUT);
      return;
    }
    this.rtoRetries++;
    this.counters.rtoExpired++;
    this.cc.onRto(now, this.flightSize());
    this.rtt.backoff();
    this.inRecovery = false;
    this.inflation = 0;
    this.dupAcks = 0;
    this.retransmitHead = false;
    this.firstRetransmitPending = false;
    this.rttSeq = undefined; // Karn: no sample from retransmitted data
    if (this.retransTsVal === undefined) this.retransTsVal = this.tsNow(now);
    this.rtoRecovery = true;
    this.recoveryPoint = this.sndMax;
    this.lostRtx.clear();
    if (this.sackOk) {
      // RFC 6675 §5.1: keep the scoreboard; NextSeg resends what is not SACKed, in order.
      this.sb.onRto();
    } else {
      // Go back N: resend from SND.UNA as the (collapsed) window allows.
      this.sndNxt = this.sndUna;
    }
  }

  private onPersistExpired(): void {
    this.persistAt = NEVER;
    if (!SYNCHRONIZED_SEND_STATES.has(this._state) || this.unsentBytes() === 0) {
      this.persistBackoff = 0;
      return;
    }
    this.persistBackoff++;
    if (this.sndWnd === 0) {
      // RFC 9293 §3.8.6.1: probe a zero window with one byte (sent from dispatch).
      this.probePending = true;
      this.counters.zeroWindowProbes++;
    } else {
      // RFC 9293 §3.8.6.2.1 (4): the override timeout: send what the small window takes.
      this.swsOverride = true;
      this.counters.swsOverrides++;
    }
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
    if (hasAck && (seqLe(h.ackNumber, this.iss) || seqGt(h.ackNumber, this.sndMax))) {
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
      this.sndWnd = h.window;
      this.maxSndWnd = h.window;
      this.sndWl1 = h.seqNumber;
      this.synPending = true;
      this.rtoAt = NEVER;
      this.rtt.resetBackoff();
      return;
    }
    this.sndUna = h.ackNumber;
    this.sndWnd = h.window; // unscaled in a SYN (RFC 7323 §2.2)
    this.maxSndWnd = h.window;
    this.sndWl1 = h.seqNumber;
    this.sndWl2 = h.ackNumber;
    this.synRttSample(opts, now);
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

    if (this._state === 'SYN-RECEIVED' && isSyn && !isRst) {
      // Simultaneous open: the peer's SYN-ACK acknowledges our SYN (Linux accepts it the same way).
      if (hasAck && seqAdd(seq, 1) === this.rcvNxt && h.ackNumber === this.sndMax) {
        if (this.hooks !== undefined && !this.hookAccepts(h, payload.length, 'syn-ack')) return;
        this.sndUna = h.ackNumber;
        this.sndWnd = h.window;
        this.maxSndWnd = Math.max(this.maxSndWnd, h.window);
        this.sndWl1 = seq;
        this.sndWl2 = h.ackNumber;
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
    if (completing && !(seqLt(this.sndUna, ack) && seqLe(ack, this.sndMax))) {
      this.counters.dropBadAck++;
      this.rstQueue.push({ seq: ack, ack: undefined });
      return;
    }

    // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
    if (seqGt(ack, this.sndMax)) {
      this.counters.dropAckUnsent++;
      this.answerUnacceptable(0, now);
      return;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
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
      this.sndWnd = h.window << this.sndWindowScale;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.synRttSample(opts, now);
      this.sndUna = ack;
      this.establish(now);
      if (this.finQueued) this._state = 'FIN-WAIT-1';
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
    else this.rstQueue.push({ seq: this.sndNxt, ack: this.rcvNxt });
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
    return shared === undefined ? own : Math.min(own, shared);
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

  private processAck(h: TcpHeader, payload: Uint8Array, opts: SegmentOptions, now: number): void {
    const ack = h.ackNumber;
    const wnd = h.window * 2 ** this.sndWindowScale;
    let newlySacked = 0;
    // RFC 9937 DeliveredData: the change in SND.UNA plus the change in SACKed bytes.
    const unaBefore = this.sndUna;
    const sackedBefore = this.sb.sackedBytes;
    const wasRecovering = this.inRecovery;
    if (this.sackOk) {
      const r = this.sb.update(ack, opts.sackBlocks ?? NO_BLOCKS);
      newlySacked = r.newlySacked;
      if (opts.sackBlocks !== undefined) this.counters.sackBlocksIn += opts.sackBlocks.length;
      if (r.dsack !== undefined) this.counters.dsackIn++;
      this.counters.sackBlocksInvalid += r.ignored;
    }

    if (seqGt(ack, this.sndUna)) {
      this.onNewAck(ack, opts, now);
    } else if (
      ack === this.sndUna &&
      this.sndUna !== this.sndMax &&
      payload.length === 0 &&
      (h.flags & (TCP_SYN | TCP_FIN)) === 0 &&
      wnd !== 0 && // a zero-window probe's answer is not a loss signal
      (wnd === this.sndWnd || newlySacked > 0)
    ) {
      // RFC 5681 §2 duplicate ACK (RFC 6675 §2: or one carrying new SACK information).
      this.dupAcks++;
      this.counters.dupAcksIn++;
      if (this.inRecovery) {
        if (!this.sackOk) this.inflation += this.sendMss; // RFC 6582 §3.2 step 4
      } else if (
        !this.rtoRecovery &&
        (this.dupAcks >= DUP_THRESH || (this.sackOk && this.sb.isLost(this.sndUna)))
      ) {
        this.enterRecovery(now);
      }
    }

    if (this.sackOk) this.afterSackAck(now);
    if (this.sackOk && this.inRecovery) {
      const delivered = seqDiff(this.sndUna, unaBefore) + this.sb.sackedBytes - sackedBefore;
      this.prrOnAck(delivered, !wasRecovering, newlySacked, seqGt(this.sndUna, unaBefore));
    }

    // RFC 9293 §3.10.7.4: update the send window from the newest segment.
    if (seqLt(this.sndWl1, h.seqNumber) || (this.sndWl1 === h.seqNumber && seqLe(this.sndWl2, ack))) {
      this.sndWnd = wnd;
      this.sndWl1 = h.seqNumber;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (wnd > 0) {
        this.persistAt = NEVER;
        this.persistBackoff = 0;
        this.probePending = false;
      }
    }
  }

  /** SACK bookkeeping once an ACK is in: lost retransmissions, and loss found by SACK alone. */
  private afterSackAck(now: number): void {
    if (this.sackRecovering()) {
      this.counters.lostRetransmits += this.lostRtx.onAck(this.sndUna, this.sb);
    } else {
      this.lostRtx.clear();
      // RFC 6675 §5 (4) checks IsLost on duplicate ACKs; as Linux, check it on any ACK, so a
      // hole left behind a recovery that just ended is repaired without three more of them.
      if (this.sndUna !== this.sndMax && this.isSynchronized() && this.sb.isLost(this.sndUna)) {
        this.enterRecovery(now);
      }
    }
  }

  private onNewAck(ack: number, opts: SegmentOptions, now: number): void {
    const acked = seqDiff(ack, this.sndUna);
    const dataAcked = Math.max(0, Math.min(this.sendBuf.length, seqDiff(ack, this.bufSeq)));
    const flightBefore = this.flightSize();
    if (dataAcked > 0) {
      this.sendBuf.ack(dataAcked);
      this.bufSeq = seqAdd(this.bufSeq, dataAcked);
      this.bytesAcked += dataAcked;
      if (this.hooks !== undefined) this.events |= TcpEvent.ACKED;
      if (this.writeBlocked && this.canWrite()) {
        this.writeBlocked = false;
        this.events |= TcpEvent.WRITABLE;
      }
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;

    // RTT: from the echoed timestamp (RFC 7323 §4), else Karn's single timed segment.
    let sample: number | undefined;
    if (this.tsOk && opts.tsVal !== undefined && opts.tsEcr !== 0) {
      sample = seqDiff(this.tsNow(now), opts.tsEcr);
      if (sample < 0) sample = undefined;
    } else if (this.rttSeq !== undefined && seqGe(ack, this.rttSeq)) {
      sample = now - this.rttSentAt;
      this.rttSeq = undefined;
    }
    if (sample !== undefined) this.rtt.sample(sample);
    else this.rtt.resetBackoff();
    this.rtoRetries = 0;

    // Eifel detection (RFC 3522): the ACK echoes a TSval older than our first retransmission,
    // so it acknowledges the original transmission: the retransmission was spurious.
    if (this.retransTsVal !== undefined) {
      if (this.tsOk && opts.tsVal !== undefined && opts.tsEcr !== 0 && seqLt(opts.tsEcr, this.retransTsVal)) {
        this.counters.spuriousRetransmits++;
      }
      this.retransTsVal = undefined;
    }

    if (this.rtoRecovery && seqGe(ack, this.recoveryPoint)) this.rtoRecovery = false;
    if (this.inRecovery) {
      if (seqGe(ack, this.recoveryPoint)) {
        this.inRecovery = false;
        this.inflation = 0;
        this.dupAcks = 0;
        this.cc.onRecoveryEnd(now);
      } else if (!this.sackOk) {
        // RFC 6582 §3.2 step 5: partial ACK: retransmit the next hole, deflate the window.
        this.counters.newRenoPartialAcks++;
        this.retransmitHead = true;
        this.inflation = Math.max(0, this.inflation - acked) + this.sendMss;
      }
    } else {
      this.dupAcks = 0;
      this.cc.onAck(dataAcked, now, sample, flightBefore);
    }

    // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, else restart it.
    this.rtoAt = this.sndUna === this.sndMax ? NEVER : now + this.rtt.rto;

    // Our FIN acknowledged?
    if (this.finQueued && seqGt(ack, this.finSeq())) {
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

  private enterRecovery(now: number): void {
    this.inRecovery = true;
    this.recoveryPoint = this.sndMax;
    this.cc.onCongestionEvent(now, this.flightSize());
    this.counters.fastRetransmits++;
    if (this.retransTsVal === undefined) this.retransTsVal = this.tsNow(now);
    if (this.sackOk) {
      this.counters.sackRecoveries++;
      this.sb.enterRecovery();
      this.firstRetransmitPending = true;
      this.prrDelivered = 0;
      this.prrOut = 0;
      this.prrCwnd = this.cc.cwnd;
      // RFC 9937: RecoverFS = snd.nxt - snd.una, less what was SACKed before recovery (it
      // will never be counted as delivered during it); prrOnAck then counts this ACK's part.
      this.recoverFs = this.flightSize();
    } else {
      // RFC 6582 §3.2 step 3: retransmit, inflate by the three segments that left the network.
      this.counters.newRenoRecoveries++;
      this.retransmitHead = true;
      this.inflation = DUP_THRESH * this.sendMss;
    }
  }

  /**
   * Proportional Rate Reduction (RFC 9937), on each ACK that starts or continues a SACK fast
   * recovery: how much the sender may now send (`prrCwnd` = pipe + sndcnt). While pipe exceeds
   * ssthresh, sending follows delivery in the proportion ssthresh / RecoverFS, so the reduction
   * is spread over the recovery round instead of RFC 6675's pause (no sending until pipe falls
   * below the reduced cwnd) followed by one new segment per ACK; once pipe is at or below
   * ssthresh, slow start (PRR-SSRB on ACKs that advance SND.UNA without showing a new loss,
   * PRR-CRB otherwise) brings the flight back up to ssthresh. Either way the recovery ends with
   * about ssthresh in flight. `delivered` is this ACK's DeliveredData.
   */
  private prrOnAck(delivered: number, entering: boolean, newlySacked: number, unaAdvanced: boolean): void {
    const ssthresh = this.cc.ssthresh;
    const mss = this.sendMss;
    if (entering) {
      // RFC 9937: bytes SACKed before this ACK are never delivered during the recovery.
      const advance = Math.max(0, delivered - newlySacked);
      this.recoverFs = Math.max(1, this.flightSize() + advance - (this.sb.sackedBytes - newlySacked));
    }
    if (delivered <= 0) return;
    this.prrDelivered += delivered;
    const pipe = this.pipe();
    let sndcnt: number;
    if (pipe > ssthresh) {
      sndcnt = Math.ceil((this.prrDelivered * ssthresh) / this.recoverFs) - this.prrOut;
    } else {
      sndcnt = Math.max(this.prrDelivered - this.prrOut, delivered);
      // A "safe" ACK advances SND.UNA and reports no further loss: slow-start reduction bound.
      if (unaAdvanced && !this.sb.isLost(this.sndUna)) sndcnt += mss;
      sndcnt = Math.min(ssthresh - pipe, sndcnt);
    }
    this.prrCwnd = pipe + Math.max(0, sndcnt);
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
   */
  private autotune(advance: number, now: number): void {
    this.tuneBytes += advance;
    const epoch = Math.max(this.rtt.srtt ?? DEFAULT_TUNING_EPOCH_MS, 1);
    if (now - this.tuneEpochStart < epoch) return;
    const cap = this.recv.capacity;
    const windowLimit = MAX_UNSCALED_WINDOW * 2 ** this.rcvWindowScale;
    if (
      this.tuneBytes * 2 > cap &&
      this.recv.readable * 2 < cap &&
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
    if (SYNCHRONIZED_SEND_STATES.has(this._state)) this.sendData(now, emit);
    if (this.keepalivePending) {
      this.keepalivePending = false;
      // RFC 9293 §3.8.4: a probe is an ACK with SEG.SEQ = SND.NXT - 1 and no data.
      this.emitSegment(now, emit, seqAdd(this.sndUna, -1), TCP_ACK, undefined, false);
    }
    if (this.ackNow) this.emitSegment(now, emit, this.sndNxt, TCP_ACK, undefined, false);
  }

  private flushRsts(emit: (seg: OutgoingSegment) => void): void {
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

  private sendSyn(now: number, emit: (seg: OutgoingSegment) => void): void {
    const synAck = this._state === 'SYN-RECEIVED';
    const peer = synAck
      ? { windowScale: this.wsNegotiated, sackPermitted: this.sackOk, timestamps: this.tsOk }
      : undefined;
    const options = synOptions(this.config, this.tsNow(now), synAck && this.tsOk ? this.tsRecent : 0, peer);
    const window = Math.min(this.receiveSpace(), MAX_UNSCALED_WINDOW);
    const header: TcpFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seqNumber: this.iss,
      ackNumber: synAck ? this.rcvNxt : 0,
      flags: synAck ? TCP_SYN | TCP_ACK : TCP_SYN,
      window,
      options,
    };
    this.hooks?.onSend(header, 0, OPTION_SPACE - tcpOptionsLength(options));
    this.rcvAdvRight = seqAdd(this.rcvNxt, window);
    this.rcvWndAdvertised = window;
    if (synAck) this.lastAckSent = this.rcvNxt;
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    if (this.synRetransmits === 0 && this.rttSeq === undefined) {
      this.rttSeq = this.sndNxt;
      this.rttSentAt = now;
    } else if (this.synRetransmits > 0) {
      this.rttSeq = undefined;
    }
    if (this.rtoAt === NEVER) this.rtoAt = now + this.rtt.rto;
    this.ackNow = false;
    this.counters.segmentsOut++;
    emit({ header, payload: EMPTY, gsoSize: 0 });
  }

  /** Retransmissions first, then new data and FIN, as the windows allow. */
  private sendData(now: number, emit: (seg: OutgoingSegment) => void): void {
    const mss = this.effectiveMss();
    if (this.retransmitHead) {
      this.retransmitHead = false;
      this.retransmitRange(now, emit, this.sndUna, mss);
    }
    if (this.firstRetransmitPending) {
      this.firstRetransmitPending = false;
      const first = this.inRecovery ? this.sb.nextSeg(0, mss) : undefined;
      if (first !== undefined && first.kind === 'lost') {
        const right = this.retransmitRange(now, emit, first.left, seqDiff(first.right, first.left));
        if (right !== undefined) {
          this.sb.commit(first, right);
          this.lostRtx.onRetransmit(first.left, right, this.sndMax);
        }
      } else if (this.inRecovery) {
        // Three duplicate ACKs without SACK blocks (a middlebox may strip them): the scoreboard
        // knows no loss, yet the segment at SND.UNA is the one to resend.
        const right = this.retransmitRange(now, emit, this.sndUna, mss);
        if (right !== undefined) {
          this.sb.onRetransmit(right);
          this.lostRtx.onRetransmit(this.sndUna, right, this.sndMax);
        }
      }
    }
    if (this.sackRecovering()) {
      // Retransmissions found lost go first (lost-retransmits.ts).
      for (let guard = 0; guard < 100_000 && this.lostRtx.pending; guard++) {
        if (this.sendCwnd() - this.pipe() < mss) break;
        const piece = this.lostRtx.next(this.sndUna, this.sb, mss);
        if (piece === undefined) break;
        const right = this.retransmitRange(now, emit, piece.left, seqDiff(piece.right, piece.left));
        if (right === undefined) break;
        this.lostRtx.commit(piece.left, right, this.sndMax);
      }
      // RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send what NextSeg() picks; new data
      // (rule 2) is left to sendNewData.
      for (let guard = 0; guard < 100_000; guard++) {
        if (this.sendCwnd() - this.pipe() < mss) break;
        const next = this.sb.nextSeg(this.sendableNewData(), mss);
        if (next === undefined || next.kind === 'new') break;
        const right = this.retransmitRange(now, emit, next.left, seqDiff(next.right, next.left));
        if (right === undefined) break;
        this.sb.commit(next, right);
        this.lostRtx.onRetransmit(next.left, right, this.sndMax);
      }
    }
    this.windowBlocked = false;
    this.sendNewData(now, emit, mss);
    if (this.probePending) {
      this.probePending = false;
      this.sendProbe(now, emit);
    }
    // Persist timer (RFC 9293 §3.8.6.1): the peer's window, closed or too small to send into
    // (SWS avoidance), holds data back and nothing is in flight to bring an ACK that could open
    // it. Without it a lost window update would stall the connection for good.
    if (
      this.windowBlocked &&
      this.unsentBytes() > 0 &&
      this.sndUna === this.sndMax &&
      this.persistAt === NEVER &&
      this.rtoAt === NEVER
    ) {
      const base = Math.max(this.rtt.rto, this.config.persistMinMs);
      this.persistAt = now + Math.min(base * 2 ** this.persistBackoff, this.config.persistMaxMs);
    }
  }

  /**
   * Retransmits [seq, seq + length) (clipped to what was sent), one MSS-sized piece. Returns
   * the end of what was sent (FIN included), undefined when nothing was.
   */
  private retransmitRange(
    now: number,
    emit: (seg: OutgoingSegment) => void,
    seq: number,
    length: number,
  ): number | undefined {
    const dataEnd = seqAdd(this.bufSeq, this.sendBuf.length);
    const upTo = seqMax(this.sndMax, this.sndNxt);
    let n = Math.min(length, Math.max(0, seqDiff(dataEnd, seq)), Math.max(0, seqDiff(upTo, seq)));
    if (n > 0) n = Math.min(n, this.segmentLimit(seqDiff(seq, this.bufSeq)));
    let flags = TCP_ACK;
    if (this.finQueued && seqAdd(seq, n) === this.finSeq() && seqGt(upTo, this.finSeq())) flags |= TCP_FIN;
    if (n <= 0 && (flags & TCP_FIN) === 0) return undefined;
    n = Math.max(0, n);
    const payload = n > 0 ? this.sendBuf.view(seqDiff(seq, this.bufSeq), n) : EMPTY;
    if (n > 0 && seqAdd(seq, n) === dataEnd) flags |= TCP_PSH;
    this.countRetransmit(now, n);
    this.emitSegment(now, emit, seq, flags, payload, false);
    const end = seqAdd(seq, (flags & TCP_FIN) !== 0 ? n + 1 : n);
    // HighRxt is the caller's (SackScoreboard.commit): a rescue must not move it (RFC 6675 §4).
    // Resending the head restarts the timer (as Linux): its answer takes a full RTT from now.
    if (this.rtoAt === NEVER || seq === this.sndUna) this.rtoAt = now + this.rtt.rto;
    return end;
  }

  private countRetransmit(now: number, n: number): void {
    this.prrOut += n;
    this.counters.retransmitSegments++;
    this.counters.retransmitBytes += n;
    this.bytesRetransmitted += n;
    if (this.retransTsVal === undefined) this.retransTsVal = this.tsNow(now);
  }

  private sendNewData(now: number, emit: (seg: OutgoingSegment) => void, mss: number): void {
    const maxPayload = Math.max(mss, this.config.maxPayload > 0 ? this.config.maxPayload : mss);
    for (let guard = 0; guard < 100_000; guard++) {
      const unsent = this.unsentBytes();
      const finToSend = this.finQueued && seqLe(this.sndNxt, this.finSeq());
      if (unsent === 0 && !finToSend) return;
      const offset = seqDiff(this.sndNxt, this.bufSeq);
      const wndRoom = Math.max(0, seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt));
      if (unsent > 0 && !this.swsAllows(unsent, wndRoom, mss)) {
        this.windowBlocked = true;
        return;
      }
      const usable = Math.min(unsent, wndRoom);
      const cwndRoom = this.cwndRoom();
      let n = Math.max(0, Math.min(usable, cwndRoom, maxPayload));
      // A subflow's segment ends where its DSS mapping ends, whole segments or not.
      const atMappingEnd = n >= this.segmentLimit(offset);
      if (atMappingEnd) n = this.segmentLimit(offset);
      else if (n < unsent) {
        // Not the tail: whole segments only ...
        if (n >= mss) n -= n % mss;
        // ... unless the peer's window is what allows less than one (swsAllows said yes), not
        // the congestion window.
        else if (!(n > 0 && n === usable)) return;
      } else if (n > 0 && n % mss !== 0 && this.config.nagle) {
        // Nagle (RFC 9293 §3.7.4) in Minshall's form, as Linux: hold a sub-MSS tail only while
        // an earlier sub-MSS segment is unacknowledged, so a write's tail need not wait an RTT.
        const whole = n - (n % mss);
        if (whole > 0) n = whole;
        else if (this.smallUnacked() && !this.finQueued) return;
      }
      let flags = TCP_ACK;
      const end = seqAdd(this.sndNxt, n);
      if (finToSend && end === this.finSeq()) flags |= TCP_FIN;
      if (n === 0 && (flags & TCP_FIN) === 0) return;
      if (n === 0 && this.flightSize() > 0 && seqLt(this.sndNxt, this.sndMax)) {
        // Go-back-N after an RTO: the FIN is resent only once the window allows it.
        if (cwndRoom <= 0) return;
      }
      const payload = n > 0 ? this.sendBuf.view(offset, n) : EMPTY;
      if (n > 0 && n === unsent) flags |= TCP_PSH;
      if (n > 0) this.swsOverride = false;
      const retransmit = seqLt(this.sndNxt, this.sndMax);
      if (retransmit) this.countRetransmit(now, n);
      else {
        this.bytesSent += n;
        this.prrOut += n;
        if (!this.tsOk && this.rttSeq === undefined && n > 0) {
          this.rttSeq = end;
          this.rttSentAt = now;
        }
      }
      this.emitSegment(now, emit, this.sndNxt, flags, payload, n > mss);
      // A segment cut short by its mapping's end is not a small segment for Nagle's sake.
      if (n > 0 && n < mss && !atMappingEnd) this.smallSentEnd = end;
      this.sndNxt = (flags & TCP_FIN) !== 0 ? seqAdd(end, 1) : end;
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (this.sackOk) this.sb.onSend(this.sndMax);
      if (this.rtoAt === NEVER) this.rtoAt = now + this.rtt.rto;
      if ((flags & TCP_FIN) !== 0) return;
    }
  }

  /**
   * Sender SWS avoidance (RFC 9293 §3.8.6.2.1) for D = `unsent` queued bytes and a usable window
   * U = `wndRoom`: the peer's window allows a segment when min(D, U) is a full segment (1), when
   * all the queued data fits (2: every write counts as pushed), when min(D, U) is at least half
   * the largest window the peer ever offered (3: Fs = 1/2; with Nagle on, only with nothing in
   * flight), or when the override timer fired (4: the persist timer, see onPersistExpired).
   * Congestion control and Nagle may still hold back what this allows.
   */
  private swsAllows(unsent: number, wndRoom: number, mss: number): boolean {
    const m = Math.min(unsent, wndRoom);
    if (m <= 0) return false;
    if (m >= mss || unsent <= wndRoom) return true;
    if (m >= this.maxSndWnd / 2 && (!this.config.nagle || this.sndNxt === this.sndUna)) return true;
    return this.swsOverride;
  }

  /** One byte beyond a zero window (RFC 9293 §3.8.6.1), or the byte at SND.UNA again. */
  private sendProbe(now: number, emit: (seg: OutgoingSegment) => void): void {
    const base = Math.max(this.rtt.rto, this.config.persistMinMs);
    this.persistAt = now + Math.min(base * 2 ** this.persistBackoff, this.config.persistMaxMs);
    if (this.sendBuf.length === 0) return;
    const seq = seqLt(this.sndUna, this.sndNxt) ? this.sndUna : this.sndNxt;
    const payload = this.sendBuf.view(seqDiff(seq, this.bufSeq), 1);
    this.emitSegment(now, emit, seq, TCP_ACK, payload, false);
    if (seq === this.sndNxt) {
      this.sndNxt = seqAdd(seq, 1);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (this.sackOk) this.sb.onSend(this.sndMax);
      this.bytesSent++;
    }
  }

  /** Builds and emits one segment carrying an ACK (every segment after the SYN does). */
  private emitSegment(
    now: number,
    emit: (seg: OutgoingSegment) => void,
    seq: number,
    flags: number,
    payload: Uint8Array | undefined,
    gso: boolean,
  ): void {
    // Options in priority order: timestamps, the subflow's (MPTCP), SACK blocks in what is left.
    const options: TcpOption[] = [];
    if (this.tsOk) {
      options.push(
        { type: 'nop' },
        { type: 'nop' },
        { type: 'timestamps', tsVal: this.tsNow(now), tsEcr: this.tsRecent },
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
        this.hooks.onSend(header, body.length, left);
        // A data segment was sized (effectiveMss) for the hook's whole dataOptionSpace.
        const hookUsed = tcpOptionsLength(options) - (this.tsOk ? TS_OPTION_SPACE : 0);
        left -= body.length > 0 ? Math.max(hookUsed, this.hooks.dataOptionSpace) : hookUsed;
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
    emit({ header, payload: body, gsoSize: gso ? this.effectiveMss() : 0 });
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
    this.sndWindowScale = this.wsNegotiated ? (opts.windowScale ?? 0) : 0;
    this.rcvWindowScale = this.wsNegotiated ? rcvWindowScaleFor(this.config) : 0;
    this.sackOk = this.config.sack && opts.sackPermitted;
    this.tsOk = this.config.timestamps && opts.tsVal !== undefined;
    if (this.tsOk) this.tsRecent = opts.tsVal ?? 0;
    const reserved = this.hooks?.dataOptionSpace ?? 0;
    this.sendMss = Math.max(
      1,
      Math.min(this.peerMss, this.config.mssClamp) - (this.tsOk ? TS_OPTION_SPACE : 0) - reserved,
    );
  }

  private establish(now: number): void {
    this._state = 'ESTABLISHED';
    this.events |= TcpEvent.CONNECTED;
    this.rtoAt = NEVER;
    this.synRetransmits = 0;
    this.rtt.resetBackoff();
    this.cc = this.newCongestionControl();
    this.sb = new SackScoreboard(this.sndUna, this.sendMss);
    this.sb.onSend(this.sndMax);
    this.armKeepalive(now);
  }

  private synRttSample(opts: SegmentOptions, now: number): void {
    if (this.tsOk && opts.tsEcr !== 0) {
      const s = seqDiff(this.tsNow(now), opts.tsEcr);
      if (s >= 0) this.rtt.sample(s);
    } else if (this.rttSeq !== undefined && this.synRetransmits === 0) {
      this.rtt.sample(now - this.rttSentAt);
    }
    this.rttSeq = undefined;
  }

  private newCongestionControl(): CongestionControl {
    if (this.ccFactory !== undefined) return this.ccFactory(this.sendMss);
    return createCongestionControl(this.config.congestion, this.sendMss, {
      initialCwndSegments: this.config.initialCwndSegments,
    });
  }

  private armFinWait2(now: number): void {
    if (this.orphaned && this.finWait2At === NEVER) this.finWait2At = now + this.config.finWait2TimeoutMs;
  }

  private startTimeWait(now: number): void {
    this._state = 'TIME-WAIT';
    this.finWait2At = NEVER;
    this.timeWaitAt = now + this.config.timeWaitMs;
    this.rtoAt = NEVER;
    this.persistAt = NEVER;
    this.keepaliveAt = NEVER;
    this.delAckAt = NEVER;
  }

  private closeWith(error: TcpErrorCode | undefined, extra: number): void {
    if (this._state === 'CLOSED') return;
    this._state = 'CLOSED';
    this._error = error;
    this.events |= TcpEvent.CLOSED | extra;
    this.rtoAt = NEVER;
    this.delAckAt = NEVER;
    this.persistAt = NEVER;
    this.keepaliveAt = NEVER;
    this.timeWaitAt = NEVER;
    this.finWait2At = NEVER;
    this.ackNow = false;
    this.synPending = false;
    this.retransmitHead = false;
    this.firstRetransmitPending = false;
    this.probePending = false;
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
      !this.finQueued &&
      (this._state === 'SYN-SENT' ||
        this._state === 'SYN-RECEIVED' ||
        this._state === 'ESTABLISHED' ||
        this._state === 'CLOSE-WAIT')
    );
  }

  /** Most bytes one segment starting at send-queue `offset` may carry (a DSS mapping's end). */
  private segmentLimit(offset: number): number {
    const q = this.sendBuf;
    return q.segmentLimit === undefined ? Number.POSITIVE_INFINITY : q.segmentLimit(offset);
  }

  /** Sequence number of our FIN (meaningful once shutdown() was called). */
  private finSeq(): number {
    return seqAdd(this.bufSeq, this.sendBuf.length);
  }

  private unsentBytes(): number {
    return Math.max(0, seqDiff(seqAdd(this.bufSeq, this.sendBuf.length), this.sndNxt));
  }

  private flightSize(): number {
    return Math.max(0, seqDiff(this.sndNxt, this.sndUna));
  }

  private rcvMss(): number {
    return this.config.mss - (this.tsOk ? TS_OPTION_SPACE : 0);
  }

  /** Payload per packet: the send MSS less the SACK blocks this segment will carry. */
  private effectiveMss(): number {
    if (!(this.sackOk && this.recv.hasOutOfOrder)) return this.sendMss;
    const left = OPTION_SPACE - (this.tsOk ? TS_OPTION_SPACE : 0) - (this.hooks?.dataOptionSpace ?? 0);
    const blocks = Math.min(this.recv.sackBlocks(TCP_MAX_SACK_BLOCKS).length, sackBlocksFitting(left));
    return blocks === 0
      ? this.sendMss
      : Math.max(1, this.sendMss - (SACK_BASE_SPACE + SACK_BLOCK_SPACE * blocks));
  }

  /**
   * Room the congestion window leaves for new data. With SACK the bytes in flight are RFC
   * 6675's pipe at all times, as Linux counts them (SACKed and lost bytes have left the
   * network), which includes Limited Transmit (RFC 3042). Without SACK: FlightSize, plus
   * NewReno's inflation in recovery, or up to two segments for the first duplicate ACKs
   * (RFC 3042).
   */
  private cwndRoom(): number {
    if (this.sackOk) return this.sendCwnd() - this.pipe();
    const limitedTransmit = this.inRecovery ? 0 : Math.min(this.dupAcks, 2) * this.sendMss;
    return this.cc.cwnd + this.inflation + limitedTransmit - this.flightSize();
  }

  /** The window sending is held to: PRR's during SACK fast recovery, else the controller's. */
  private sendCwnd(): number {
    return this.sackOk && this.inRecovery ? this.prrCwnd : this.cc.cwnd;
  }

  /** RFC 6675 SetPipe, plus resent retransmissions the scoreboard cannot see. */
  private pipe(): number {
    return this.sb.pipe() + this.lostRtx.extraPipe(this.sndUna, this.sb);
  }

  private sackRecovering(): boolean {
    return this.sackOk && (this.inRecovery || this.rtoRecovery);
  }

  /** Unsent bytes the peer's window would take now. */
  private sendableNewData(): number {
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    return Math.max(0, Math.min(this.unsentBytes(), wndRoom));
  }

  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  /** Whether dispatch would send data right now (for pollAt). */
  private canSendNow(): boolean {
    if (!SYNCHRONIZED_SEND_STATES.has(this._state)) return false;
    if (this.probePending || this.keepalivePending) return true;
    if (this.sackRecovering()) {
      const mss = this.effectiveMss();
      const room = this.sendCwnd() - this.pipe() >= mss;
      if (room && this.lostRtx.pending) return true;
      const next = room ? this.sb.nextSeg(this.sendableNewData(), mss) : undefined;
      if (next !== undefined && next.kind !== 'new') return true;
    }
    const unsent = this.unsentBytes();
    const finToSend = this.finQueued && seqLe(this.sndNxt, this.finSeq());
    if (unsent === 0) return finToSend;
    const mss = this.effectiveMss();
    const wndRoom = Math.max(0, seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt));
    if (!this.swsAllows(unsent, wndRoom, mss)) return false;
    const usable = Math.min(unsent, wndRoom);
    const n = Math.min(usable, this.cwndRoom());
    if (n <= 0) return false;
    if (n >= mss || n >= this.segmentLimit(seqDiff(this.sndNxt, this.bufSeq))) return true;
    if (n < unsent) return n === usable;
    return !this.config.nagle || !this.smallUnacked() || this.finQueued;
  }

  /** A sub-MSS segment is in flight (Nagle/Minshall). */
  private smallUnacked(): boolean {
    // Resending after an RTO (go-back-N) is never held back.
    return seqGt(this.smallSentEnd, this.sndUna) && !seqLt(this.sndNxt, this.sndMax);
  }
}

const EMPTY = new Uint8Array(0);
const NO_BLOCKS: readonly SackBlock[] = [];

/** SACK blocks that fit in `space` option bytes (RFC 2018 §3: at most four). */
function sackBlocksFitting(space: number): number {
  return Math.max(0, Math.min(TCP_MAX_SACK_BLOCKS, Math.floor((space - SACK_BASE_SPACE) / SACK_BLOCK_SPACE)));
}
