/**
 * Loss recovery for one connection's sender (the part of gVisor's snd.go, sack_recovery.go and
 * reno_recovery.go that decides what to resend): duplicate-ACK and SACK loss detection, fast
 * recovery with SACK (RFC 6675 driven by the scoreboard, sending paced by Proportional Rate
 * Reduction, RFC 9937) or without it (NewReno, RFC 6582, with window inflation kept here, never
 * in the controller), the state after an RTO (RFC 6675 §5.1 / RFC 6582 "recover"), resending of
 * lost retransmissions (lost-retransmits.ts) and Eifel counting of spurious ones (RFC 3522).
 *
 * One class with both strategies, not gVisor's recoveryStrategy interface with a SACK and a Reno
 * implementation: what they share (duplicate-ACK counting, the recovery point, entering and
 * leaving recovery, the RTO state, Eifel) is most of the code and runs on every ACK, while each
 * strategy's own part is a few lines; and the calls stay monomorphic on the hot path.
 *
 * It reads and advances the sender's sequence space (sender.ts) and sends only through
 * `TcpSender.retransmitRange`. The sender reads `cwndRoom` (how much the window allows) and
 * adds what it sends to `prrOut`. The connection drives it per ACK in RFC 9293 order:
 * `onAckStart` (SACK blocks), then `onNewAck` (from the sender) or `onAckAtUna`, then `onAckEnd`.
 */
import { seqDiff, seqGe, seqGt, seqLt } from '../wire/seqnum.js';
import type { SackBlock } from '../wire/tcp.js';
import type { TcpCounters } from './counters.js';
import { LostRetransmits } from './lost-retransmits.js';
import type { SegmentOptions } from './options.js';
import { SackScoreboard } from './sack-scoreboard.js';
import type { Emit, TcpSender } from './sender.js';

/** RFC 5681 §3.2 / RFC 6675 §5: DupThresh. */
const DUP_THRESH = 3;

const NO_BLOCKS: readonly SackBlock[] = [];

export class LossRecovery {
  sb: SackScoreboard;
  private readonly lostRtx = new LostRetransmits();
  /** After an RTO, until SND.UNA passes what was outstanding (RFC 6582 "recover", RFC 6675 §5.1). */
  private rtoRecovery = false;
  /** RFC 6675 §5 (4.3): the first retransmission goes out whatever pipe says. */
  firstRetransmitPending = false;
  private dupAcks = 0;
  private inRecovery = false;
  private recoveryPoint = 0;
  /**
   * Proportional Rate Reduction (RFC 9937) during SACK fast recovery: the bytes delivered to the
   * peer and sent by us since recovery began, the flight it started from, and the window the
   * last ACK allows (pipe + sndcnt). See `prrOnAck`.
   */
  private prrDelivered = 0;
  prrOut = 0;
  private recoverFs = 1;
  private prrCwnd = 0;
  /** NewReno (RFC 6582) window inflation during fast recovery, bytes. */
  private inflation = 0;
  /** NewReno: retransmit the segment at SND.UNA on the next dispatch. */
  retransmitHead = false;
  /** Eifel (RFC 3522): TSval of the first retransmission of the current loss episode. */
  retransTsVal: number | undefined;

  // The ACK being processed (onAckStart .. onAckEnd): RFC 9937 DeliveredData is the change in
  // SND.UNA plus the change in SACKed bytes.
  private unaBefore = 0;
  private sackedBefore = 0;
  private wasRecovering = false;
  private newlySacked = 0;

  constructor(
    private readonly snd: TcpSender,
    private readonly counters: TcpCounters,
  ) {
    this.sb = new SackScoreboard(snd.iss, snd.sendMss);
  }

  /** ESTABLISHED: a scoreboard from SND.UNA with the negotiated MSS. */
  reset(): void {
    const snd = this.snd;
    this.sb = new SackScoreboard(snd.sndUna, snd.sendMss);
    this.sb.onSend(snd.sndMax);
  }

