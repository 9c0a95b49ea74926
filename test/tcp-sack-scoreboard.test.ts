import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../src/errors.js';
import { type NextSegment, type SackBlock, SackScoreboard } from '../src/stack/tcp/sack-scoreboard.js';
import { seqAdd, seqDiff } from '../src/stack/wire/seqnum.js';

const MSS = 100;

/** Blocks given as offsets from `base`. */
function blocks(base: number, ...pairs: [number, number][]): SackBlock[] {
  return pairs.map(([l, r]) => ({ left: seqAdd(base, l), right: seqAdd(base, r) }));
}

/** A segment as offsets from `base`, for readable assertions. */
function rel(base: number, seg: NextSegment | undefined): [string, number, number] | undefined {
  return seg === undefined ? undefined : [seg.kind, seqDiff(seg.left, base), seqDiff(seg.right, base)];
}

/**
 * Ten segments [0, 1000) sent; the peer has 1-2, 3-4, 5-6, 7-8 (holes at 0, 2, 4, 6 and 8-9).
 * From the top: 7-8 (1 range, 100 bytes), 5-6 (2, 200), 3-4 (3 ranges): IsLost up to 300.
 */
function fourHoles(base: number): SackScoreboard {
  const sb = new SackScoreboard(base, MSS);
  sb.onSend(seqAdd(base, 1000));
  sb.update(base, blocks(base, [100, 200]));
  sb.update(base, blocks(base, [300, 400], [100, 200]));
  sb.update(base, blocks(base, [500, 600], [300, 400], [100, 200]));
  sb.update(base, blocks(base, [700, 800], [500, 600], [300, 400]));
  return sb;
}

