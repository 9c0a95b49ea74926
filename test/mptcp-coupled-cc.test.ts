/**
 * Coupled congestion control (src/stack/mptcp/coupled-cc.ts): each increase formula against
 * values computed by hand for two subflows, the controllers over a shared group (slow start and
 * recovery per subflow, the avoidance increase coupled, BALIA's coupled decrease), and the
 * per-connection factory the subflows use.
 *
 * The two subflows of the hand computations (MSS 1460):
 *   A: cwnd 14600 (10 segments), RTT 10 ms, l_A = 100000 bytes between losses
 *   B: cwnd 29200 (20 segments), RTT 100 ms, l_B = 50000 bytes
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import {
  baliaAlpha,
  baliaDecrease,
  baliaIncrease,
  ConnectionCongestion,
  CoupledGroup,
  isMptcpCongestionName,
  liaAlpha,
  liaIncrease,
  oliaAlphas,
  oliaIncrease,
  type PathState,
} from '../src/stack/mptcp/coupled-cc.js';
import { Cubic } from '../src/stack/tcp/congestion.js';
import { Sim } from './support/sim.js';

const MSS = 1460;
const A: PathState = { cwnd: 14_600, mss: MSS, rtt: 10, lossInterval: 100_000 };
const B: PathState = { cwnd: 29_200, mss: MSS, rtt: 100, lossInterval: 50_000 };
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual}, expected ${expected}`);

describe('LIA (RFC 6356)', () => {
  it('alpha = cwnd_total * max(cwnd_i/rtt_i^2) / (sum cwnd_i/rtt_i)^2', () => {
    // 43800 * max(146, 2.92) / (1460 + 292)^2 = 6394800 / 3069504 = 25/12.
    close(liaAlpha([A, B]), 25 / 12, 'alpha');
  });

  it('increase = min(alpha * acked * MSS / cwnd_total, acked * MSS / cwnd_i)', () => {
    // A: min(25/12 * 1460 * 1460 / 43800, 1460 * 1460 / 14600) = min(101.389, 146).
    close(liaIncrease([A, B], 0, MSS), 3650 / 36, 'A');
    // B: min(101.389, 1460 * 1460 / 29200 = 73): the uncoupled cap binds.
    close(liaIncrease([A, B], 1, MSS), 73, 'B');
  });

  it("one subflow: Reno's MSS^2 / cwnd per MSS acknowledged", () => {
    close(liaAlpha([A]), 1, 'alpha');
    close(liaIncrease([A], 0, MSS), 146, 'increase');
  });
});

describe('OLIA (Khalili et al.)', () => {
  it('alpha_r: +1/(|R||B\\M|) on the best path not of largest window, -1/(|R||M|) on the largest', () => {
    // l/rtt^2: A 1000, B 5: B = {A}; the largest window is B's: M = {B}; B\M = {A}.
    assert.deepEqual(oliaAlphas([A, B]), [0.5, -0.5]);
    // The best path is also the largest: B\M empty, all alphas 0.
    assert.deepEqual(oliaAlphas([A, { ...B, lossInterval: 20_000_000 }]), [0, 0]);
  });

  it('increase per segment = (w_r/rtt_r^2) / (sum w_p/rtt_p)^2 + alpha_r / w_r', () => {
    // sum w/rtt = 10/10 + 20/100 = 1.2. A: (10/100)/1.44 + 0.5/10 = 43/360 per segment.
    close(oliaIncrease([A, B], 0, MSS), (1460 * 43) / 360, 'A');
    // B: (20/10000)/1.44 - 0.5/20 = 1/720 - 18/720: the largest window shrinks.
    close(oliaIncrease([A, B], 1, MSS), (-1460 * 17) / 720, 'B');
  });

  it("one subflow: Reno's 1/w per segment", () => {
    close(oliaIncrease([A], 0, MSS), 146, 'increase');
  });
});

describe('BALIA (Peng et al.)', () => {
  it('alpha_r = max_k x_k / x_r with x = w / rtt', () => {
    // x_A = 10/10 = 1, x_B = 20/100 = 0.2.
    close(baliaAlpha([A, B], 0), 1, 'A');
    close(baliaAlpha([A, B], 1), 5, 'B');
  });

  it('increase per segment = x_r / (rtt_r (sum x)^2) * (1 + alpha_r)/2 * (4 + alpha_r)/5', () => {
    // A: 1 / (10 * 1.44) * 1 * 1 = 5/72 per segment.
    close(baliaIncrease([A, B], 0, MSS), (1460 * 5) / 72, 'A');
    // B: 0.2 / (100 * 1.44) * 3 * 1.8 = 0.0075 per segment.
    close(baliaIncrease([A, B], 1, MSS), 1460 * 0.0075, 'B');
  });

  it('decrease on loss = w_r / 2 * min(alpha_r, 1.5)', () => {
    close(baliaDecrease([A, B], 0), 0.5, 'A');
    close(baliaDecrease([A, B], 1), 0.75, 'B');
  });

  it("one subflow: Reno's 1/w per segment", () => {
    close(baliaIncrease([A], 0, MSS), 146, 'increase');
  });
});

/** Two controllers of `group` in congestion avoidance at A's and B's windows and RTTs. */
function twoInAvoidance(group: CoupledGroup) {
  const a = group.create(MSS);
  const b = group.create(MSS);
  a.onAck(0, 0, 10, 0); // RTT samples only
  b.onAck(0, 0, 100, 0);
  // A: ssthresh = 29200 / 2 = its window 14600: avoidance from here.
  a.onCongestionEvent(0, 29_200);
  a.onRecoveryEnd(0);
  // B: ssthresh 29200 (BALIA takes 3/4 of a window that is not the fastest: x_B = 0.1 < x_A = 1),
  // then slow start by 2 * MSS per ACK up to it.
  b.onCongestionEvent(0, group.algorithm === 'balia' ? 4 * 29_200 : 2 * 29_200);
  b.onRecoveryEnd(0);
  for (let i = 0; i < 5; i++) b.onAck(2 * MSS, 1, 100, 29_200);
  assert.equal(a.cwnd, 14_600);
  assert.equal(b.cwnd, 29_200);
  assert.equal(b.ssthresh, 29_200);
  return { a, b };
}

