import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import {
  type CongestionControl,
  type CongestionControlName,
  CUBIC_ALPHA,
  CUBIC_BETA,
  CUBIC_C,
  createCongestionControl,
  initialWindow,
} from '../src/stack/tcp/congestion.js';

const MSS = 1000;

/** Slow start with 2-MSS ACKs of a full window until cwnd reaches `bytes` (an even number of MSS). */
function slowStartTo(cc: CongestionControl, bytes: number, now = 0): void {
  for (let i = 0; i < 100_000 && cc.cwnd < bytes; i++) cc.onAck(2 * MSS, now, 100, cc.cwnd);
  assert.equal(cc.cwnd, bytes);
}

/**
 * A cwnd-limited sender: `rounds` round trips of `rtt` ms from `start`, each acknowledging the
 * window of its start one MSS at a time, evenly spread. Calls `each(now)` after every round and
 * returns the time of the first ACK and of the last.
 */
function runRounds(
  cc: CongestionControl,
  start: number,
  rtt: number,
  rounds: number,
  each?: (now: number, firstAck: number) => void,
): { firstAck: number; now: number } {
  let now = start;
  let firstAck: number | undefined;
  for (let r = 0; r < rounds; r++) {
    const n = Math.max(1, Math.floor(cc.cwnd / MSS));
    for (let i = 0; i < n; i++) {
      now += rtt / n;
      cc.onAck(MSS, now, rtt, cc.cwnd);
      firstAck ??= now;
    }
    each?.(now, firstAck ?? now);
  }
  return { firstAck: firstAck ?? start, now };
}

/** RFC 9438 eq. 1 and 2, in segments. */
function wCubic(t: number, wMax: number, cwndEpoch: number): number {
  const k = Math.cbrt((wMax - cwndEpoch) / CUBIC_C);
  return CUBIC_C * (t - k) ** 3 + wMax;
}

