/**
 * Coupled congestion control for MPTCP subflows: LIA (RFC 6356), OLIA (Khalili, Gast, Popovic,
 * Le Boudec, "MPTCP is not Pareto-optimal", CoNEXT 2012 / IEEE/ACM ToN 2013) and BALIA (Peng,
 * Walid, Hwang, Low, "Multipath TCP: Analysis, Design and Implementation", IEEE/ACM ToN 2016).
 *
 * Each subflow keeps its own controller (the TCP engine's CongestionControl, src/stack/tcp/
 * congestion.ts), made over a `CoupledGroup` that the connection's subflows share, so a
 * controller can read every member's window and smoothed RTT. Slow start, the loss window after
 * an RTO and fast recovery are NewReno's, per subflow; what is coupled is the increase in
 * congestion avoidance (and, for BALIA, the decrease on loss, which is part of its algorithm:
 * w_r -= (w_r / 2) * min(alpha_r, 1.5)).
 *
 * The formulas, per ACK of `acked` bytes on subflow r in congestion avoidance (w in segments,
 * rtt in any unit, the same for all):
 * - LIA (RFC 6356 §3, in bytes):
 *     cwnd_r += min(alpha * acked * MSS_r / cwnd_total, acked * MSS_r / cwnd_r),
 *     alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i cwnd_i / rtt_i)^2
 * - OLIA: w_r += acked/MSS_r * [ (w_r / rtt_r^2) / (sum_p w_p / rtt_p)^2 + alpha_r / w_r ], with
 *   l_r = max(bytes acked since the last loss, bytes between the last two losses) (the paper's
 *   inter-loss estimate), B the paths maximising l_r / rtt_r^2 (presumably best), M the paths of
 *   largest window, and alpha_r = 1 / (|R| |B\M|) on B\M, -1 / (|R| |M|) on M when B\M is not
 *   empty, 0 otherwise.
 * - BALIA: x_k = w_k / rtt_k, alpha_r = max_k x_k / x_r;
 *     w_r += acked/MSS_r * x_r / (rtt_r (sum_k x_k)^2) * (1 + alpha_r)/2 * (4 + alpha_r)/5.
 * With one subflow each reduces to Reno's 1/w per segment.
 *
 * The sums run over the group's members that may carry data now (not stale, not closed, a join
 * once fully established: the `active` test the subflow gives) and have an RTT sample, and
 * always over the subflow being acknowledged.
 *
 * 'cubic' and 'newreno' are the uncoupled choices: the TCP engine's own controllers, one per
 * subflow, each blind to the others.
 */
import { InvalidArgumentError } from '../../errors.js';
import {
  type CongestionControl,
  type CongestionControlOptions,
  createCongestionControl,
  NewReno,
} from '../tcp/congestion.js';

export type CoupledAlgorithm = 'lia' | 'olia' | 'balia';
export type MptcpCongestionName = CoupledAlgorithm | 'cubic' | 'newreno';

export const COUPLED_ALGORITHMS: readonly CoupledAlgorithm[] = ['lia', 'olia', 'balia'];
export const MPTCP_CONGESTION_NAMES: readonly MptcpCongestionName[] = [
  'lia',
  'olia',
  'balia',
  'cubic',
  'newreno',
];

export function isMptcpCongestionName(name: string): name is MptcpCongestionName {
  return (MPTCP_CONGESTION_NAMES as readonly string[]).includes(name);
}

/** RFC 5681 eq. 4: no window below 2*SMSS (OLIA may shrink a window in avoidance). */
const MIN_WINDOW_SEGMENTS = 2;
/** BALIA: the decrease is at most (1.5 / 2) of the window. */
const BALIA_MAX_DECREASE_ALPHA = 1.5;

// ------------------------------------------------------------------ the formulas

/** What the formulas read of one subflow: window (bytes), MSS (bytes), smoothed RTT (> 0). */
export interface PathState {
  cwnd: number;
  mss: number;
  rtt: number;
  /** OLIA's l_r: the larger of the bytes since the last loss and between the last two. */
  lossInterval?: number;
}

/** RFC 6356's alpha over `paths`. */
export function liaAlpha(paths: readonly PathState[]): number {
  let total = 0;
  let best = 0;
  let sum = 0;
  for (const p of paths) {
    total += p.cwnd;
    best = Math.max(best, p.cwnd / (p.rtt * p.rtt));
    sum += p.cwnd / p.rtt;
  }
  return sum > 0 ? (total * best) / (sum * sum) : 1;
}

