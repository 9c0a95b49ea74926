/**
 * Congestion control behind one narrow interface (docs/TCP-ENGINE.md): NewReno (RFC 5681 with
 * RFC 3465 byte counting) and CUBIC (RFC 9438, the default). Windows in bytes, time in ms. A
 * controller knows nothing of segments, sequence numbers or SACK: the sender tells it what was
 * acknowledged and when loss was detected, and reads `cwnd` / `ssthresh`.
 *
 * Division of labour with the sender (connection.ts):
 * - `onAck` is called for cumulative ACKs of new data outside loss recovery, with `inFlight` the
 *   bytes that were outstanding when this ACK arrived (FlightSize before it, the acknowledged
 *   bytes included). A window only grows while the sender actually uses it (the "cwnd-limited"
 *   test below, the intent of RFC 7661 and RFC 9438 §5.8): an application- or
 *   receive-window-limited sender would otherwise inflate cwnd without ever probing the path.
 * - `onCongestionEvent` once per window of data when duplicate ACKs or SACK (RFC 6675 IsLost)
 *   detect a loss, with `inFlight` the FlightSize (SND.NXT - SND.UNA) at that moment. NewReno
 *   sets ssthresh = FlightSize / 2 (RFC 5681 eq. 4), CUBIC 0.7 * cwnd (RFC 9438 §4.6, see
 *   there); both then set cwnd = ssthresh (RFC 6675 §5 step 4.2), never raising it. How much to
 *   send during the
 *   recovery (RFC 6675's pipe against cwnd; RFC 6582's inflation by dup ACKs, kept on the
 *   sender's side on top of `cwnd`; or PRR, RFC 6937) is the sender's business; the controller is
 *   not told about ACKs inside recovery.
 * - `onRecoveryEnd` when the recovery point is acknowledged: congestion avoidance resumes from
 *   cwnd = ssthresh (RFC 6582 §3.2 step 3 option 2).
 * - `onRto` on a retransmission timeout: cwnd collapses to the loss window of one SMSS (RFC 5681
 *   §3.1). A repeated timeout before any new ACK keeps ssthresh (RFC 5681 §3.1, eq. 4 note).
 *
 * CUBIC leaves its initial slow start with HyStart++ (RFC 9406, hystart.ts) when the RTT grows.
 * Not done: undoing spurious congestion events (RFC 9438 §4.9): the interface has no undo hook yet.
 *
 * MPTCP (next issue) adds coupled controllers (LIA, RFC 6356; OLIA; BALIA) behind the same
 * interface: one controller per subflow, created with a shared group object that can read every
 * member's `cwnd` and its own smoothed RTT (each controller sees its subflow's samples through
 * `onAck`). Only the congestion-avoidance increase differs, so such a controller subclasses
 * `NewReno` and overrides `congestionAvoidance`.
 */

import { InvalidArgumentError } from '../../errors.js';
import { HYSTART_CSS_GROWTH_DIVISOR, HyStartPlusPlus } from './hystart.js';

export interface CongestionControl {
  readonly name: string;
  /** Congestion window, bytes. */
  readonly cwnd: number;
  /** Slow-start threshold, bytes (Infinity before the first loss). */
  readonly ssthresh: number;
  /** `acked` bytes newly cumulatively acknowledged outside recovery; `rtt` the latest sample (ms) or undefined. */
  onAck(acked: number, now: number, rtt: number | undefined, inFlight: number): void;
  /** A loss detected by duplicate ACKs / SACK: entering fast recovery (once per window of data). */
  onCongestionEvent(now: number, inFlight: number): void;
  /** Fast recovery ended (RFC 6675 / 6582 recovery point acknowledged). */
  onRecoveryEnd(now: number): void;
  /** Retransmission timeout: collapse to the loss window. */
  onRto(now: number, inFlight: number): void;
}

export type CongestionControlName = 'newreno' | 'cubic';

export const CONGESTION_CONTROL_NAMES: readonly CongestionControlName[] = ['newreno', 'cubic'];