describe('congestion control: common behaviour', () => {
  for (const name of ['newreno', 'cubic'] as CongestionControlName[]) {
    it(`${name}: starts with the RFC 6928 initial window and no ssthresh`, () => {
      const cc = createCongestionControl(name, 1460);
      assert.equal(cc.name, name);
      assert.equal(cc.cwnd, 14_600);
      assert.equal(cc.ssthresh, Number.POSITIVE_INFINITY);
      // min(10*MSS, max(2*MSS, 14600)) for a jumbo MSS; a configured count wins.
      assert.equal(createCongestionControl(name, 9000).cwnd, 18_000);
      assert.equal(createCongestionControl(name, 9000, { initialCwndSegments: 10 }).cwnd, 90_000);
      assert.equal(initialWindow(536), 5360);
    });

    // RFC 3465's L = 2; CUBIC runs HyStart++, whose RFC 9406 §4.2 sets L = 8 for a sender that
    // does not pace (stretch ACKs of a whole batch would otherwise barely grow the window).
    const limit = name === 'cubic' ? 8 : 2;
    it(`${name}: slow start grows by the bytes acked, at most ${limit}*SMSS per ACK (RFC ${name === 'cubic' ? 9406 : 3465})`, () => {
      const cc = createCongestionControl(name, MSS);
      cc.onAck(MSS, 0, 50, 9 * MSS);
      assert.equal(cc.cwnd, 11 * MSS);
      cc.onAck(5 * MSS, 1, 50, 6 * MSS);
      assert.equal(cc.cwnd, (11 + Math.min(5, limit)) * MSS);
      const before = cc.cwnd;
      cc.onAck(20 * MSS, 2, 50, before);
      assert.equal(cc.cwnd, before + limit * MSS);
      // A full round of per-segment ACKs doubles the window.
      const start = cc.cwnd;
      runRounds(cc, 3, 50, 1);
      assert.equal(cc.cwnd, 2 * start);
    });

    it(`${name}: does not grow while the sender leaves the window unused`, () => {
      const cc = createCongestionControl(name, MSS);
      cc.onAck(MSS, 0, 50, 2 * MSS);
      assert.equal(cc.cwnd, 10 * MSS);
      slowStartTo(cc, 40 * MSS, 0);
      cc.onCongestionEvent(1, 40 * MSS);
      cc.onRecoveryEnd(2);
      const reduced = cc.cwnd;
      assert.equal(reduced, name === 'cubic' ? 28 * MSS : 20 * MSS);
      for (let i = 0; i < 100; i++) cc.onAck(MSS, 3 + i * 100, 50, 5 * MSS);
      assert.equal(cc.cwnd, reduced);
    });

    it(`${name}: collapses to one SMSS on RTO and keeps ssthresh on a repeated RTO (RFC 5681 §3.1)`, () => {
      const cc = createCongestionControl(name, MSS);
      slowStartTo(cc, 40 * MSS);
      const factor = name === 'cubic' ? CUBIC_BETA : 0.5;
      cc.onRto(1000, 40 * MSS);
      assert.equal(cc.cwnd, MSS);
      assert.equal(cc.ssthresh, 40 * MSS * factor);
      cc.onRto(3000, 40 * MSS);
      assert.equal(cc.cwnd, MSS);
      assert.equal(cc.ssthresh, 40 * MSS * factor);
      // Slow start again: the window doubles per round trip up to ssthresh, then grows slowly.
      const sizes: number[] = [];
      const { now } = runRounds(cc, 3000, 100, 5, () => sizes.push(cc.cwnd / MSS));
      assert.deepEqual(sizes.slice(0, 4), [2, 4, 8, 16]);
      const fifth = sizes[4] ?? 0;
      assert.ok(fifth >= Math.min(32, 40 * factor) && fifth < Math.min(32, 40 * factor) + 1, `cwnd ${fifth}`);
      runRounds(cc, now, 100, 1);
      const ssthresh = 40 * MSS * factor;
      assert.ok(cc.cwnd >= ssthresh && cc.cwnd <= ssthresh + 2 * MSS, `cwnd ${cc.cwnd}`);
      // A new ACK ended the timeout episode: the next RTO computes ssthresh afresh.
      cc.onRto(9000, 10 * MSS);
      assert.equal(cc.ssthresh, Math.max(10 * MSS * factor, 2 * MSS));
    });

    it(`${name}: never sets ssthresh below 2*SMSS`, () => {
      const cc = createCongestionControl(name, MSS);
      cc.onRto(0, MSS);
      assert.equal(cc.ssthresh, 2 * MSS);
      assert.equal(cc.cwnd, MSS);
      cc.onAck(MSS, 10, 100, MSS);
      assert.equal(cc.cwnd, 2 * MSS);
      cc.onCongestionEvent(20, 2 * MSS);
      assert.equal(cc.ssthresh, 2 * MSS);
      assert.equal(cc.cwnd, 2 * MSS);
    });
  }

  it('rejects a bad MSS, initial window or name', () => {
    assert.throws(() => createCongestionControl('cubic', 0), InvalidArgumentError);
    assert.throws(() => createCongestionControl('newreno', 1.5), InvalidArgumentError);
    assert.throws(
      () => createCongestionControl('cubic', MSS, { initialCwndSegments: 0 }),
      InvalidArgumentError,
    );
    assert.throws(() => createCongestionControl('vegas' as CongestionControlName, MSS), InvalidArgumentError);
  });
});