describe('RFC 6675 SACK scoreboard', () => {
  it('declares a single loss lost once more than 2 SMSS above it are SACKed', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(1500);
    assert.equal(sb.update(1000, [{ left: 1100, right: 1200 }]).newlySacked, 100);
    assert.equal(sb.isLost(1000), false);
    sb.update(1000, [{ left: 1100, right: 1300 }]);
    // Exactly (DupThresh - 1) * SMSS is not "more than".
    assert.equal(sb.isLost(1000), false);
    assert.equal(sb.update(1000, [{ left: 1100, right: 1400 }]).newlySacked, 100);
    assert.equal(sb.isLost(1000), true);
    assert.equal(sb.isLost(1099), true);
    assert.equal(sb.isLost(1100), false, 'SACKed bytes are not lost');
    assert.equal(sb.isLost(1400), false, 'nothing SACKed above');
    assert.equal(sb.lostEdge(), 1100);
  });

  it('declares a loss lost below DupThresh discontiguous SACKed ranges, whatever their size', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(1100);
    sb.update(1000, [
      { left: 1010, right: 1020 },
      { left: 1030, right: 1040 },
    ]);
    assert.equal(sb.isLost(1000), false);
    sb.update(1000, [{ left: 1050, right: 1060 }]);
    assert.equal(sb.isLost(1000), true);
    assert.equal(sb.isLost(1025), false, 'only two ranges above');
  });

  for (const [label, base] of [
    ['', 1000],
    [' across the 2^32 wrap', 0xffff_ffff - 250],
  ] as const) {
    it(`returns NextSeg in RFC 6675 rule order${label}`, () => {
      const sb = fourHoles(base);
      assert.equal(sb.rangeCount, 4);
      assert.equal(sb.sackedBytes, 400);
      assert.equal(seqDiff(sb.highestSacked ?? 0, base), 800);
      assert.equal(seqDiff(sb.lostEdge(), base), 300);
      sb.enterRecovery();
      assert.equal(sb.recoveryPoint, seqAdd(base, 1000));
      const order: ([string, number, number] | undefined)[] = [];
      for (let i = 0; i < 8; i++) {
        const seg = sb.nextSeg(0);
        order.push(rel(base, seg));
        if (seg === undefined) break;
        sb.commit(seg);
      }
      assert.deepEqual(order, [
        ['lost', 0, 100], // rule 1
        ['lost', 200, 300],
        ['unsacked', 400, 500], // rule 3: below the highest SACKed byte, not yet lost
        ['unsacked', 600, 700],
        ['rescue', 900, 1000], // rule 4: once, ending at the highest outstanding byte
        undefined,
      ]);
      assert.equal(seqDiff(sb.highRxt, base), 700);
      assert.equal(sb.rescueRxt, seqAdd(base, 1000));
    });

    it(`rule 4 never rescues bytes already retransmitted in this recovery${label}`, () => {
      const sb = new SackScoreboard(base, MSS);
      sb.onSend(seqAdd(base, 1000));
      // Only the first segment is missing; the tail is SACKed.
      sb.update(base, blocks(base, [100, 1000]));
      sb.enterRecovery();
      const first = sb.nextSeg(0);
      assert.deepEqual(rel(base, first), ['lost', 0, 100]);
      sb.commit(first as NextSegment);
      // The highest un-SACKed byte (99) is below HighRxt: nothing is left to rescue.
      assert.equal(sb.nextSeg(0), undefined);
      assert.equal(sb.rescueRxt, undefined);
    });

    it(`prefers lost data, then new data, over rule 3${label}`, () => {
      const sb = fourHoles(base);
      sb.enterRecovery();
      const first = sb.nextSeg(5000);
      assert.deepEqual(rel(base, first), ['lost', 0, 100]);
      sb.commit(first as NextSegment);
      sb.commit(sb.nextSeg(5000) as NextSegment);
      const fresh = sb.nextSeg(5000);
      assert.deepEqual(rel(base, fresh), ['new', 1000, 1100]);
      sb.commit(fresh as NextSegment);
      assert.equal(sb.highData, seqAdd(base, 1100));
      // Less new data than a segment, or a larger segment asked for.
      assert.deepEqual(rel(base, sb.nextSeg(30)), ['new', 1100, 1130]);
      assert.deepEqual(rel(base, sb.nextSeg(5000, 250)), ['new', 1100, 1350]);
    });

    it(`computes pipe per SetPipe as retransmissions go out${label}`, () => {
      const sb = fourHoles(base);
      // Not lost and not SACKed: 400-500, 600-700, 800-1000.
      assert.equal(sb.pipe(), 400);
      sb.enterRecovery();
      sb.commit(sb.nextSeg(0) as NextSegment);
      assert.equal(sb.pipe(), 500, 'the retransmitted 0-100 is in flight again');
      sb.commit(sb.nextSeg(0) as NextSegment);
      assert.equal(sb.pipe(), 600);
      sb.commit(sb.nextSeg(0) as NextSegment);
      // 400-500 counts twice: not lost, and below HighRxt.
      assert.equal(sb.pipe(), 700);
    });
  }

  it('takes a larger piece of a lost hole when asked, never past the hole or the lost edge', () => {
    const sb = new SackScoreboard(0, MSS);
    sb.onSend(2000);
    sb.update(0, [{ left: 500, right: 900 }]);
    sb.enterRecovery();
    assert.deepEqual(rel(0, sb.nextSeg(0, 1000)), ['lost', 0, 500]);
    assert.deepEqual(rel(0, sb.nextSeg(0, 200)), ['lost', 0, 200]);
  });

  it('trims SACKed ranges on a cumulative ACK, also inside a range', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(2000);
    sb.update(1000, [
      { left: 1100, right: 1200 },
      { left: 1300, right: 1400 },
      { left: 1500, right: 1800 },
    ]);
    assert.equal(sb.sackedBytes, 500);
    sb.enterRecovery();
    sb.commit(sb.nextSeg(0) as NextSegment);
    assert.equal(sb.highRxt, 1100);
    sb.update(1150, []);
    assert.equal(sb.sndUna, 1150);
    assert.deepEqual(sb.ranges(), [
      { left: 1150, right: 1200 },
      { left: 1300, right: 1400 },
      { left: 1500, right: 1800 },
    ]);
    assert.equal(sb.sackedBytes, 450);
    assert.equal(sb.highRxt, 1150, 'HighRxt never below HighACK');
    sb.update(1400, []);
    assert.deepEqual(sb.ranges(), [{ left: 1500, right: 1800 }]);
    assert.equal(sb.sackedBytes, 300);
    sb.update(2000, []);
    assert.deepEqual(sb.ranges(), []);
    assert.equal(sb.sackedBytes, 0);
    assert.equal(sb.highestSacked, undefined);
    assert.equal(sb.recoveryPoint, undefined, 'recovery point reached');
    assert.equal(sb.pipe(), 0);
  });

  it('reports a D-SACK below the cumulative ACK and ignores it', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(1500);
    const r = sb.update(1000, [{ left: 900, right: 1000 }]);
    assert.deepEqual(r, { newlySacked: 0, dsack: { left: 900, right: 1000 }, ignored: 0 });
    assert.equal(sb.rangeCount, 0);
  });

  it('reports a D-SACK inside the second block (RFC 2883 §4) without counting it twice', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(1500);
    const r = sb.update(1000, [
      { left: 1100, right: 1200 },
      { left: 1100, right: 1300 },
    ]);
    assert.deepEqual(r.dsack, { left: 1100, right: 1200 });
    assert.equal(r.newlySacked, 200);
    assert.deepEqual(sb.ranges(), [{ left: 1100, right: 1300 }]);
  });

  it('ignores blocks beyond SND.NXT, empty or inverted ones, and clips those straddling SND.UNA', () => {
    const sb = new SackScoreboard(1000, MSS);
    sb.onSend(1500);
    sb.update(1200, []);
    const r = sb.update(1100, [
      { left: 1400, right: 1600 },
      { left: 1300, right: 1300 },
      { left: 1350, right: 1320 },
      { left: 1150, right: 1250 },
      { left: 1000, right: 1100 },
    ]);
    assert.equal(r.ignored, 4);
    assert.equal(r.newlySacked, 50);
    assert.deepEqual(sb.ranges(), [{ left: 1200, right: 1250 }]);
    assert.equal(sb.sndUna, 1200, 'an old ACK does not move SND.UNA back');
    // An ACK for data never sent does not move SND.UNA either.
    sb.update(1600, []);
    assert.equal(sb.sndUna, 1200);
  });

  it('after an RTO, resends everything outstanding and not SACKed, in order', () => {
    const sb = new SackScoreboard(0, MSS);
    sb.onSend(600);
    sb.update(0, [{ left: 300, right: 400 }]);
    assert.equal(sb.isLost(0), false);
    sb.onRto();
    assert.equal(sb.isLost(0), true);
    assert.equal(sb.isLost(500), true);
    assert.equal(sb.pipe(), 0);
    const sent: ([string, number, number] | undefined)[] = [];
    for (let i = 0; i < 10; i++) {
      const seg = sb.nextSeg(0);
      if (seg === undefined) break;
      sent.push(rel(0, seg));
      sb.commit(seg);
    }
    assert.deepEqual(sent, [
      ['lost', 0, 100],
      ['lost', 100, 200],
      ['lost', 200, 300],
      ['lost', 400, 500],
      ['lost', 500, 600],
    ]);
    assert.equal(sb.pipe(), 500);
    // Data sent after the timeout is not presumed lost.
    sb.onSend(700);
    assert.equal(sb.isLost(650), false);
    sb.update(600, []);
    assert.equal(sb.isLost(650), false);
  });

  it('finds holes for the sender and forgets everything on reneging', () => {
    const sb = new SackScoreboard(0, MSS);
    sb.onSend(1000);
    sb.update(0, [
      { left: 200, right: 300 },
      { left: 500, right: 600 },
    ]);
    assert.deepEqual(sb.nextHole(0), { left: 0, right: 200 });
    assert.deepEqual(sb.nextHole(250), { left: 300, right: 500 });
    assert.deepEqual(sb.nextHole(600), { left: 600, right: 1000 });
    assert.equal(sb.nextHole(1000), undefined);
    assert.equal(sb.isSacked(200, 300), true);
    assert.equal(sb.isSacked(199, 300), false);
    assert.equal(sb.isSacked(250), true);
    assert.equal(sb.sackedIn(0, 1000), 200);
    assert.equal(sb.sackedIn(250, 550), 100);
    sb.clear();
    assert.equal(sb.sackedBytes, 0);
    assert.deepEqual(sb.nextHole(0), { left: 0, right: 1000 });
  });

  it('rejects a bad MSS or DupThresh', () => {
    assert.throws(() => new SackScoreboard(0, 0), InvalidArgumentError);
    assert.throws(() => new SackScoreboard(0, MSS, { dupThresh: 0 }), InvalidArgumentError);
  });
});

