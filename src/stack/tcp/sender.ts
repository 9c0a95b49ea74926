/**
 * The send side of one connection (in the manner of gVisor's tcp/snd.go): the send sequence
 * space (RFC 9293 §3.3.1: SND.UNA, SND.NXT, SND.MAX, the peer's window and WL1/WL2), the send
 * queue, what goes out and when (new data and FIN, SWS avoidance, Nagle, zero-window probes, the
 * persist timer, retransmission of a range), the RTO timer and the RTT samples that feed it, and
 * the congestion controller. Loss recovery (recovery.ts) owns the decisions of *what* to resend;
 * it sends through `retransmitRange` and reads the sequence space here.
 *
 * What stays with the connection (connection.ts), and why the line is drawn there:
 *  - Building a segment. Its ACK number, window, TS echo, SACK blocks and the delayed-ACK
 *    bookkeeping that sending it resets are all receive-side state, and every pure ACK (delayed,
 *    challenge, keepalive, window update) is the connection's own. So the sender decides seq,
 *    flags and payload and hands them to the connection's `SegmentEmitter` (one function given at
 *    construction), as gVisor's sender calls its endpoint's sendRaw. The option order
 *    (timestamps, the subflow hook's, SACK in what is left) is therefore in connection.ts.
 *  - The payload size per packet (`effectiveMss`: the send MSS less the SACK blocks the receive
 *    side will add): computed there and passed in as `mss`.
 *  - The state machine: which states may send, what an acknowledged FIN means, the events.
 *
 * Fields are public and plain (no getters) because the connection, recovery and the per-segment
 * paths read them directly. Outside this file they are written only while the connection opens
 * (the handshake sets SND.UNA and the first window) and by loss recovery (go-back-N after an
 * RTO rewinds SND.NXT).
 */
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from '../wire/seqnum.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../wire/tcp.js';
import type { CongestionControl } from './congestion.js';
import type { TcpCounters } from './counters.js';
import { DEFAULT_PEER_MSS, type SegmentOptions } from './options.js';
import { LossRecovery } from './recovery.js';
import { RttEstimator } from './rtt.js';
import type { OutgoingSegment, SendQueue, TcpConfig } from './types.js';

/** Other modules (src/stack/mptcp) import the send buffer from here too. */

/** A timer that is off. */
export const NEVER = Number.POSITIVE_INFINITY;

export type Emit = (seg: OutgoingSegment) => void;

/**
 * The connection's segment builder: one segment carrying an ACK with `seq`, `flags` and
 * `payload` (undefined: none); `gso` when the payload is longer than one MSS.
 */
export type SegmentEmitter = (
  now: number,
  emit: Emit,
  seq: number,
  flags: number,
  payload: Uint8Array | undefined,
  gso: boolean,
) => void;

const EMPTY = new Uint8Array(0);

export class TcpSender {
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  /** Highest sequence number sent (SND.NXT before a go-back-N rewind after an RTO). */
  sndMax: number;
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  maxSndWnd = 0;
  /** Shift applied to the peer's window fields (its window scale), 0 when not negotiated. */
  sndWindowScale = 0;
  sendMss = DEFAULT_PEER_MSS;
  /** Negotiated options (copies of the connection's, set once by `negotiated`). */
  sackOk = false;
  tsOk = false;
  readonly queue: SendQueue;
  /** Sequence number of the first byte held in `queue`. */
  bufSeq: number;
  /** shutdown() was called: a FIN follows the data. */
  finQueued = false;

  readonly rtt: RttEstimator;
  cc: CongestionControl;
  readonly rec: LossRecovery;

  // Timers (absolute ms, NEVER when off) and what they drive.
  rtoAt = NEVER;
  persistAt = NEVER;
  persistBackoff = 0;
  /** Data retransmission timeouts in a row (RFC 9293 §3.8.3 R2: the connection gives up). */
  rtoRetries = 0;
  /** A zero-window probe is due on the next dispatch. */
  probePending = false;
  /** The persist timer fired on a window too small to send into: send what it takes (SWS override). */
  private swsOverride = false;
  /** The last sendNewData stopped because the peer's window (SWS avoidance) held data back. */
  private windowBlocked = false;
  /** End of the last sub-MSS segment sent (Minshall's Nagle check). */
  private smallSentEnd: number;
  /** Karn timing without timestamps: the sequence number being timed and when it was sent. */
  rttSeq: number | undefined;
  private rttSentAt = 0;

  // Statistics.
  bytesSent = 0;
  bytesRetransmitted = 0;
  bytesAcked = 0;

  constructor(
    private readonly config: Readonly<TcpConfig>,
    isn: number,
    queue: SendQueue,
    private readonly counters: TcpCounters,
    private readonly tsOffset: number,
    private readonly newCongestionControl: (mss: number) => CongestionControl,
    private readonly emitSegment: SegmentEmitter,
  ) {
    this.iss = isn;
    this.sndUna = isn;
    this.sndNxt = isn;
    this.sndMax = isn;
    this.bufSeq = seqAdd(isn, 1);
    this.smallSentEnd = isn;
    this.queue = queue;
    this.rtt = new RttEstimator({
      initialRto: config.initialRto,
      minRto: config.minRto,
      maxRto: config.maxRto,
    });
    this.cc = newCongestionControl(this.sendMss);
    this.rec = new LossRecovery(this, counters);
  }