describe('coupled controllers over a group', () => {
  it('LIA: each ACK in avoidance grows the window by the coupled increase', () => {
    const { a, b } = twoInAvoidance(new CoupledGroup('lia'));
    assert.equal(a.name, 'lia');
    a.onAck(MSS, 2, 10, 14_600);
    assert.equal(a.cwnd, 14_600 + Math.floor(3650 / 36));
    // B now sees A's new window: min(alpha' * MSS^2 / total', 73) is still the cap 73.
    b.onAck(MSS, 2, 100, 29_200);
    assert.equal(b.cwnd, 29_200 + 73);
  });

  it('OLIA: loss intervals from acknowledged bytes, the largest window shrinks', () => {
    const { a, b } = twoInAvoidance(new CoupledGroup('olia'));
    // l_A: 0 since its loss; l_B: 5 * 2920 = 14600 since its loss. l/rtt^2: A 0, B 1.46: B is
    // both best and largest (B\M empty): alphas 0, so the increase is the first term alone.
    const before = b.cwnd;
    b.onAck(MSS, 2, 100, 29_200);
    const sum = 10 / 10 + 20 / 100;
    assert.equal(b.cwnd, Math.floor(before + (MSS * (20 / 100 / 100)) / (sum * sum)));
    // A acknowledges 100 kB: A becomes the best path, not the largest: alpha_A = +1/2.
    a.onAck(100_000, 3, 10, 14_600);
    const grown = a.cwnd;
    assert.ok(grown > 14_600);
    // B, the largest window, now gets alpha_B = -1/2 and shrinks on an ACK.
    const wb = b.cwnd;
    b.onAck(MSS, 4, 100, wb);
    assert.ok(b.cwnd < wb, `${b.cwnd} < ${wb}`);
  });

  it("BALIA: the decrease is coupled (B's window to a quarter), A halves", () => {
    const { a, b } = twoInAvoidance(new CoupledGroup('balia'));
    b.onCongestionEvent(5, 29_200);
    assert.equal(b.ssthresh, 7300);
    assert.equal(b.cwnd, 7300);
    a.onCongestionEvent(5, 14_600);
    // x_A = 10/10 = 1 is the largest rate: alpha_A = 1, a halving.
    assert.equal(a.ssthresh, 7300);
  });

  it('slow start and the RTO loss window stay per subflow', () => {
    const group = new CoupledGroup('lia');
    const a = group.create(MSS);
    group.create(MSS);
    a.onAck(2 * MSS, 0, 10, 14_600);
    assert.equal(a.cwnd, 14_600 + 2 * MSS); // slow start: + min(acked, 2 MSS)
    a.onRto(1, 17_520);
    assert.equal(a.cwnd, MSS);
    assert.equal(a.ssthresh, 8760);
  });

  it('inactive members (stale, closed, joins not yet established) are left out of the sums', () => {
    const group = new CoupledGroup('lia');
    let bActive = true;
    const a = group.create(MSS);
    const b = group.create(MSS, undefined, () => bActive);
    a.onAck(0, 0, 10, 0);
    b.onAck(0, 0, 100, 0);
    assert.equal(group.paths(a).paths.length, 2);
    bActive = false;
    assert.equal(group.paths(a).paths.length, 1);
    // The member asking is always counted, even when its own test says inactive.
    assert.equal(group.paths(b).paths.length, 2);
    b.leave();
    assert.equal(group.size, 1);
  });
});

