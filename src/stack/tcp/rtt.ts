/**
 * RFC 6298 round-trip time estimation and retransmission timeout. Pure arithmetic on numbers
 * (ms); the sender owns the timer and decides which samples are valid.
 *
 * Karn's algorithm (RFC 6298 §3) is the sender's job: never take a sample from a segment that
 * was retransmitted (unless a timestamp echo (RFC 7323 §4) says which transmission it acks),
 * and keep the backed-off RTO until a valid sample arrives. `sample()` ends the backoff.
 *
 * Choices that differ from the RFC's letter, both as in Linux:
 * - The minimum RTO defaults to 200 ms, not 1 s (§2.4): on the short, fast paths this proxy
 *   runs on, 1 s idles a connection for ages after a tail loss. Like Linux, the minimum bounds
 *   the variance term (RTO = SRTT + max(G, K*RTTVAR, minRto)) rather than the sum, so the RTO
 *   always exceeds SRTT by at least minRto: a delayed ACK (≤ 200 ms) on a path with a tiny SRTT
 *   cannot fire a spurious timeout. Pass `minRto: 1000` for the RFC's conservative floor.
 * - The maximum is 120 s like Linux (§2.5 allows any cap ≥ 60 s), so a connection gives up
 *   after about as long as a kernel one with the same retry count.
 */

import { InvalidArgumentError } from '../../errors.js';

/** RFC 6298 §2.3: alpha = 1/8, beta = 1/4, K = 4. */
const RTT_ALPHA = 1 / 8;
const RTT_BETA = 1 / 4;
const RTT_K = 4;
/** Clock granularity G (ms): our clock is the caller's millisecond `now`. */
export const CLOCK_GRANULARITY_MS = 1;
/** RFC 6298 §2.1: RTO before the first sample. */
export const DEFAULT_INITIAL_RTO_MS = 1000;
/** Minimum RTO (see above: Linux's 200 ms, not the RFC's 1 s). */
export const DEFAULT_MIN_RTO_MS = 200;
/** Maximum RTO, backoff included (RFC 6298 §2.5: at least 60 s; Linux's 120 s). */
export const DEFAULT_MAX_RTO_MS = 120_000;

export interface RttEstimatorOptions {
  minRto?: number;
  maxRto?: number;
  initialRto?: number;
}

export class RttEstimator {
  private readonly minRto: number;
  private readonly maxRto: number;
  private readonly initialRto: number;
  private _srtt: number | undefined;
  private _rttvar: number | undefined;
  /** RTO before backoff, unclamped by maxRto. */
  private baseRto: number;
  private _backoffs = 0;
  private _latest: number | undefined;
  private _minRtt = Number.POSITIVE_INFINITY;

  constructor(opts?: RttEstimatorOptions) {
    this.minRto = opts?.minRto ?? DEFAULT_MIN_RTO_MS;
    this.maxRto = opts?.maxRto ?? DEFAULT_MAX_RTO_MS;
    this.initialRto = opts?.initialRto ?? DEFAULT_INITIAL_RTO_MS;
    if (!(this.minRto >= 0 && this.maxRto >= this.minRto && this.initialRto > 0)) {
      throw new InvalidArgumentError(
        `RttEstimator: need 0 <= minRto <= maxRto and initialRto > 0 (got ${this.minRto}, ${this.maxRto}, ${this.initialRto})`,
      );
    }
    this.baseRto = this.initialRto;
  }

  /**
   * A valid RTT measurement R (ms). RFC 6298 §2.2 for the first, §2.3 for later ones; a
   * negative or non-finite R (a caller bug or a bogus echo) is ignored. Ends any backoff.
   */
  sample(rtt: number): void {
    if (!(rtt >= 0) || !Number.isFinite(rtt)) return;
    this._latest = rtt;
    if (rtt < this._minRtt) this._minRtt = rtt;
    if (this._srtt === undefined || this._rttvar === undefined) {
      // §2.2: SRTT <- R, RTTVAR <- R/2.
      this._srtt = rtt;
      this._rttvar = rtt / 2;
    } else {
      // §2.3: RTTVAR first, with the SRTT from before this sample.
      this._rttvar = (1 - RTT_BETA) * this._rttvar + RTT_BETA * Math.abs(this._srtt - rtt);
      this._srtt = (1 - RTT_ALPHA) * this._srtt + RTT_ALPHA * rtt;
    }
    this.baseRto = this._srtt + Math.max(CLOCK_GRANULARITY_MS, RTT_K * this._rttvar, this.minRto);
    this._backoffs = 0;
  }

  get srtt(): number | undefined {
    return this._srtt;
  }

  get rttvar(): number | undefined {
    return this._rttvar;
  }

  /** The most recent sample, and the smallest seen (undefined / Infinity before any). */
  get latest(): number | undefined {
    return this._latest;
  }

  get minRtt(): number {
    return this._minRtt;
  }

  /** True once a sample has been taken (RFC 6298 §5.7 is about the time before that). */
  get hasSample(): boolean {
    return this._srtt !== undefined;
  }

  /** Consecutive backoffs since the last sample or `resetBackoff()`. */
  get backoffs(): number {
    return this._backoffs;
  }

  /** The timeout to arm (ms): base RTO doubled per backoff, within [minRto, maxRto]. */
  get rto(): number {
    const rto = this.baseRto * 2 ** this._backoffs;
    return Math.min(this.maxRto, Math.max(this.minRto, rto));
  }

  /** RFC 6298 §5.5: the timer expired; double the RTO (up to maxRto). */
  backoff(): void {
    // No overflow concern: 2 ** n reaches Infinity and the clamp still yields maxRto.
    this._backoffs++;
  }

  /** Forget the backoff (e.g. an ACK for new data when no sample could be taken). */
  resetBackoff(): void {
    this._backoffs = 0;
  }
}