export interface CongestionControlOptions {
  /**
   * Initial window in segments (TcpConfig.initialCwndSegments): IW = n * SMSS. Without it,
   * RFC 6928 §2: min(10*SMSS, max(2*SMSS, 14600)), which is 10 segments up to an SMSS of 1460.
   */
  initialCwndSegments?: number;
  /** HyStart++ (RFC 9406) in CUBIC's initial slow start: on unless false. */
  hystart?: boolean;
}

/** RFC 3465 §2.2: at most L = 2*SMSS of growth per ACK in slow start. */
const ABC_LIMIT_SEGMENTS = 2;
/**
 * RFC 9406 §4.2: while HyStart++ runs, a sender that does not pace (we do not) uses L = 8 (a
 * paced one infinity). It matters with stretch ACKs: a receiver that ACKs each batch of 40-80
 * segments once (a GRO receiver, or our own stack reading its TUN 64 packets at a time) gives
 * 2 SMSS per ACK ~3% growth per round trip, 8 SMSS ~12%; measured on two 1 Gbit/s tbf paths,
 * the upload reached the links' rate in ~0.1 s instead of ~0.5 s (docs/DESIGN-NOTES.md).
 */
const HYSTART_ABC_LIMIT_SEGMENTS = 8;
/** RFC 5681 eq. 4: ssthresh never below 2*SMSS. */
const MIN_SSTHRESH_SEGMENTS = 2;
/** RFC 5681 §3.1: the loss window after a retransmission timeout. */
const LOSS_WINDOW_SEGMENTS = 1;
/** RFC 7323 §2.3 caps the window at 2^30 bytes; more cwnd than that can never be used. */
const MAX_CWND_BYTES = 2 ** 30;

/** RFC 9438 §4.6: multiplicative decrease factor. */
export const CUBIC_BETA = 0.7;
/** RFC 9438 §4.2: the scaling constant C (segments / s^3). */
export const CUBIC_C = 0.4;
/** RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta), Reno's rate at CUBIC's beta. */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

/** RFC 6928 §2 initial window (bytes), or `segments` * SMSS when given. */
export function initialWindow(mss: number, segments?: number): number {
  if (segments !== undefined) return segments * mss;
  return Math.min(10 * mss, Math.max(2 * mss, 14_600));
}

/**
 * Slow start with byte counting, the cwnd-limited test, the loss window and the repeated-RTO
 * rule, shared by every controller. Subclasses decide the decrease and the avoidance increase.
 */
abstract class WindowController implements CongestionControl {
  abstract readonly name: string;
  protected readonly mss: number;
  /** Kept fractional: CUBIC grows by fractions of a byte per ACK. */
  protected window: number;
  protected threshold = Number.POSITIVE_INFINITY;
  /** An RTO fired and no new data has been acknowledged since (RFC 5681 §3.1 note on eq. 4). */
  private inTimeoutBackoff = false;
  /** HyStart++ (RFC 9406) in the initial slow start, for controllers that use it. */
  protected readonly hystart: HyStartPlusPlus | undefined;

  constructor(mss: number, opts?: CongestionControlOptions) {
    if (!(Number.isInteger(mss) && mss > 0))
      throw new InvalidArgumentError(`congestion control: bad MSS ${mss}`);
    const iw = opts?.initialCwndSegments;
    if (iw !== undefined && !(Number.isInteger(iw) && iw >= 1)) {
      throw new InvalidArgumentError(`congestion control: bad initial window ${iw} segments`);
    }
    this.mss = mss;
    this.window = initialWindow(mss, iw);
    this.hystart = this.usesHyStart() && opts?.hystart !== false ? new HyStartPlusPlus() : undefined;
  }

  /** Whether this controller runs HyStart++ in its initial slow start (CUBIC does). */
  protected usesHyStart(): boolean {
    return false;
  }

  get cwnd(): number {
    return Math.floor(this.window);
  }

  get ssthresh(): number {
    return this.threshold;
  }

