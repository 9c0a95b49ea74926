import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../src/errors.js';
import { type DataRange, TxMappings } from '../src/stack/mptcp/tx-mappings.js';
import { seqAdd, seqDiff } from '../src/stack/wire/seqnum.js';

/** `at` as a plain tuple [ssn, dsn, length] (its result object is reused). */
function at(tx: TxMappings, ssn: number): [number, number, number] | undefined {
  const m = tx.at(ssn);
  return m === undefined ? undefined : [m.ssn, m.dsn, m.length];
}

describe('TX DSS mappings: literal cases', () => {
  it('maps pushed ranges at consecutive subflow sequence numbers', () => {
    const tx = new TxMappings(1000);
    assert.equal(tx.end, 1000);
    assert.equal(tx.length, 0);
    assert.equal(tx.at(1000), undefined);
    assert.equal(tx.lowestDsn(), undefined);
    tx.push(0, 1400);
    tx.push(1400, 1400);
    tx.push(2800, 200);
    assert.equal(tx.end, 4000);
    assert.equal(tx.length, 3000);
    assert.equal(tx.size, 3);
    assert.deepEqual(at(tx, 1000), [1000, 0, 1400]);
    assert.deepEqual(at(tx, 2399), [1000, 0, 1400]);
    assert.deepEqual(at(tx, 2400), [2400, 1400, 1400], 'contiguous in DSN but never merged');
    assert.deepEqual(at(tx, 3999), [3800, 2800, 200]);
    assert.equal(tx.at(4000), undefined);
    assert.equal(tx.at(999), undefined);
    assert.equal(tx.contiguousFrom(1000), 1400);
    assert.equal(tx.contiguousFrom(2000), 400, 'a segment from 2000 must stop at 2400');
    assert.equal(tx.contiguousFrom(3999), 1);
    assert.equal(tx.contiguousFrom(4000), 0);
    assert.equal(tx.lowestDsn(), 0);
  });

  it('drops only wholly acknowledged mappings', () => {
    const tx = new TxMappings(1000);
    tx.push(0, 1400);
    tx.push(1400, 1400);
    tx.ack(2000);
    assert.equal(tx.size, 2, 'the first mapping is only partly acknowledged');
    assert.equal(tx.start, 1000);
    assert.equal(tx.length, 2800);
    tx.ack(2400);
    assert.equal(tx.size, 1);
    assert.equal(tx.start, 2400);
    assert.equal(tx.length, 1400);
    assert.equal(tx.at(2000), undefined);
    assert.equal(tx.lowestDsn(), 1400);
    tx.ack(2000);
    assert.equal(tx.size, 1, 'an older ACK changes nothing');
    tx.ack(3801);
    assert.equal(tx.size, 0, 'an ACK of the FIN too');
    assert.equal(tx.length, 0);
    assert.equal(tx.start, tx.end);
    assert.equal(tx.lowestDsn(), undefined);
    tx.push(2800, 10);
    assert.deepEqual(at(tx, 3800), [3800, 2800, 10]);
  });

  it('keeps the lowest DSN right when reinjected (older) data follows newer data', () => {
    const tx = new TxMappings(0);
    tx.push(10_000, 100);
    tx.push(500, 100); // reinjected from a dead subflow
    tx.push(20_000, 100);
    tx.push(700, 100);
    assert.equal(tx.lowestDsn(), 500);
    tx.ack(100);
    assert.equal(tx.lowestDsn(), 500);
    tx.ack(200);
    assert.equal(tx.lowestDsn(), 700);
    tx.ack(400);
    assert.equal(tx.lowestDsn(), undefined);
  });

  it('gives the unacknowledged data-level ranges, contiguous ones merged, the first one cut', () => {
    const tx = new TxMappings(100);
    tx.push(0, 1000);
    tx.push(1000, 1000);
    tx.push(5000, 500);
    tx.push(5500, 500);
    tx.push(2000, 100);
    const all: DataRange[] = [
      { dsn: 0, length: 2000 },
      { dsn: 5000, length: 1000 },
      { dsn: 2000, length: 100 },
    ];
    assert.deepEqual(tx.unacked(100), all);
    assert.deepEqual(tx.unacked(50), all, 'from before the oldest byte: everything');
    assert.deepEqual(tx.unacked(1600), [
      { dsn: 1500, length: 500 },
      { dsn: 5000, length: 1000 },
      { dsn: 2000, length: 100 },
    ]);
    assert.deepEqual(tx.unacked(3150), [{ dsn: 2050, length: 50 }]);
    assert.deepEqual(tx.unacked(3200), [], 'at the end');
    tx.ack(3200);
    assert.deepEqual(tx.unacked(3200), []);
  });

  it('handles the 32-bit wrap of subflow sequence numbers', () => {
    const first = 0xffff_f000;
    const tx = new TxMappings(first);
    tx.push(0, 0x800);
    tx.push(0x800, 0x1000); // across the wrap
    tx.push(0x1800, 0x100);
    assert.equal(tx.end, 0x900);
    assert.equal(tx.length, 0x1900);
    assert.deepEqual(at(tx, 0xffff_ffff), [0xffff_f800, 0x800, 0x1000]);
    assert.deepEqual(at(tx, 0), [0xffff_f800, 0x800, 0x1000]);
    assert.deepEqual(at(tx, 0x800), [0x800, 0x1800, 0x100]);
    assert.equal(tx.contiguousFrom(0), 0x800);
    assert.equal(tx.at(0x900), undefined);
    assert.equal(tx.at(first - 1), undefined);
    assert.deepEqual(tx.unacked(0x10), [{ dsn: 0x1010, length: 0x8f0 }]);
    tx.ack(0x800);
    assert.equal(tx.size, 1);
    assert.equal(tx.start, 0x800);
  });

  it('finds mappings in the middle of a long table (bisection) and grows its ring', () => {
    const tx = new TxMappings(0xffff_0000);
    for (let k = 0; k < 1000; k++) tx.push(k * 100, 1 + (k % 100));
    let ssn = 0xffff_0000;
    for (let k = 0; k < 1000; k++) {
      const len = 1 + (k % 100);
      assert.deepEqual(at(tx, seqAdd(ssn, len - 1)), [ssn, k * 100, len], `entry ${k}`);
      ssn = seqAdd(ssn, len);
    }
    assert.equal(tx.end, ssn);
  });

  it('rejects API misuse', () => {
    const tx = new TxMappings(0);
    assert.throws(() => tx.push(0, 0), InvalidArgumentError);
    assert.throws(() => tx.push(0, 0x10000), InvalidArgumentError);
    assert.throws(() => tx.push(-1, 10), InvalidArgumentError);
    assert.throws(() => tx.push(2 ** 53, 10), InvalidArgumentError);
    assert.throws(() => tx.push(0.5, 10), InvalidArgumentError);
    assert.equal(tx.size, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// A naive reference: an array of mappings in offset space (offset 0 = the first SSN), searched
// linearly.

interface ModelEntry {
  start: number;
  dsn: number;
  length: number;
}

function modelFind(entries: ModelEntry[], o: number): ModelEntry | undefined {
  return entries.find((e) => e.start <= o && o < e.start + e.length);
}

function modelUnacked(entries: ModelEntry[], from: number): DataRange[] {
  const out: DataRange[] = [];
  for (const e of entries) {
    if (e.start + e.length <= from) continue;
    const skip = Math.max(0, from - e.start);
    const top = out[out.length - 1];
    if (top !== undefined && top.dsn + top.length === e.dsn + skip) top.length += e.length - skip;
    else out.push({ dsn: e.dsn + skip, length: e.length - skip });
  }
  return out;
}

type Op =
  | { t: 'push'; dsn: number; reinject: boolean; length: number }
  | { t: 'ack'; back: number; ahead: number }
  | { t: 'query'; at: number; boundary: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('push' as const),
      dsn: fc.nat(1_000_000),
      reinject: fc.boolean(),
      length: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 1500 }) },
        { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 0xffff }) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('ack' as const),
      back: fc.nat(100),
      ahead: fc.oneof(fc.nat(3000), fc.nat(70_000)),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('query' as const), at: fc.nat(), boundary: fc.boolean() }),
  },
);

