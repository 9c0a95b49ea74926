/**
 * HyStart++ (RFC 9406): leaving the initial slow start when the round trip grows, before the
 * doubling window overflows a deep bottleneck queue. Per round of data (one window's worth of
 * acknowledged bytes) it keeps the smallest RTT sample; once a round's minimum exceeds the
 * lowest round minimum so far by RttThresh (that minimum / 8, within [4, 16] ms), slow start turns
 * into Conservative Slow Start (CSS: a quarter of the growth) for CSS_ROUNDS rounds, and then
 * into congestion avoidance (ssthresh = cwnd). A round in CSS whose minimum falls back below the
 * minimum that triggered it was a false alarm: slow start resumes.
 *
 * RFC 9406 compares with the previous round's minimum; we compare with the lowest one (as Linux's
 * HyStart compares with its delay_min), which also catches what the RFC's test does. Why: a
 * receiver that acknowledges a whole receive batch at once (ours: up to 64 segments per ACK)
 * lets slow start grow only by L = 8 SMSS per ACK, ~12% a round rather than doubling, so a
 * filling queue adds ~1 ms a round at 1 Gbit/s, never RttThresh, and RFC 9406's round-to-round
 * test alone let slow start run until a 20 ms tbf queue overflowed (2026-12-03).
 *
 * The controller does not see sequence numbers: the end of a round is the byte count that was
 * outstanding when the round began (SND.UNA then plus FlightSize is SND.NXT then, RFC 9406's
 * windowEnd). Only for the initial slow start (RFC 9406 §4.3 leaves later ones to plain slow start).
 */

/** RFC 9406 §4.3 constants (ms, samples, rounds). */
export const HYSTART_MIN_RTT_THRESH_MS = 4;
export const HYSTART_MAX_RTT_THRESH_MS = 16;
export const HYSTART_MIN_RTT_DIVISOR = 8;
export const HYSTART_N_RTT_SAMPLE = 8;
export const HYSTART_CSS_GROWTH_DIVISOR = 4;
export const HYSTART_CSS_ROUNDS = 5;

export type HyStartPhase = 'slow-start' | 'css' | 'avoidance';

export class HyStartPlusPlus {
  private phase: HyStartPhase = 'slow-start';
  /** Bytes acknowledged so far (a private SND.UNA). */
  private acked = 0;
  /** The round ends when `acked` reaches this (a private windowEnd); undefined before the first ACK. */
  private windowEnd: number | undefined;
  /**
   * The lowest round minimum so far (the path's RTT without our queue). It is never above the
   * previous round's, so RFC 9406's round-to-round test is part of the test against it.
   */
  private baseMinRtt = Number.POSITIVE_INFINITY;
  private currentRoundMinRtt = Number.POSITIVE_INFINITY;
  private rttSampleCount = 0;
  private cssBaselineMinRtt = Number.POSITIVE_INFINITY;
  private cssRounds = 0;
  /** How often slow start turned into CSS, and CSS back into slow start (for tests and info). */
  cssEntered = 0;
  cssAborted = 0;

  get state(): HyStartPhase {
    return this.phase;
  }

  /**
   * One ACK in slow start: `acked` newly acknowledged bytes, `rtt` its sample (ms) if any,
   * `inFlight` the bytes outstanding when it arrived (the acknowledged ones included). Returns
   * the phase to grow in: full slow start, CSS (growth / HYSTART_CSS_GROWTH_DIVISOR) or
   * congestion avoidance from now on (the caller sets ssthresh = cwnd).
   */
  onAck(acked: number, rtt: number | undefined, inFlight: number): HyStartPhase {
    if (this.phase === 'avoidance') return this.phase;
    const before = this.acked;
    this.acked += acked;
    if (rtt !== undefined && rtt >= 0) {
      if (rtt < this.currentRoundMinRtt) this.currentRoundMinRtt = rtt;
      this.rttSampleCount++;
    }
    const enough = this.rttSampleCount >= HYSTART_N_RTT_SAMPLE;
    if (this.phase === 'slow-start') {
      const base = this.baseMinRtt;
      if (enough && base !== Number.POSITIVE_INFINITY && this.currentRoundMinRtt >= base + rttThresh(base)) {
        this.cssBaselineMinRtt = this.currentRoundMinRtt;
        this.phase = 'css';
        this.cssRounds = 0;
        this.cssEntered++;
      }
    } else if (enough && this.currentRoundMinRtt < this.cssBaselineMinRtt) {
      // The delay increase did not last: a false exit (RFC 9406 §4.2, CSS).
      this.cssBaselineMinRtt = Number.POSITIVE_INFINITY;
      this.phase = 'slow-start';
      this.cssAborted++;
    }
    if (this.windowEnd === undefined || this.acked >= this.windowEnd) {
      // A new round: what was outstanding now must be acknowledged before the next one.
      if (this.windowEnd !== undefined && this.phase === 'css' && ++this.cssRounds >= HYSTART_CSS_ROUNDS) {
        this.phase = 'avoidance';
      }
      this.windowEnd = before + Math.max(inFlight, acked);
      if (this.currentRoundMinRtt < this.baseMinRtt) this.baseMinRtt = this.currentRoundMinRtt;
      this.currentRoundMinRtt = Number.POSITIVE_INFINITY;
      this.rttSampleCount = 0;
    }
    return this.phase;
  }

  /** A loss or timeout ended the initial slow start: HyStart++ has no more say. */
  stop(): void {
    this.phase = 'avoidance';
  }
}

/** RFC 9406's RttThresh for a round minimum `minRtt`: minRtt / 8 within [4, 16] ms. */
function rttThresh(minRtt: number): number {
  return Math.max(
    HYSTART_MIN_RTT_THRESH_MS,
    Math.min(minRtt / HYSTART_MIN_RTT_DIVISOR, HYSTART_MAX_RTT_THRESH_MS),
  );
}