  onAck(acked: number, now: number, rtt: number | undefined, inFlight: number): void {
    if (rtt !== undefined && rtt >= 0) this.onRttSample(rtt);
    if (!(acked > 0)) return;
    this.onAckArrived(acked, now, inFlight);
    this.inTimeoutBackoff = false;
    if (!this.isCwndLimited(inFlight)) {
      this.onAppLimited(now);
      return;
    }
    let rest = acked;
    if (this.threshold === Number.POSITIVE_INFINITY && this.hystart !== undefined) {
      // RFC 9406, initial slow start only: it ends (ssthresh = cwnd) once CSS has had its rounds.
      if (this.hystart.onAck(acked, rtt, inFlight) === 'avoidance') this.threshold = this.window;
    }
    if (this.window < this.threshold) {
      // RFC 5681 §3.1 slow start, RFC 3465 §2.2 byte counting with L = 2*SMSS (8 while
      // HyStart++ runs); what is left of this ACK once ssthresh is reached counts towards
      // congestion avoidance.
      const limit =
        this.hystart !== undefined && this.hystart.state !== 'avoidance'
          ? HYSTART_ABC_LIMIT_SEGMENTS
          : ABC_LIMIT_SEGMENTS;
      let growth = Math.min(rest, limit * this.mss);
      if (this.hystart?.state === 'css') growth /= HYSTART_CSS_GROWTH_DIVISOR;
      const room = this.threshold - this.window;
      if (growth < room) {
        this.window = Math.min(this.window + growth, MAX_CWND_BYTES);
        return;
      }
      this.window = this.threshold;
      rest -= room;
      if (rest <= 0) return;
    }
    this.congestionAvoidance(rest, now);
    if (this.window > MAX_CWND_BYTES) this.window = MAX_CWND_BYTES;
  }

  onCongestionEvent(now: number, inFlight: number): void {
    this.hystart?.stop();
    this.inTimeoutBackoff = false;
    this.threshold = Math.max(this.reducedThreshold(inFlight, now), MIN_SSTHRESH_SEGMENTS * this.mss);
    // RFC 6675 §5 step 4.2 / RFC 9438 §4.6: cwnd = ssthresh (ssthresh never below 2*SMSS). A
    // loss never grows the window, though: after a timeout FlightSize can exceed cwnd.
    this.window = Math.min(this.window, this.threshold);
  }

  onRecoveryEnd(now: number): void {
    // RFC 6582 §3.2 step 3, option 2: deflate to ssthresh (a no-op unless a subclass moved cwnd).
    if (this.window > this.threshold) this.window = this.threshold;
    this.onAvoidanceRestart(now);
  }

  onRto(now: number, inFlight: number): void {
    this.hystart?.stop();
    if (!this.inTimeoutBackoff) {
      this.threshold = Math.max(this.timeoutThreshold(inFlight, now), MIN_SSTHRESH_SEGMENTS * this.mss);
    }
    this.inTimeoutBackoff = true;
    this.window = LOSS_WINDOW_SEGMENTS * this.mss;
  }

  /**
   * Whether the sender was using the window when this ACK arrived: the bytes outstanding then
   * were within one SMSS of cwnd (a sender stops when less than an SMSS of room is left), or in
   * slow start more than half of it, as in Linux, since there the window doubles each round
   * trip and the ACK clock lags behind it.
   */
  protected isCwndLimited(inFlight: number): boolean {
    if (this.window < this.threshold) return 2 * inFlight > this.window;
    return inFlight + this.mss > this.window;
  }

  /** Congestion avoidance with `acked` bytes acknowledged (cwnd >= ssthresh). */
  protected abstract congestionAvoidance(acked: number, now: number): void;
  /** ssthresh for a fast-recovery congestion event (before the 2*SMSS floor). */
  protected abstract reducedThreshold(inFlight: number, now: number): number;
  /** ssthresh for a retransmission timeout (before the 2*SMSS floor). */
  protected abstract timeoutThreshold(inFlight: number, now: number): number;
  /** Hooks for controllers that need them (CUBIC); NewReno ignores them. */
  protected onRttSample(_rtt: number): void {
    // Nothing by default.
  }
  protected onAckArrived(_acked: number, _now: number, _inFlight: number): void {
    // Nothing by default.
  }
  protected onAppLimited(_now: number): void {
    // Nothing by default.
  }
  protected onAvoidanceRestart(_now: number): void {
    // Nothing by default.
  }
}