  /** The options the handshake settled on (once). */
  negotiated(sendMss: number, sndWindowScale: number, sackOk: boolean, tsOk: boolean): void {
    this.sendMss = sendMss;
    this.sndWindowScale = sndWindowScale;
    this.sackOk = sackOk;
    this.tsOk = tsOk;
  }

  /** ESTABLISHED: the handshake's timer and backoff end; a fresh controller and scoreboard. */
  establish(): void {
    this.rtoAt = NEVER;
    this.rtt.resetBackoff();
    this.cc = this.newCongestionControl(this.sendMss);
    this.rec.reset();
  }

  /** TIME-WAIT or CLOSED: nothing more is sent. */
  stopTimers(): void {
    this.rtoAt = NEVER;
    this.persistAt = NEVER;
  }

  /** CLOSED: timers off and nothing left pending. */
  close(): void {
    this.stopTimers();
    this.probePending = false;
    this.rec.retransmitHead = false;
    this.rec.firstRetransmitPending = false;
  }

  // ---------------------------------------------------------------------------------------
  // The sequence space.

  tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  /** Sequence number of our FIN (meaningful once shutdown() was called). */
  finSeq(): number {
    return seqAdd(this.bufSeq, this.queue.length);
  }

  unsentBytes(): number {
    return Math.max(0, seqDiff(seqAdd(this.bufSeq, this.queue.length), this.sndNxt));
  }

  flightSize(): number {
    return Math.max(0, seqDiff(this.sndNxt, this.sndUna));
  }

  /** Unsent bytes the peer's window would take now. */
  sendableNewData(): number {
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    return Math.max(0, Math.min(this.unsentBytes(), wndRoom));
  }

  /** Bytes the windows would let us send beyond what is queued unsent (TcpConnection.sendRoom). */
  sendRoom(): number {
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    return Math.max(0, Math.min(this.rec.cwndRoom(), wndRoom) - this.unsentBytes());
  }

  /** Most bytes one segment starting at send-queue `offset` may carry (a DSS mapping's end). */
  private segmentLimit(offset: number): number {
    const q = this.queue;
    return q.segmentLimit === undefined ? Number.POSITIVE_INFINITY : q.segmentLimit(offset);
  }

  // ---------------------------------------------------------------------------------------
  // The handshake.

  /** Our SYN (or SYN-ACK) went out; `firstTry` unless it is a retransmission. */
  onSynSent(now: number, firstTry: boolean): void {
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    if (firstTry && this.rttSeq === undefined) {
      this.rttSeq = this.sndNxt;
      this.rttSentAt = now;
    } else if (!firstTry) {
      this.rttSeq = undefined;
    }
    if (this.rtoAt === NEVER) this.rtoAt = now + this.rtt.rto;
  }

  /** The RTT sample of the handshake: echoed timestamp, else the timed SYN if never resent. */
  synRttSample(opts: SegmentOptions, now: number, firstTry: boolean): void {
    if (this.tsOk && opts.tsEcr !== 0) {
      const s = seqDiff(this.tsNow(now), opts.tsEcr);
      if (s >= 0) this.rtt.sample(s);
    } else if (this.rttSeq !== undefined && firstTry) {
      this.rtt.sample(now - this.rttSentAt);
    }
    this.rttSeq = undefined;
  }

  // ---------------------------------------------------------------------------------------
  // Input: the ACK field and the window.