describe('NewReno (RFC 5681, RFC 3465)', () => {
  it('halves on a congestion event: ssthresh = cwnd = FlightSize / 2', () => {
    const cc = createCongestionControl('newreno', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(500, 100 * MSS);
    assert.equal(cc.ssthresh, 50 * MSS);
    assert.equal(cc.cwnd, 50 * MSS);
    cc.onRecoveryEnd(700);
    assert.equal(cc.cwnd, 50 * MSS);
  });

  it('never raises cwnd on a loss, even when FlightSize / 2 exceeds it (after a timeout)', () => {
    const cc = createCongestionControl('newreno', MSS);
    slowStartTo(cc, 40 * MSS);
    cc.onRto(0, 40 * MSS);
    cc.onAck(MSS, 10, 100, 40 * MSS);
    assert.equal(cc.cwnd, 2 * MSS);
    cc.onCongestionEvent(20, 39 * MSS);
    assert.equal(cc.ssthresh, 19.5 * MSS);
    assert.equal(cc.cwnd, 2 * MSS);
  });

  it('grows by one SMSS per round trip in congestion avoidance', () => {
    const cc = createCongestionControl('newreno', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryEnd(100);
    const seen: number[] = [];
    runRounds(cc, 100, 100, 10, () => seen.push(cc.cwnd / MSS));
    assert.deepEqual(seen, [51, 52, 53, 54, 55, 56, 57, 58, 59, 60]);
  });

  it('carries what is left of an ACK past ssthresh into congestion avoidance', () => {
    const cc = createCongestionControl('newreno', MSS);
    cc.onCongestionEvent(0, 24 * MSS);
    cc.onRto(1, 24 * MSS);
    assert.equal(cc.ssthresh, 12 * MSS);
    runRounds(cc, 1, 100, 3);
    assert.equal(cc.cwnd, 8 * MSS);
    // 7 ACKs of one SMSS: slow start to 12, then the rest counts towards the next SMSS.
    runRounds(cc, 400, 100, 1);
    assert.equal(cc.cwnd, 12 * MSS);
    runRounds(cc, 500, 100, 1);
    assert.equal(cc.cwnd, 13 * MSS);
  });
});

describe('CUBIC (RFC 9438)', () => {
  it('reduces to beta = 0.7 of cwnd on a congestion event (§4.6)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 100 * MSS);
    // The flight is within an SMSS of cwnd (a full-segment sender): cwnd is the base, as in Linux.
    cc.onCongestionEvent(0, 99.5 * MSS);
    assert.equal(cc.ssthresh, 70 * MSS);
    assert.equal(cc.cwnd, 70 * MSS);
  });

  it('follows W_cubic(t) = C(t-K)^3 + W_max through the concave and plateau regions (§4.2, §4.4)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryEnd(1000);
    const checks: [number, number, number][] = [];
    runRounds(cc, 1000, 100, 50, (now, firstAck) => {
      const t = (now - firstAck) / 1000;
      checks.push([t, cc.cwnd / MSS, wCubic(t, 100, 70)]);
    });
    // K = cbrt(30 / 0.4) = 4.2 s: the window climbs fast, then flattens just below W_max.
    for (const [t, cwnd, expected] of checks) {
      assert.ok(
        Math.abs(cwnd - expected) < 0.5,
        `t=${t.toFixed(2)}s cwnd=${cwnd} W_cubic=${expected.toFixed(2)}`,
      );
    }
    const at = (t: number) => checks.find(([tt]) => tt >= t)?.[1] ?? 0;
    assert.ok(at(1) > 86 && at(1) < 88.5, `cwnd ${at(1)} at 1 s`);
    assert.ok(at(4.2) > 99.5 && at(4.2) <= 100.5, `cwnd ${at(4.2)} at K`);
  });

  it('probes convexly past W_max, at most 1.5x the window per round trip (§4.5)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 1000 * MSS);
    cc.onCongestionEvent(0, 1000 * MSS);
    cc.onRecoveryEnd(0);
    const checks: [number, number][] = [];
    runRounds(cc, 0, 100, 150, (now, firstAck) => checks.push([(now - firstAck) / 1000, cc.cwnd / MSS]));
    // K = cbrt(300 / 0.4) = 9.09 s; at 14 s W_cubic = 0.4 * 4.9^3 + 1000 = 1047.7.
    const last = checks.at(-1);
    assert.ok(last !== undefined, 'no round recorded');
    const [t, cwnd] = last;
    assert.ok(Math.abs(cwnd - wCubic(t, 1000, 700)) < 1, `t=${t} cwnd=${cwnd}`);
    assert.ok(cwnd > 1040, `cwnd ${cwnd}`);
  });

  it('releases bandwidth with fast convergence when a loss comes below the last W_max (§4.7)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 1000 * MSS);
    cc.onCongestionEvent(0, 1000 * MSS);
    cc.onRecoveryEnd(10);
    assert.equal(cc.cwnd, 700 * MSS);
    // A second loss at 700 < W_max = 1000: W_max becomes 700 * (1 + 0.7) / 2 = 595, not 700.
    cc.onCongestionEvent(20, 700 * MSS);
    assert.equal(cc.cwnd, 490 * MSS);
    cc.onRecoveryEnd(30);
    const k = Math.cbrt((595 - 490) / CUBIC_C);
    const checks: [number, number][] = [];
    runRounds(cc, 30, 100, 70, (now, firstAck) => checks.push([(now - firstAck) / 1000, cc.cwnd / MSS]));
    const plateau = checks.find(([t]) => t >= k);
    assert.ok(plateau !== undefined, 'K never reached');
    assert.ok(Math.abs(plateau[1] - 595) < 1, `cwnd ${plateau[1]} at K=${k.toFixed(2)}s`);
    for (const [t, cwnd] of checks)
      assert.ok(Math.abs(cwnd - wCubic(t, 595, 490)) < 1, `t=${t} cwnd=${cwnd}`);
  });

  it('stays Reno-friendly at small RTTs: cwnd follows W_est when W_cubic lags (§4.3)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryEnd(0);
    const seen: number[] = [];
    // 1 ms round trips: in 20 ms W_cubic barely moves from 70 segments.
    const { firstAck, now } = runRounds(cc, 0, 1, 20, () => seen.push(cc.cwnd / MSS));
    const wc = wCubic((now - firstAck) / 1000, 100, 70);
    assert.ok(wc < 70.5, `W_cubic ${wc}`);
    // W_est grows by alpha_cubic = 3 * 0.3 / 1.7 = 0.53 segments per round trip.
    const expected = 70 + 20 * CUBIC_ALPHA;
    const last = seen.at(-1) ?? 0;
    assert.ok(Math.abs(last - expected) < 0.5, `cwnd ${last} vs W_est ${expected.toFixed(2)}`);
    // Once W_est regains cwnd_prior (100 segments), it grows like Reno: one segment per round.
    const more: number[] = [];
    runRounds(cc, now, 1, 80, () => more.push(cc.cwnd / MSS));
    const a = more[60] ?? 0;
    const b = more[70] ?? 0;
    assert.ok(a > 100 && Math.abs(b - a - 10) < 0.5, `${a} -> ${b}`);
  });

  it('after a timeout, restarts avoidance with K = 0 and W_max = cwnd at its start (§4.8)', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 1000 * MSS);
    cc.onRto(0, 1000 * MSS);
    assert.equal(cc.cwnd, MSS);
    assert.equal(cc.ssthresh, 700 * MSS);
    // Slow start back to ssthresh (10 round trips), then the convex curve from cwnd_epoch = 700.
    let epoch: number | undefined;
    const checks: [number, number][] = [];
    runRounds(cc, 0, 100, 75, (now) => {
      if (epoch === undefined && cc.cwnd >= 700 * MSS) epoch = now;
      if (epoch !== undefined) checks.push([(now - epoch) / 1000, cc.cwnd / MSS]);
    });
    const last = checks.at(-1);
    assert.ok(last !== undefined, 'no round recorded');
    const [t, cwnd] = last;
    // W_cubic(t) = 0.4 t^3 + 700 (K = 0); by 6 s it is well above W_est at 100 ms round trips.
    // The epoch began with the first ACK at ssthresh, within the round measured from: +-0.1 s.
    assert.ok(t > 5.5, `t=${t}`);
    const low = 700 + CUBIC_C * (t - 0.1) ** 3;
    const high = 700 + CUBIC_C * (t + 0.1) ** 3;
    assert.ok(cwnd > low - 1 && cwnd < high + 1, `t=${t} cwnd=${cwnd} expected ${low}..${high}`);
  });

  it('holds the cubic clock still while the sender is application-limited', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryEnd(0);
    const { now } = runRounds(cc, 0, 100, 10);
    const before = cc.cwnd;
    // Ten seconds of ACKs for a trickle: no growth, and no jump when the window is used again.
    for (let i = 1; i <= 100; i++) cc.onAck(MSS, now + i * 100, 100, MSS);
    assert.equal(cc.cwnd, before);
    runRounds(cc, now + 10_000, 100, 1);
    assert.ok(cc.cwnd - before < 3 * MSS, `${before} -> ${cc.cwnd}`);
  });

  it('does not count an idle period as cubic time', () => {
    const cc = createCongestionControl('cubic', MSS);
    slowStartTo(cc, 100 * MSS);
    cc.onCongestionEvent(0, 100 * MSS);
    cc.onRecoveryEnd(0);
    const { now } = runRounds(cc, 0, 100, 10);
    // Everything acknowledged, then ten seconds of silence before the next full window.
    cc.onAck(MSS, now + 1, 100, MSS);
    const before = cc.cwnd;
    runRounds(cc, now + 10_000, 100, 1);
    assert.ok(cc.cwnd - before < 3 * MSS, `${before} -> ${cc.cwnd}`);
  });
});