/**
 * RFC 5681 congestion avoidance with RFC 3465 byte counting: cwnd grows by one SMSS each time a
 * full cwnd of bytes has been acknowledged, i.e. one SMSS per round trip; on loss, ssthresh =
 * max(FlightSize / 2, 2*SMSS) (RFC 5681 eq. 4).
 */
export class NewReno extends WindowController {
  readonly name: string = 'newreno';
  /** RFC 3465 §2.1 bytes_acked. */
  private bytesAcked = 0;

  protected congestionAvoidance(acked: number, _now: number): void {
    this.bytesAcked += acked;
    if (this.bytesAcked >= this.window) {
      this.bytesAcked -= this.window;
      this.window += this.mss;
    }
  }

  protected reducedThreshold(inFlight: number, _now: number): number {
    this.bytesAcked = 0;
    return Math.floor(inFlight / 2);
  }

  protected timeoutThreshold(inFlight: number, _now: number): number {
    this.bytesAcked = 0;
    return Math.floor(inFlight / 2);
  }
}

/**
 * CUBIC (RFC 9438). In congestion avoidance the window follows
 *   W_cubic(t) = C * (t - K)^3 + W_max,  K = cbrt((W_max - cwnd_epoch) / C)
 * (segments, t in seconds since the start of the avoidance stage), chasing W_cubic(t + RTT)
 * but by at most half the window per round trip (§4.2), and never below W_est, what Reno would
 * have reached with CUBIC's beta (§4.3, the Reno-friendly region). On loss, W_max remembers the
 * window (reduced further when it fell short of the last one: fast convergence, §4.7) and the
 * window shrinks to beta = 0.7 of itself (§4.6). After a timeout the next avoidance stage
 * starts with K = 0 and W_max = W_est = cwnd at its start (§4.8).
 *
 * While the sender is not cwnd-limited or idle, the cubic clock is held still (its epoch moves
 * forward by the time that passed, §5.8), so a quiet period does not turn into a burst of
 * growth when data flows again.
 */
export class Cubic extends WindowController {
  readonly name: string = 'cubic';

  protected override usesHyStart(): boolean {
    return true;
  }
  /** W_max in bytes; undefined before the first congestion event. */
  private wMax: number | undefined;
  /** cwnd before the most recent reduction (bytes), for the alpha switch of §4.3. */
  private cwndPrior = 0;
  /** Start of the current congestion avoidance stage (ms); undefined until its first ACK. */
  private epochStart: number | undefined;
  /** K in seconds for the current stage. */
  private k = 0;
  /** W_est in bytes. */
  private wEst = 0;
  /** The next avoidance stage follows a timeout (§4.8). */
  private afterTimeout = false;
  /** Smoothed RTT (ms) of the samples seen, the RTT of §4.2's W_cubic(t + RTT). */
  private srtt: number | undefined;
  private lastAck: number | undefined;
  private idleSince: number | undefined;
  private idleShift = 0;

  protected override onRttSample(rtt: number): void {
    // RFC 6298's alpha = 1/8; our own copy keeps the controller independent of the estimator.
    this.srtt = this.srtt === undefined ? rtt : this.srtt + (rtt - this.srtt) / 8;
  }

  protected override onAckArrived(acked: number, now: number, inFlight: number): void {
    // §5.8: time spent idle does not count. The sender was idle after an ACK that left nothing
    // outstanding, until it sent again, about one RTT before the next ACK.
    // (An application-limited ACK moves the epoch by all the time since the previous ACK, which
    // covers the idle time too; so this only applies when the window is in use again.)
    this.idleShift = 0;
    if (this.idleSince !== undefined) {
      this.idleShift = Math.max(0, now - this.idleSince - (this.srtt ?? 0));
      this.idleSince = undefined;
    }
    if (inFlight <= acked) this.idleSince = now;
  }

  protected override onAppLimited(now: number): void {
    if (this.epochStart !== undefined && this.lastAck !== undefined && now > this.lastAck) {
      this.epochStart += now - this.lastAck;
    }
    this.lastAck = now;
  }