describe('per-connection factory', () => {
  it('a coupled name: one group; a controller made again (MSS settled) replaces the first', () => {
    const cc = new ConnectionCongestion('olia');
    const s1 = cc.forSubflow({ initialCwndSegments: 10 }, () => true);
    const s2 = cc.forSubflow({ initialCwndSegments: 4 }, () => true);
    s1.factory(536);
    const c1 = s1.factory(MSS);
    const c2 = s2.factory(MSS);
    assert.equal(cc.group?.size, 2);
    assert.equal(c1.name, 'olia');
    assert.equal(c1.cwnd, 10 * MSS);
    assert.equal(c2.cwnd, 4 * MSS);
    s1.release();
    assert.equal(cc.group?.size, 1);
  });

  it("'cubic' and 'newreno': the engine's own controllers, uncoupled", () => {
    const cubic = new ConnectionCongestion('cubic');
    assert.equal(cubic.group, undefined);
    const c = cubic.forSubflow({}, () => true).factory(MSS);
    assert.ok(c instanceof Cubic);
    assert.equal(new ConnectionCongestion('newreno').forSubflow({}, () => true).factory(MSS).name, 'newreno');
  });

  it('names are validated: the constructor and connect() name the choices', () => {
    assert.ok(isMptcpCongestionName('balia'));
    assert.ok(!isMptcpCongestionName('bbr'));
    assert.throws(() => new ConnectionCongestion('bbr' as never), InvalidArgumentError);
    const sim = new Sim({ seed: 1 });
    assert.throws(
      () => sim.client.connect({ host: sim.serverHost, port: 80, mptcp: { congestion: 'bbr' as never } }),
      (e: unknown) => e instanceof InvalidArgumentError && /lia, olia, balia, cubic, newreno/.test(e.message),
    );
    assert.throws(
      () => sim.server.listen({ port: 80, mptcp: { congestion: 'vegas' as never } }),
      InvalidArgumentError,
    );
  });
});