describe('TX DSS mappings against a naive model', () => {
  it('agrees on at, contiguousFrom, length, lowestDsn and unacked for random sequences', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(0xffff_ffff), fc.integer({ min: 0xffff_ffff - 200_000, max: 0xffff_ffff })),
        fc.array(opArb, { minLength: 1, maxLength: 150, size: 'max' }),
        (base, ops) => {
          const tx = new TxMappings(base);
          let entries: ModelEntry[] = [];
          let end = 0;
          let nextDsn = 0;
          let acked = 0;
          const abs = (o: number) => seqAdd(base, o);
          for (const op of ops) {
            switch (op.t) {
              case 'push': {
                const dsn = op.reinject ? op.dsn : nextDsn;
                if (!op.reinject) nextDsn += op.length;
                tx.push(dsn, op.length);
                entries.push({ start: end, dsn, length: op.length });
                end += op.length;
                break;
              }
              case 'ack': {
                // ACKs never move backwards much and never beyond the end (+1 for a FIN).
                const to = Math.min(end + 1, Math.max(0, acked - op.back) + op.ahead);
                tx.ack(abs(to));
                acked = Math.max(acked, to);
                entries = entries.filter((e) => e.start + e.length > to);
                break;
              }
              case 'query': {
                const first = entries[0]?.start ?? end;
                const span = end - first + 20;
                let o = first - 10 + (op.at % span);
                if (op.boundary && entries.length > 0) {
                  const e = entries[op.at % entries.length] as ModelEntry;
                  o = op.at % 2 === 0 ? e.start : e.start + e.length - 1;
                }
                const e = modelFind(entries, o);
                assert.deepEqual(
                  at(tx, abs(o)),
                  e === undefined ? undefined : [abs(e.start), e.dsn, e.length],
                );
                assert.equal(tx.contiguousFrom(abs(o)), e === undefined ? 0 : e.start + e.length - o);
                assert.deepEqual(tx.unacked(abs(o)), modelUnacked(entries, o));
                break;
              }
            }
            const first = entries[0]?.start ?? end;
            assert.equal(tx.end, abs(end));
            assert.equal(tx.start, abs(first));
            assert.equal(tx.length, end - first);
            assert.equal(tx.size, entries.length);
            assert.equal(
              tx.lowestDsn(),
              entries.length === 0 ? undefined : Math.min(...entries.map((x) => x.dsn)),
            );
            assert.equal(seqDiff(tx.end, tx.start), tx.length);
          }
        },
      ),
      { seed: 0x74786d70, numRuns: 400 },
    );
  });
});