  protected congestionAvoidance(acked: number, now: number): void {
    const mss = this.mss;
    if (this.epochStart === undefined) this.startEpoch(now);
    else this.epochStart += this.idleShift;
    this.lastAck = now;
    const start = this.epochStart ?? now;
    const wMax = this.wMax ?? this.window;
    const t = (now - start) / 1000;
    const rtt = (this.srtt ?? 0) / 1000;
    const cwndSegments = this.window / mss;
    const ackedSegments = acked / mss;

    // §4.3 Reno-friendly estimate; alpha becomes Reno's 1 once W_est has regained cwnd_prior.
    const alpha = this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEst += (alpha * ackedSegments * mss) / cwndSegments;

    const wCubicNow = this.wCubic(t, wMax);
    if (wCubicNow < this.wEst) {
      // §4.3: in the Reno-friendly region cwnd follows W_est (never shrinking on an ACK).
      if (this.wEst > this.window) this.window = this.wEst;
      return;
    }
    // §4.4/§4.5: target = W_cubic(t + RTT) within [cwnd, 1.5 * cwnd]; cwnd grows by
    // (target - cwnd) / cwnd per acknowledged segment.
    const target = Math.min(Math.max(this.wCubic(t + rtt, wMax), this.window), 1.5 * this.window);
    const growth = ((target - this.window) / cwndSegments) * ackedSegments;
    this.window = Math.min(this.window + growth, target);
  }

  protected reducedThreshold(_inFlight: number, _now: number): number {
    // §4.7 fast convergence: a window that peaked below the last W_max releases bandwidth.
    const cwnd = this.window;
    this.wMax = this.wMax !== undefined && cwnd < this.wMax ? (cwnd * (1 + CUBIC_BETA)) / 2 : cwnd;
    this.cwndPrior = cwnd;
    this.epochStart = undefined;
    this.afterTimeout = false;
    // §4.6 says flight_size * beta_cubic, and allows cwnd * beta_cubic (as Linux does) when cwnd
    // cannot grow past what the sender uses, which isCwndLimited ensures. cwnd keeps the part
    // of an SMSS a full-segment sender could not fill, worth a few % of goodput at small windows.
    // Whole bytes: 0.7 is not exact in binary.
    return Math.round(cwnd * CUBIC_BETA);
  }

  protected timeoutThreshold(inFlight: number, _now: number): number {
    // §4.8: Reno's loss window, but ssthresh from beta_cubic as in §4.6.
    this.cwndPrior = this.window;
    this.epochStart = undefined;
    this.afterTimeout = true;
    return Math.round(inFlight * CUBIC_BETA);
  }

  protected override onAvoidanceRestart(_now: number): void {
    // The stage starts with its first ACK (the one after the recovery point).
    this.epochStart = undefined;
  }

  private startEpoch(now: number): void {
    this.epochStart = now;
    const cwndEpoch = this.window;
    if (this.afterTimeout || this.wMax === undefined) {
      // §4.8 (and a first avoidance stage without any loss): K = 0, W_max = cwnd_epoch.
      this.wMax = cwndEpoch;
      this.afterTimeout = false;
    }
    // §4.2 eq. 2, in segments; negative when cwnd_epoch > W_max, which keeps W_cubic(0) = cwnd.
    this.k = Math.cbrt((this.wMax - cwndEpoch) / this.mss / CUBIC_C);
    this.wEst = cwndEpoch;
  }

  /** §4.2 eq. 1 in bytes, for t seconds into the stage. */
  private wCubic(t: number, wMax: number): number {
    const d = t - this.k;
    return CUBIC_C * d * d * d * this.mss + wMax;
  }
}

export function createCongestionControl(
  name: CongestionControlName,
  mss: number,
  opts?: CongestionControlOptions,
): CongestionControl {
  switch (name) {
    case 'newreno':
      return new NewReno(mss, opts);
    case 'cubic':
      return new Cubic(mss, opts);
    default:
      throw new InvalidArgumentError(`unknown congestion control ${String(name)}`);
  }
}