// ---------------------------------------------------------------------------------------------
// A naive reference: one boolean per byte, offsets from the first sequence number, the RFC's
// definitions read literally.

interface Model {
  una: number;
  high: number;
  sacked: boolean[];
  rxt: number;
  rescue: number | undefined;
  recovery: number | undefined;
  lostFloor: number | undefined;
}

const DUP_THRESH = 3;

function modelSacked(m: Model, o: number): boolean {
  return o >= m.una && m.sacked[o] === true;
}

function modelIsLost(m: Model, mss: number, o: number): boolean {
  if (o < m.una || o >= m.high || modelSacked(m, o)) return false;
  if (m.lostFloor !== undefined && o < m.lostFloor) return true;
  let runs = 0;
  let bytes = 0;
  for (let x = o + 1; x < m.high; x++) {
    if (!modelSacked(m, x)) continue;
    bytes++;
    if (!modelSacked(m, x - 1) || x - 1 === o) runs++;
  }
  return runs >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss;
}

function modelPipe(m: Model, mss: number): number {
  let pipe = 0;
  for (let o = m.una; o < m.high; o++) {
    if (modelSacked(m, o)) continue;
    if (!modelIsLost(m, mss, o)) pipe++;
    if (o < m.rxt) pipe++;
  }
  return pipe;
}