  // ---------------------------------------------------------------------------------------
  // Per ACK.

  /** An acceptable ACK arrived (before SND.UNA moves): record its SACK information. */
  onAckStart(ack: number, opts: SegmentOptions): void {
    this.unaBefore = this.snd.sndUna;
    this.sackedBefore = this.sb.sackedBytes;
    this.wasRecovering = this.inRecovery;
    this.newlySacked = 0;
    if (this.snd.sackOk) {
      const r = this.sb.update(ack, opts.sackBlocks ?? NO_BLOCKS);
      this.newlySacked = r.newlySacked;
      if (opts.sackBlocks !== undefined) this.counters.sackBlocksIn += opts.sackBlocks.length;
      if (r.dsack !== undefined) this.counters.dsackIn++;
      this.counters.sackBlocksInvalid += r.ignored;
    }
  }

  /**
   * A pure ACK (no data, SYN or FIN) at SND.UNA with window `wnd`: a duplicate ACK (RFC 5681 §2;
   * RFC 6675 §2: or one carrying new SACK information) when data is outstanding.
   */
  onAckAtUna(wnd: number, now: number): void {
    const snd = this.snd;
    if (
      snd.sndUna === snd.sndMax ||
      wnd === 0 || // a zero-window probe's answer is not a loss signal
      !(wnd === snd.sndWnd || this.newlySacked > 0)
    ) {
      return;
    }
    this.dupAcks++;
    this.counters.dupAcksIn++;
    if (this.inRecovery) {
      if (!snd.sackOk) this.inflation += snd.sendMss; // RFC 6582 §3.2 step 4
    } else if (
      !this.rtoRecovery &&
      (this.dupAcks >= DUP_THRESH || (snd.sackOk && this.sb.isLost(snd.sndUna)))
    ) {
      this.enterRecovery(now);
    }
  }

  /**
   * SND.UNA advanced (the sender moved it to `ack`, by `acked`): Eifel, and the end of recovery
   * or, without SACK, a partial ACK. True while in fast recovery (the controller is not told).
   */
  onNewAck(ack: number, acked: number, opts: SegmentOptions, now: number): boolean {
    const snd = this.snd;
    // Eifel detection (RFC 3522): the ACK echoes a TSval older than our first retransmission,
    // so it acknowledges the original transmission: the retransmission was spurious.
    if (this.retransTsVal !== undefined) {
      if (snd.tsOk && opts.tsVal !== undefined && opts.tsEcr !== 0 && seqLt(opts.tsEcr, this.retransTsVal)) {
        this.counters.spuriousRetransmits++;
      }
      this.retransTsVal = undefined;
    }

    if (this.rtoRecovery && seqGe(ack, this.recoveryPoint)) this.rtoRecovery = false;
    if (!this.inRecovery) {
      this.dupAcks = 0;
      return false;
    }
    if (seqGe(ack, this.recoveryPoint)) {
      this.inRecovery = false;
      this.inflation = 0;
      this.dupAcks = 0;
      snd.cc.onRecoveryEnd(now);
    } else if (!snd.sackOk) {
      // RFC 6582 §3.2 step 5: partial ACK: retransmit the next hole, deflate the window.
      this.counters.newRenoPartialAcks++;
      this.retransmitHead = true;
      this.inflation = Math.max(0, this.inflation - acked) + snd.sendMss;
    }
    return true;
  }

  /** The ACK is processed: SACK bookkeeping, then PRR's share of it. */
  onAckEnd(now: number, synchronized: boolean): void {
    const snd = this.snd;
    if (!snd.sackOk) return;
    this.afterSackAck(now, synchronized);
    if (this.inRecovery) {
      const delivered = seqDiff(snd.sndUna, this.unaBefore) + this.sb.sackedBytes - this.sackedBefore;
      this.prrOnAck(delivered, !this.wasRecovering, this.newlySacked, seqGt(snd.sndUna, this.unaBefore));
    }
  }