/** LIA: bytes the window of `paths[self]` grows by for `acked` bytes acknowledged. */
export function liaIncrease(paths: readonly PathState[], self: number, acked: number): number {
  const me = paths[self]!;
  let total = 0;
  for (const p of paths) total += p.cwnd;
  const coupled = (liaAlpha(paths) * acked * me.mss) / total;
  const uncoupled = (acked * me.mss) / me.cwnd;
  return Math.min(coupled, uncoupled);
}

/** OLIA's alpha_r for each path (sums to 0 when B\M is not empty). */
export function oliaAlphas(paths: readonly PathState[]): number[] {
  const n = paths.length;
  let maxWindow = 0;
  let bestQuality = Number.NEGATIVE_INFINITY;
  for (const p of paths) {
    const w = p.cwnd / p.mss;
    if (w > maxWindow) maxWindow = w;
    const q = (p.lossInterval ?? 0) / (p.rtt * p.rtt);
    if (q > bestQuality) bestQuality = q;
  }
  const inM = paths.map((p) => p.cwnd / p.mss === maxWindow);
  const inB = paths.map((p) => (p.lossInterval ?? 0) / (p.rtt * p.rtt) === bestQuality);
  let collected = 0;
  let maxCount = 0;
  for (let i = 0; i < n; i++) {
    if (inB[i] && !inM[i]) collected++;
    if (inM[i]) maxCount++;
  }
  return paths.map((_, i) => {
    if (collected === 0) return 0;
    if (inB[i] && !inM[i]) return 1 / (n * collected);
    if (inM[i]) return -1 / (n * maxCount);
    return 0;
  });
}

/** OLIA: bytes the window of `paths[self]` changes by (may be negative) for `acked` bytes. */
export function oliaIncrease(paths: readonly PathState[], self: number, acked: number): number {
  const me = paths[self]!;
  let sum = 0;
  for (const p of paths) sum += p.cwnd / p.mss / p.rtt;
  const w = me.cwnd / me.mss;
  const perSegment = w / (me.rtt * me.rtt) / (sum * sum) + oliaAlphas(paths)[self]! / w;
  // Per acknowledged segment (acked / MSS of them), in segments; times MSS for bytes.
  return acked * perSegment;
}

/** BALIA's alpha_r = max_k x_k / x_r, with x_k = w_k / rtt_k. */
export function baliaAlpha(paths: readonly PathState[], self: number): number {
  const x = paths.map((p) => p.cwnd / p.mss / p.rtt);
  return Math.max(...x) / x[self]!;
}

/** BALIA: bytes the window of `paths[self]` grows by for `acked` bytes acknowledged. */
export function baliaIncrease(paths: readonly PathState[], self: number, acked: number): number {
  const me = paths[self]!;
  let sum = 0;
  for (const p of paths) sum += p.cwnd / p.mss / p.rtt;
  const x = me.cwnd / me.mss / me.rtt;
  const a = baliaAlpha(paths, self);
  return ((acked * x) / (me.rtt * sum * sum)) * ((1 + a) / 2) * ((4 + a) / 5);
}

/** BALIA: the fraction of the window a loss on `paths[self]` takes away. */
export function baliaDecrease(paths: readonly PathState[], self: number): number {
  return Math.min(baliaAlpha(paths, self), BALIA_MAX_DECREASE_ALPHA) / 2;
}

// ------------------------------------------------------------------ the group and its members

/** One connection's coupled controllers. */
export class CoupledGroup {
  private readonly members = new Set<CoupledController>();

  constructor(readonly algorithm: CoupledAlgorithm) {}

  get size(): number {
    return this.members.size;
  }

  /** A controller for one subflow; `active` says whether it may carry data now. */
  create(mss: number, opts?: CongestionControlOptions, active?: () => boolean): CoupledController {
    const c = new CoupledController(this, mss, opts, active ?? (() => true));
    this.members.add(c);
    return c;
  }

  remove(c: CoupledController): void {
    this.members.delete(c);
  }

  /** The paths the sums run over: active members with an RTT sample, and `self` (its index). */
  paths(self: CoupledController): { paths: PathState[]; self: number } {
    const paths: PathState[] = [];
    let index = -1;
    for (const m of this.members) {
      if (m !== self && !(m.isActive() && m.srtt !== undefined)) continue;
      if (m === self) index = paths.length;
      paths.push(m.state());
    }
    if (index < 0) {
      index = paths.length;
      paths.push(self.state());
    }
    return { paths, self: index };
  }
}

/** A subflow's controller: NewReno's slow start and recovery, the group's avoidance increase. */
export class CoupledController extends NewReno {
  override readonly name: string;
  /** Smoothed RTT (ms) of this subflow's samples (RFC 6298 alpha 1/8). */
  srtt: number | undefined;
  /** OLIA: bytes acknowledged since the last loss, and between the last two. */
  private sinceLoss = 0;
  private betweenLosses = 0;