function modelHighestSacked(m: Model): number | undefined {
  for (let o = m.high - 1; o >= m.una; o--) if (modelSacked(m, o)) return o + 1;
  return undefined;
}

function modelNextSeg(
  m: Model,
  mss: number,
  newData: number,
  len: number,
): [string, number, number] | undefined {
  const start = Math.max(m.rxt, m.una);
  let bound = modelHighestSacked(m) ?? m.una;
  if (m.lostFloor !== undefined && m.lostFloor > bound) bound = m.lostFloor;
  let s2: number | undefined;
  for (let o = start; o < m.high; o++) {
    if (!modelSacked(m, o)) {
      s2 = o;
      break;
    }
  }
  // Rule 1 (lost is monotone, so the smallest candidate decides).
  if (s2 !== undefined && s2 < bound && modelIsLost(m, mss, s2)) {
    let e = s2;
    while (e < m.high && e < s2 + len && !modelSacked(m, e) && modelIsLost(m, mss, e)) e++;
    return ['lost', s2, e];
  }
  if (newData > 0) return ['new', m.high, m.high + Math.min(len, newData)];
  if (s2 !== undefined && s2 < bound) {
    let e = s2;
    while (e < m.high && e < s2 + len && !modelSacked(m, e)) e++;
    return ['unsacked', s2, e];
  }
  if (m.recovery !== undefined && (m.rescue === undefined || m.una > m.rescue)) {
    for (let top = m.high - 1; top >= m.una; top--) {
      if (modelSacked(m, top)) continue;
      // The highest un-SACKed byte was already retransmitted in this recovery: no rescue.
      if (top < m.rxt) return undefined;
      let left = top;
      while (left > m.rxt && !modelSacked(m, left - 1) && left > top + 1 - Math.min(len, mss)) left--;
      return ['rescue', left, top + 1];
    }
  }
  return undefined;
}

function modelAdvance(m: Model, ack: number): void {
  m.una = ack;
  if (m.rxt < ack) m.rxt = ack;
  if (m.rescue !== undefined && ack > m.rescue) m.rescue = undefined;
  if (m.recovery !== undefined && ack >= m.recovery) m.recovery = undefined;
  if (m.lostFloor !== undefined && ack >= m.lostFloor) m.lostFloor = undefined;
}

type Op =
  | { t: 'send'; n: number }
  | { t: 'ack'; ack: number; blocks: [number, number][] }
  | { t: 'recover' }
  | { t: 'rto' }
  | { t: 'next'; newData: number; len: number; cut: number };

