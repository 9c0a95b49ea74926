/**
 * Detecting lost retransmissions during SACK recovery, so they are resent without waiting
 * for the RTO. RFC 6675 alone repairs a hole once (HighRxt only moves forward); a lost
 * retransmission then costs a timeout, which on a tail-dropping bottleneck happens on most
 * large recoveries. The rule is RACK's time order (RFC 8985 §6.2) restricted to
 * retransmissions, as Linux's older tcp_mark_lost_retrans did: a retransmission is lost when
 * something sent after it was delivered while it was not, i.e.
 *  - bytes above what was outstanding when it went out (new data sent later) are SACKed, or
 *  - a later retransmission was SACKed or acknowledged.
 * Reordering can fool it into an early resend; that costs a duplicate, never data.
 */
import { seqDiff, seqGt, seqLe, seqLt, seqMax, seqMin } from '../wire/seqnum.js';
import type { SackScoreboard } from './sack-scoreboard.js';

interface Retransmission {
  left: number;
  right: number;
  /** Transmission order (increasing). */
  order: number;
  /** SND.MAX when it was sent: SACKed bytes above this were sent after it. */
  high: number;
  /** A resend of a retransmission found lost: the scoreboard's pipe does not count it. */
  again: boolean;
}

export class LostRetransmits {
  private log: Retransmission[] = [];
  /** Ranges found lost, to resend first. */
  private queue: { left: number; right: number }[] = [];
  private order = 0;

  get pending(): boolean {
    return this.queue.length > 0;
  }

  clear(): void {
    this.log = [];
    this.queue = [];
  }

  /** A retransmission of [left, right) went out while SND.MAX was `high`. */
  onRetransmit(left: number, right: number, high: number, again = false): void {
    if (!seqLt(left, right)) return;
    this.log.push({ left, right, order: ++this.order, high, again });
  }

  /** After an ACK updated the scoreboard: returns how many retransmissions were found lost. */
  onAck(sndUna: number, sb: SackScoreboard): number {
    if (this.log.length === 0) return 0;
    let latestDelivered = -1;
    const undelivered: Retransmission[] = [];
    for (const r of this.log) {
      if (seqLe(r.right, sndUna) || sb.isSacked(seqMax(r.left, sndUna), r.right)) {
        if (r.order > latestDelivered) latestDelivered = r.order;
      } else {
        undelivered.push(r);
      }
    }
    const top = sb.highestSacked;
    const kept: Retransmission[] = [];
    let lost = 0;
    for (const r of undelivered) {
      if (r.order < latestDelivered || (top !== undefined && seqGt(top, r.high))) {
        this.queue.push({ left: seqMax(r.left, sndUna), right: r.right });
        lost++;
      } else {
        kept.push(r);
      }
    }
    this.log = kept;
    return lost;
  }

  /** Bytes resent after being found lost and not yet delivered (add to the scoreboard's pipe). */
  extraPipe(sndUna: number, sb: SackScoreboard): number {
    let bytes = 0;
    for (const r of this.log) {
      if (!r.again || seqLe(r.right, sndUna)) continue;
      const left = seqMax(r.left, sndUna);
      bytes += seqDiff(r.right, left) - sb.sackedIn(left, r.right);
    }
    return bytes;
  }

  /** The next piece to resend (at most `mss`, skipping what got SACKed since), or undefined. */
  next(sndUna: number, sb: SackScoreboard, mss: number): { left: number; right: number } | undefined {
    while (this.queue.length > 0) {
      const q = this.queue[0]!;
      const from = seqMax(q.left, sndUna);
      const hole = seqLt(from, q.right) ? sb.nextHole(from) : undefined;
      if (hole === undefined || !seqLt(hole.left, q.right)) {
        this.queue.shift();
        continue;
      }
      const right = seqMin(seqMin(hole.right, q.right), (hole.left + mss) >>> 0);
      return { left: hole.left, right };
    }
    return undefined;
  }

  /** The piece from `next` was resent, up to `right`. */
  commit(left: number, right: number, high: number): void {
    const q = this.queue[0];
    if (q !== undefined) {
      q.left = right;
      if (!seqLt(q.left, q.right)) this.queue.shift();
    }
    this.onRetransmit(left, right, high, true);
  }
}