  /**
   * SND.UNA < ack: frees the acknowledged bytes, takes the RTT sample, ends or continues
   * recovery, feeds the controller and restarts the RTO timer. Returns the data bytes acknowledged.
   */
  onNewAck(ack: number, opts: SegmentOptions, now: number): number {
    const acked = seqDiff(ack, this.sndUna);
    const dataAcked = Math.max(0, Math.min(this.queue.length, seqDiff(ack, this.bufSeq)));
    const flightBefore = this.flightSize();
    if (dataAcked > 0) {
      this.queue.ack(dataAcked);
      this.bufSeq = seqAdd(this.bufSeq, dataAcked);
      this.bytesAcked += dataAcked;
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

    if (!this.rec.onNewAck(ack, acked, opts, now)) this.cc.onAck(dataAcked, now, sample, flightBefore);

    // RFC 6298 §5.2/5.3: stop the timer when all is acknowledged, else restart it.
    this.rtoAt = this.sndUna === this.sndMax ? NEVER : now + this.rtt.rto;
    return dataAcked;
  }

  /** RFC 9293 §3.10.7.4: update the send window from the newest segment. */
  updateWindow(seq: number, ack: number, wnd: number): void {
    if (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = wnd;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (wnd > 0) {
        this.persistAt = NEVER;
        this.persistBackoff = 0;
        this.probePending = false;
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Timers.

  /**
   * The RTO fired with data outstanding and retries left (the connection checked both):
   * collapse the window, back off, and let recovery resend (RFC 6298 §5.4-5.6).
   */
  onRto(now: number): void {
    this.rtoRetries++;
    this.counters.rtoExpired++;
    this.cc.onRto(now, this.flightSize());
    this.rtt.backoff();
    this.rttSeq = undefined; // Karn: no sample from retransmitted data
    this.rec.onRto(now);
  }

  /** The persist timer fired; `mayProbe` when the state sends data at all. */
  onPersistExpired(mayProbe: boolean): void {
    this.persistAt = NEVER;
    if (!mayProbe || this.unsentBytes() === 0) {
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

  // ---------------------------------------------------------------------------------------
  // Output.

  /** Retransmissions first, then new data and FIN, as the windows allow; `mss` per packet. */
  sendData(now: number, emit: Emit, mss: number): void {
    this.rec.sendRetransmissions(now, emit, mss);
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
  retransmitRange(now: number, emit: Emit, seq: number, length: number): number | undefined {
    const dataEnd = seqAdd(this.bufSeq, this.queue.length);
    const upTo = seqMax(this.sndMax, this.sndNxt);
    let n = Math.min(length, Math.max(0, seqDiff(dataEnd, seq)), Math.max(0, seqDiff(upTo, seq)));
    if (n > 0) n = Math.min(n, this.segmentLimit(seqDiff(seq, this.bufSeq)));
    let flags = TCP_ACK;
    if (this.finQueued && seqAdd(seq, n) === this.finSeq() && seqGt(upTo, this.finSeq())) flags |= TCP_FIN;
    if (n <= 0 && (flags & TCP_FIN) === 0) return undefined;
    n = Math.max(0, n);
    const payload = n > 0 ? this.queue.view(seqDiff(seq, this.bufSeq), n) : EMPTY;
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
    const rec = this.rec;
    rec.prrOut += n;
    this.counters.retransmitSegments++;
    this.counters.retransmitBytes += n;
    this.bytesRetransmitted += n;
    if (rec.retransTsVal === undefined) rec.retransTsVal = this.tsNow(now);
  }

  private sendNewData(now: number, emit: Emit, mss: number): void {
    const maxPayload = Math.max(mss, this.config.maxPayload > 0 ? this.config.maxPayload : mss);
    const rec = this.rec;
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
      const cwndRoom = rec.cwndRoom();
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
      const payload = n > 0 ? this.queue.view(offset, n) : EMPTY;
      if (n > 0 && n === unsent) flags |= TCP_PSH;
      if (n > 0) this.swsOverride = false;
      const retransmit = seqLt(this.sndNxt, this.sndMax);
      if (retransmit) this.countRetransmit(now, n);
      else {
        this.bytesSent += n;
        rec.prrOut += n;
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
      if (this.sackOk) rec.sb.onSend(this.sndMax);
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
  private sendProbe(now: number, emit: Emit): void {
    const base = Math.max(this.rtt.rto, this.config.persistMinMs);
    this.persistAt = now + Math.min(base * 2 ** this.persistBackoff, this.config.persistMaxMs);
    if (this.queue.length === 0) return;
    const seq = seqLt(this.sndUna, this.sndNxt) ? this.sndUna : this.sndNxt;
    const payload = this.queue.view(seqDiff(seq, this.bufSeq), 1);
    this.emitSegment(now, emit, seq, TCP_ACK, payload, false);
    if (seq === this.sndNxt) {
      this.sndNxt = seqAdd(seq, 1);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (this.sackOk) this.rec.sb.onSend(this.sndMax);
      this.bytesSent++;
    }
  }

  /**
   * Whether `sendNewData` would send now (for pollAt), given `unsent` > 0 queued bytes and the
   * connection's payload size per packet.
   */
  canSendNewData(unsent: number, mss: number): boolean {
    const wndRoom = Math.max(0, seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt));
    if (!this.swsAllows(unsent, wndRoom, mss)) return false;
    const usable = Math.min(unsent, wndRoom);
    const n = Math.min(usable, this.rec.cwndRoom());
    if (n <= 0) return false;
    if (n >= mss || n >= this.segmentLimit(seqDiff(this.sndNxt, this.bufSeq))) return true;
    if (n < unsent) return n === usable;
    return !this.config.nagle || !this.smallUnacked() || this.finQueued;
  }

  /** The FIN is queued and not yet sent (or to be sent again after a go-back-N rewind). */
  finToSend(): boolean {
    return this.finQueued && seqLe(this.sndNxt, this.finSeq());
  }

  /** A sub-MSS segment is in flight (Nagle/Minshall). */
  private smallUnacked(): boolean {
    // Resending after an RTO (go-back-N) is never held back.
    return seqGt(this.smallSentEnd, this.sndUna) && !seqLt(this.sndNxt, this.sndMax);
  }
}