const SPACE = 400;
/** SACK blocks as offsets: mostly short ones (segment-aligned or not), sometimes anything. */
const blockArb: fc.Arbitrary<[number, number]> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: -30, max: SPACE + 30 }), fc.integer({ min: -30, max: SPACE + 30 })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.integer({ min: -30, max: SPACE + 30 }), fc.integer({ min: -3, max: 70 }))
      .map(([l, n]): [number, number] => [l, l + n]),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: SPACE / 10 }), fc.integer({ min: 1, max: 4 }))
      .map(([k, n]): [number, number] => [k * 10, (k + n) * 10]),
  },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('send' as const), n: fc.integer({ min: 1, max: 60 }) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('ack' as const),
      ack: fc.integer({ min: -20, max: SPACE }),
      blocks: fc.array(blockArb, { maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('recover' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('rto' as const) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('next' as const),
      newData: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })),
      len: fc.integer({ min: 1, max: 40 }),
      cut: fc.integer({ min: 0, max: 3 }),
    }),
  },
);

describe('SACK scoreboard against a byte-bitmap model', () => {
  it('agrees on SACKed bytes, IsLost, pipe, NextSeg and HighRxt for random ACK sequences', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(0xffff_ffff), fc.integer({ min: 0xffff_ffff - SPACE, max: 0xffff_ffff })),
        fc.integer({ min: 5, max: 30 }),
        fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }),
        (base, mss, ops) => {
          const sb = new SackScoreboard(base, mss);
          const m: Model = {
            una: 0,
            high: 0,
            sacked: [],
            rxt: 0,
            rescue: undefined,
            recovery: undefined,
            lostFloor: undefined,
          };
          const abs = (o: number) => seqAdd(base, o);
          for (const op of ops) {
            switch (op.t) {
              case 'send': {
                const to = Math.max(m.high, Math.min(m.high + op.n, SPACE));
                sb.onSend(abs(to));
                m.high = to;
                break;
              }
              case 'ack': {
                const r = sb.update(
                  abs(op.ack),
                  op.blocks.map(([l, rr]) => ({ left: abs(l), right: abs(rr) })),
                );
                if (op.ack > m.una && op.ack <= m.high) modelAdvance(m, op.ack);
                let added = 0;
                for (const [l, rr] of op.blocks) {
                  if (l >= rr || rr > m.high || rr <= m.una) continue;
                  for (let o = Math.max(l, m.una); o < rr; o++) {
                    if (!m.sacked[o]) added++;
                    m.sacked[o] = true;
                  }
                }
                assert.equal(r.newlySacked, added);
                break;
              }
              case 'recover':
                sb.enterRecovery();
                m.recovery = m.high;
                m.rxt = m.una;
                m.rescue = undefined;
                break;
              case 'rto':
                sb.onRto();
                m.recovery = undefined;
                m.rescue = undefined;
                m.rxt = m.una;
                m.lostFloor = m.high > m.una ? m.high : undefined;
                break;
              case 'next': {
                const seg = sb.nextSeg(op.newData, op.len);
                const expected = modelNextSeg(m, mss, op.newData, op.len);
                assert.deepEqual(
                  seg === undefined
                    ? undefined
                    : [seg.kind, seqDiff(seg.left, base), seqDiff(seg.right, base)],
                  expected,
                );
                if (seg !== undefined && expected !== undefined) {
                  // The sender may send less than asked.
                  const [kind, left, right] = expected;
                  const end = Math.max(left + 1, right - op.cut);
                  sb.commit(seg, abs(end));
                  if (kind === 'new') m.high = Math.max(m.high, end);
                  else if (kind === 'rescue') m.rescue = m.recovery ?? m.high;
                  else m.rxt = Math.max(m.rxt, Math.min(end, m.high));
                }
                break;
              }
            }
            // Compare every observable.
            assert.equal(seqDiff(sb.sndUna, base), m.una);
            assert.equal(seqDiff(sb.highData, base), m.high);
            assert.equal(seqDiff(sb.highRxt, base), m.rxt);
            let total = 0;
            for (let o = m.una; o < m.high; o++) if (modelSacked(m, o)) total++;
            assert.equal(sb.sackedBytes, total);
            const hs = modelHighestSacked(m);
            assert.equal(sb.highestSacked === undefined ? undefined : seqDiff(sb.highestSacked, base), hs);
            for (let o = m.una - 2; o < m.high + 2; o++) {
              assert.equal(sb.isLost(abs(o)), modelIsLost(m, mss, o), `isLost(${o})`);
              assert.equal(sb.isSacked(abs(o)), modelSacked(m, o) && o < m.high, `isSacked(${o})`);
            }
            assert.equal(sb.pipe(), modelPipe(m, mss));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
