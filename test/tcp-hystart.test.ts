/**
 * HyStart++ (RFC 9406) in CUBIC's initial slow start (src/stack/tcp/hystart.ts): slow start ends
 * when the round trip grows, through Conservative Slow Start, before a deep queue overflows.
 * What it buys over deep queues: simult_flows.sh's matrix in test/mptcp-multipath-sim.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CongestionControl, createCongestionControl } from '../src/stack/tcp/congestion.js';
import { HYSTART_CSS_ROUNDS, HyStartPlusPlus } from '../src/stack/tcp/hystart.js';

const MSS = 1000;

/**
 * One round trip of a cwnd-limited sender: the window at its start acknowledged one MSS at a
 * time, each ACK with an RTT sample of `rtt(i)` ms while the sender keeps the window full.
 * Returns the window before the round.
 */
function round(cc: CongestionControl, now: number, rtt: (i: number) => number): number {
  const before = cc.cwnd;
  const n = Math.max(1, Math.floor(before / MSS));
  for (let i = 0; i < n; i++) cc.onAck(MSS, now + i, rtt(i), cc.cwnd);
  return before;
}

/** `count` ACKs of one MSS with `rtt` each and 10 MSS in flight: the phases they returned. */
function phasesOf(h: HyStartPlusPlus): (count: number, rtt: number) => string[] {
  return (count, rtt) => {
    const phases = new Set<string>();
    for (let i = 0; i < count; i++) phases.add(h.onAck(MSS, rtt, 10 * MSS));
    return [...phases];
  };
}

describe('HyStart++ (RFC 9406)', () => {
  it('keeps doubling while the round trip stays flat', () => {
    const cc = createCongestionControl('cubic', MSS);
    for (let r = 0; r < 8; r++) round(cc, r * 100, () => 50);
    assert.equal(cc.ssthresh, Number.POSITIVE_INFINITY);
    assert.equal(cc.cwnd, 10 * MSS * 2 ** 8);
  });

  it('a round whose minimum RTT grew by RttThresh enters CSS (a quarter of the growth), then avoidance', () => {
    const h = new HyStartPlusPlus();
    const feed = phasesOf(h);
    // One ACK per MSS with 10 MSS in flight: windowEnd is SND.NXT when a round begins, so after
    // the first ACK (which opens round 1) each round is 9 ACKs, its last one closing it.
    feed(1, 40);
    feed(9, 40);
    feed(9, 40);
    // RttThresh = max(4, min(40 / 8, 16)) = 5 ms: a round at 44 ms stays in slow start.
    assert.deepEqual(feed(9, 44), ['slow-start']);
    // At 49.5 ms (>= 40 + 5, also >= 44 + 5.5) the 8th sample of the round turns it into CSS.
    assert.deepEqual(feed(9, 49.5), ['slow-start', 'css']);
    assert.equal(h.cssEntered, 1);
    for (let r = 2; r < HYSTART_CSS_ROUNDS; r++) assert.deepEqual(feed(9, 49.5), ['css'], `round ${r}`);
    // The end of the fifth round in CSS: congestion avoidance.
    assert.deepEqual(feed(9, 49.5), ['css', 'avoidance']);
    assert.equal(h.onAck(MSS, 10, 10 * MSS), 'avoidance');

    // In a controller: a jump in the round trip slows the growth to a quarter, then ends slow start.
    const cc = createCongestionControl('cubic', MSS);
    for (let r = 0; r < 3; r++) round(cc, r * 100, () => 40);
    const w = cc.cwnd;
    round(cc, 300, () => 60);
    round(cc, 400, () => 60);
    assert.equal(cc.ssthresh, Number.POSITIVE_INFINITY);
    assert.ok(cc.cwnd < 2.5 * w, `CSS: ${w} -> ${cc.cwnd} in two rounds (slow start: ${4 * w})`);
    for (let r = 0; r < HYSTART_CSS_ROUNDS; r++) round(cc, 500 + r * 100, () => 60);
    assert.ok(Number.isFinite(cc.ssthresh), 'left slow start');
    assert.ok(cc.cwnd >= cc.ssthresh);
  });

  it('a round trip that grows a little each round enters CSS once it is RttThresh above the lowest round', () => {
    // Slow growth (stretch ACKs, L = 8 SMSS): the queue adds 2 ms a round, never RttThresh
    // (5 ms at 40) over the round before; against the lowest round minimum (40 ms) it does.
    const h = new HyStartPlusPlus();
    const feed = phasesOf(h);
    feed(1, 40);
    feed(9, 40);
    assert.deepEqual(feed(9, 42), ['slow-start']);
    assert.deepEqual(feed(9, 44), ['slow-start']);
    assert.deepEqual(feed(9, 46), ['slow-start', 'css']);
    assert.equal(h.cssEntered, 1);
  });

  it('a CSS round whose minimum RTT falls back below the baseline resumes slow start', () => {
    const h = new HyStartPlusPlus();
    const feed = (count: number, rtt: number, inFlight: number) => {
      let phase = h.state;
      for (let i = 0; i < count; i++) phase = h.onAck(MSS, rtt, inFlight);
      return phase;
    };
    feed(10, 40, 10 * MSS);
    feed(20, 40, 20 * MSS);
    assert.equal(feed(40, 60, 40 * MSS), 'css');
    assert.equal(h.cssEntered, 1);
    // The next round's samples are back at 40 ms: a false alarm.
    assert.equal(feed(20, 40, 40 * MSS), 'slow-start');
    assert.equal(h.cssAborted, 1);
  });

  it('only in the initial slow start: after a loss or a timeout, plain slow start', () => {
    const cc = createCongestionControl('cubic', MSS);
    round(cc, 0, () => 40);
    cc.onRto(100, 20 * MSS);
    // Rising RTTs no longer matter: the window doubles per round up to ssthresh (14 MSS).
    round(cc, 200, () => 40);
    round(cc, 300, () => 80);
    round(cc, 400, () => 160);
    assert.equal(cc.ssthresh, 14 * MSS);
    assert.ok(cc.cwnd >= 8 * MSS, `cwnd ${cc.cwnd}`);
    // Off on request, and never for NewReno.
    const off = createCongestionControl('cubic', MSS, { hystart: false });
    const reno = createCongestionControl('newreno', MSS);
    for (const c of [off, reno]) {
      round(c, 0, () => 40);
      round(c, 100, () => 40);
      for (let r = 0; r < 8; r++) round(c, 200 + r * 100, () => 60 + r * 20);
      assert.equal(c.ssthresh, Number.POSITIVE_INFINITY, c.name);
    }
  });
});
