import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import { RttEstimator } from '../src/stack/tcp/rtt.js';

describe('RFC 6298 RTT estimator', () => {
  it('uses the initial RTO of 1 s before any sample (§2.1)', () => {
    const est = new RttEstimator();
    assert.equal(est.rto, 1000);
    assert.equal(est.srtt, undefined);
    assert.equal(est.rttvar, undefined);
    assert.equal(est.hasSample, false);
  });

  it('takes SRTT = R and RTTVAR = R/2 from the first sample (§2.2)', () => {
    const est = new RttEstimator();
    est.sample(100);
    assert.equal(est.srtt, 100);
    assert.equal(est.rttvar, 50);
    // RTO = SRTT + max(G, K*RTTVAR, minRto) = 100 + max(1, 200, 200).
    assert.equal(est.rto, 300);
    assert.equal(est.hasSample, true);
  });

  it('updates RTTVAR with the old SRTT, then SRTT, for later samples (§2.3)', () => {
    const est = new RttEstimator({ minRto: 0 });
    est.sample(100);
    est.sample(200);
    // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5.
    assert.equal(est.rttvar, 62.5);
    assert.equal(est.srtt, 112.5);
    assert.equal(est.rto, 112.5 + 4 * 62.5);
    est.sample(60);
    // RTTVAR = 3/4 * 62.5 + 1/4 * |112.5 - 60| = 60; SRTT = 7/8 * 112.5 + 1/8 * 60 = 105.9375.
    assert.equal(est.rttvar, 60);
    assert.equal(est.srtt, 105.9375);
    assert.equal(est.rto, 105.9375 + 240);
    assert.equal(est.latest, 60);
    assert.equal(est.minRtt, 60);
  });

  it('never lets the variance term fall below the clock granularity G = 1 ms', () => {
    const est = new RttEstimator({ minRto: 0 });
    for (let i = 0; i < 200; i++) est.sample(10);
    assert.ok((est.rttvar ?? 1) < 0.001, `rttvar ${est.rttvar}`);
    assert.equal(est.rto, 10 + 1);
  });

  it('keeps the RTO at least minRto above SRTT (Linux-style minimum, default 200 ms)', () => {
    const est = new RttEstimator();
    for (let i = 0; i < 50; i++) est.sample(5);
    assert.equal(est.rto, 205);
    const rfc = new RttEstimator({ minRto: 1000 });
    rfc.sample(5);
    assert.equal(rfc.rto, 1005);
  });

  it('doubles the RTO on each backoff and clamps it at maxRto (§5.5, §2.5)', () => {
    const est = new RttEstimator({ maxRto: 5000 });
    est.sample(100);
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) {
      seen.push(est.rto);
      est.backoff();
    }
    assert.deepEqual(seen, [300, 600, 1200, 2400, 4800, 5000, 5000, 5000]);
    assert.equal(est.backoffs, 8);
  });

  it('backs off the initial RTO too, up to the default 120 s cap', () => {
    const est = new RttEstimator();
    est.backoff();
    assert.equal(est.rto, 2000);
    for (let i = 0; i < 2000; i++) est.backoff();
    assert.equal(est.rto, 120_000);
  });

  it('ends the backoff with a new sample or resetBackoff (Karn: the sender decides)', () => {
    const est = new RttEstimator();
    est.sample(100);
    est.backoff();
    est.backoff();
    assert.equal(est.rto, 1200);
    est.resetBackoff();
    assert.equal(est.rto, 300);
    est.backoff();
    est.sample(100);
    assert.equal(est.backoffs, 0);
    // RTTVAR = 37.5 now, so minRto sets the variance term: 100 + 200.
    assert.equal(est.rto, 300);
  });

  it('clamps a huge RTT at maxRto', () => {
    const est = new RttEstimator();
    est.sample(100_000);
    assert.equal(est.rto, 120_000);
  });

  it('ignores negative and non-finite samples', () => {
    const est = new RttEstimator();
    est.sample(-5);
    est.sample(Number.NaN);
    est.sample(Number.POSITIVE_INFINITY);
    assert.equal(est.hasSample, false);
    assert.equal(est.rto, 1000);
  });

  it('rejects inconsistent options', () => {
    assert.throws(() => new RttEstimator({ minRto: 500, maxRto: 100 }), InvalidArgumentError);
    assert.throws(() => new RttEstimator({ initialRto: 0 }), InvalidArgumentError);
  });
});