  /** SACK bookkeeping once an ACK is in: lost retransmissions, and loss found by SACK alone. */
  private afterSackAck(now: number, synchronized: boolean): void {
    const snd = this.snd;
    if (this.sackRecovering()) {
      this.counters.lostRetransmits += this.lostRtx.onAck(snd.sndUna, this.sb);
    } else {
      this.lostRtx.clear();
      // RFC 6675 §5 (4) checks IsLost on duplicate ACKs; as Linux, check it on any ACK, so a
      // hole left behind a recovery that just ended is repaired without three more of them.
      if (snd.sndUna !== snd.sndMax && synchronized && this.sb.isLost(snd.sndUna)) {
        this.enterRecovery(now);
      }
    }
  }

  private enterRecovery(now: number): void {
    const snd = this.snd;
    this.inRecovery = true;
    this.recoveryPoint = snd.sndMax;
    snd.cc.onCongestionEvent(now, snd.flightSize());
    this.counters.fastRetransmits++;
    if (this.retransTsVal === undefined) this.retransTsVal = snd.tsNow(now);
    if (snd.sackOk) {
      this.counters.sackRecoveries++;
      this.sb.enterRecovery();
      this.firstRetransmitPending = true;
      this.prrDelivered = 0;
      this.prrOut = 0;
      this.prrCwnd = snd.cc.cwnd;
      // RFC 9937: RecoverFS = snd.nxt - snd.una, less what was SACKed before recovery (it
      // will never be counted as delivered during it); prrOnAck then counts this ACK's part.
      this.recoverFs = snd.flightSize();
    } else {
      // RFC 6582 §3.2 step 3: retransmit, inflate by the three segments that left the network.
      this.counters.newRenoRecoveries++;
      this.retransmitHead = true;
      this.inflation = DUP_THRESH * snd.sendMss;
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
    const snd = this.snd;
    const ssthresh = snd.cc.ssthresh;
    const mss = snd.sendMss;
    if (entering) {
      // RFC 9937: bytes SACKed before this ACK are never delivered during the recovery.
      const advance = Math.max(0, delivered - newlySacked);
      this.recoverFs = Math.max(1, snd.flightSize() + advance - (this.sb.sackedBytes - newlySacked));
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
      if (unaAdvanced && !this.sb.isLost(snd.sndUna)) sndcnt += mss;
      sndcnt = Math.min(ssthresh - pipe, sndcnt);
    }
    this.prrCwnd = pipe + Math.max(0, sndcnt);
  }

  /** The RTO fired (the sender collapsed the window and backed off): recover from SND.UNA. */
  onRto(now: number): void {
    const snd = this.snd;
    this.inRecovery = false;
    this.inflation = 0;
    this.dupAcks = 0;
    this.retransmitHead = false;
    this.firstRetransmitPending = false;
    if (this.retransTsVal === undefined) this.retransTsVal = snd.tsNow(now);
    this.rtoRecovery = true;
    this.recoveryPoint = snd.sndMax;
    this.lostRtx.clear();
    if (snd.sackOk) {
      // RFC 6675 §5.1: keep the scoreboard; NextSeg resends what is not SACKed, in order.
      this.sb.onRto();
    } else {
      // Go back N: resend from SND.UNA as the (collapsed) window allows.
      snd.sndNxt = snd.sndUna;
    }
  }

  // ---------------------------------------------------------------------------------------
  // What the windows allow.

  /**
   * Room the congestion window leaves for new data. With SACK the bytes in flight are RFC
   * 6675's pipe at all times, as Linux counts them (SACKed and lost bytes have left the
   * network), which includes Limited Transmit (RFC 3042). Without SACK: FlightSize, plus
   * NewReno's inflation in recovery, or up to two segments for the first duplicate ACKs
   * (RFC 3042).
   */
  cwndRoom(): number {
    const snd = this.snd;
    if (snd.sackOk) return this.sendCwnd() - this.pipe();
    const limitedTransmit = this.inRecovery ? 0 : Math.min(this.dupAcks, 2) * snd.sendMss;
    return snd.cc.cwnd + this.inflation + limitedTransmit - snd.flightSize();
  }

  /** The window sending is held to: PRR's during SACK fast recovery, else the controller's. */
  private sendCwnd(): number {
    return this.snd.sackOk && this.inRecovery ? this.prrCwnd : this.snd.cc.cwnd;
  }

  /** RFC 6675 SetPipe, plus resent retransmissions the scoreboard cannot see. */
  private pipe(): number {
    return this.sb.pipe() + this.lostRtx.extraPipe(this.snd.sndUna, this.sb);
  }

  /** In SACK fast recovery or recovering from an RTO with SACK. */
  sackRecovering(): boolean {
    return this.snd.sackOk && (this.inRecovery || this.rtoRecovery);
  }

  // ---------------------------------------------------------------------------------------
  // Output.

  /**
   * Whether `sendRetransmissions` would resend something now (for pollAt), with `mss` bytes per
   * packet; only asked while `sackRecovering()`.
   */
  retransmissionDue(mss: number): boolean {
    const room = this.sendCwnd() - this.pipe() >= mss;
    if (room && this.lostRtx.pending) return true;
    const next = room ? this.sb.nextSeg(this.snd.sendableNewData(), mss) : undefined;
    return next !== undefined && next.kind !== 'new';
  }

  /** The retransmissions now due, before the sender's new data; `mss` bytes per packet. */
  sendRetransmissions(now: number, emit: Emit, mss: number): void {
    const snd = this.snd;
    if (this.retransmitHead) {
      this.retransmitHead = false;
      snd.retransmitRange(now, emit, snd.sndUna, mss);
    }
    if (this.firstRetransmitPending) {
      this.firstRetransmitPending = false;
      const first = this.inRecovery ? this.sb.nextSeg(0, mss) : undefined;
      if (first !== undefined && first.kind === 'lost') {
        const right = snd.retransmitRange(now, emit, first.left, seqDiff(first.right, first.left));
        if (right !== undefined) {
          this.sb.commit(first, right);
          this.lostRtx.onRetransmit(first.left, right, snd.sndMax);
        }
      } else if (this.inRecovery) {
        // Three duplicate ACKs without SACK blocks (a middlebox may strip them): the scoreboard
        // knows no loss, yet the segment at SND.UNA is the one to resend.
        const right = snd.retransmitRange(now, emit, snd.sndUna, mss);
        if (right !== undefined) {
          this.sb.onRetransmit(right);
          this.lostRtx.onRetransmit(snd.sndUna, right, snd.sndMax);
        }
      }
    }
    if (!this.sackRecovering()) return;
    // Retransmissions found lost go first (lost-retransmits.ts).
    for (let guard = 0; guard < 100_000 && this.lostRtx.pending; guard++) {
      if (this.sendCwnd() - this.pipe() < mss) break;
      const piece = this.lostRtx.next(snd.sndUna, this.sb, mss);
      if (piece === undefined) break;
      const right = snd.retransmitRange(now, emit, piece.left, seqDiff(piece.right, piece.left));
      if (right === undefined) break;
      this.lostRtx.commit(piece.left, right, snd.sndMax);
    }
    // RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send what NextSeg() picks; new data
    // (rule 2) is left to the sender's sendNewData.
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.sendCwnd() - this.pipe() < mss) break;
      const next = this.sb.nextSeg(snd.sendableNewData(), mss);
      if (next === undefined || next.kind === 'new') break;
      const right = snd.retransmitRange(now, emit, next.left, seqDiff(next.right, next.left));
      if (right === undefined) break;
      this.sb.commit(next, right);
      this.lostRtx.onRetransmit(next.left, right, snd.sndMax);
    }
  }
}