  constructor(
    readonly group: CoupledGroup,
    mss: number,
    opts: CongestionControlOptions | undefined,
    readonly isActive: () => boolean,
  ) {
    super(mss, opts);
    this.name = group.algorithm;
  }

  /** What the group's formulas read of this subflow. */
  state(): PathState {
    return {
      cwnd: this.window,
      mss: this.mss,
      // Before any sample (a member counted only as `self`, which always has one in avoidance).
      rtt: Math.max(this.srtt ?? 1, 1e-3),
      lossInterval: Math.max(this.sinceLoss, this.betweenLosses),
    };
  }

  /** This controller leaves its group (its subflow closed, or the engine made a new one). */
  leave(): void {
    this.group.remove(this);
  }

  /**
   * Each subflow's slow start is ordinary TCP's, and that includes HyStart++ (RFC 9406, as the
   * engine's CUBIC): without it a subflow doubles into a deep queue and the overshoot's losses
   * stall the data level (simult_flows.sh's unbalanced cases went from ~7.3 s to ~9.8 s).
   */
  protected override usesHyStart(): boolean {
    return true;
  }

  protected override onRttSample(rtt: number): void {
    this.srtt = this.srtt === undefined ? rtt : this.srtt + (rtt - this.srtt) / 8;
  }

  protected override onAckArrived(acked: number, _now: number, _inFlight: number): void {
    this.sinceLoss += acked;
  }

  protected override congestionAvoidance(acked: number, _now: number): void {
    const { paths, self } = this.group.paths(this);
    let delta: number;
    switch (this.group.algorithm) {
      case 'lia':
        delta = liaIncrease(paths, self, acked);
        break;
      case 'olia':
        delta = oliaIncrease(paths, self, acked);
        break;
      case 'balia':
        delta = baliaIncrease(paths, self, acked);
        break;
    }
    this.window = Math.max(this.window + delta, MIN_WINDOW_SEGMENTS * this.mss);
  }

  protected override reducedThreshold(inFlight: number, now: number): number {
    this.lossSeen();
    if (this.group.algorithm !== 'balia') return super.reducedThreshold(inFlight, now);
    const { paths, self } = this.group.paths(this);
    return Math.floor(inFlight * (1 - baliaDecrease(paths, self)));
  }

  protected override timeoutThreshold(inFlight: number, now: number): number {
    this.lossSeen();
    return super.timeoutThreshold(inFlight, now);
  }

  private lossSeen(): void {
    this.betweenLosses = this.sinceLoss;
    this.sinceLoss = 0;
  }
}

// ------------------------------------------------------------------ per connection

/**
 * A connection's congestion control: hands each subflow's TCP connection its controller. The
 * engine may build a controller twice (at open, and again once the handshake settled the MSS);
 * the earlier one then leaves the group.
 */
export class ConnectionCongestion {
  readonly group: CoupledGroup | undefined;

  constructor(readonly name: MptcpCongestionName) {
    if (!isMptcpCongestionName(name)) {
      throw new InvalidArgumentError(
        `unknown MPTCP congestion control ${String(name)} (one of ${MPTCP_CONGESTION_NAMES.join(', ')})`,
      );
    }
    this.group = name === 'cubic' || name === 'newreno' ? undefined : new CoupledGroup(name);
  }

  /**
   * The factory one subflow's engine calls; `release()` takes its controller out of the group
   * when the subflow closes.
   */
  forSubflow(
    opts: CongestionControlOptions,
    active: () => boolean,
  ): { factory: (mss: number) => CongestionControl; release: () => void } {
    let current: CongestionControl | undefined;
    const release = () => {
      if (current instanceof CoupledController) current.leave();
      current = undefined;
    };
    const factory = (mss: number): CongestionControl => {
      release();
      const group = this.group;
      current =
        group === undefined
          ? createCongestionControl(this.name as 'cubic' | 'newreno', mss, opts)
          : group.create(mss, opts, active);
      return current;
    };
    return { factory, release };
  }
}

const perConnection = new WeakMap<object, ConnectionCongestion>();

/** The congestion control of connection `conn` (made on first use from its config). */
export function connectionCongestion(conn: {
  readonly config: { readonly congestion: MptcpCongestionName };
}) {
  let c = perConnection.get(conn);
  if (c === undefined) {
    c = new ConnectionCongestion(conn.config.congestion);
    perConnection.set(conn, c);
  }
  return c;
}
