import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../src/errors.js';
import { type RxMapping, RxMappings, type RxPiece } from '../src/stack/mptcp/rx-mappings.js';
import { dssChecksum } from '../src/stack/wire/dss-checksum.js';
import { dsnAdd, seqAdd, seqDiff } from '../src/stack/wire/seqnum.js';

const D = 0x1234_5678_9abc_0000n;

function map(
  ssn: number,
  dsn: bigint,
  dataLevelLength: number,
  dataFin = false,
  checksum?: number,
): RxMapping {
  return checksum === undefined
    ? { ssn, dsn, dataLevelLength, dataFin }
    : { ssn, dsn, dataLevelLength, dataFin, checksum };
}

/** Pieces as [ssn, dsn, length] tuples, for readable assertions. */
function tuples(pieces: readonly RxPiece[]): [number, bigint, number][] {
  return pieces.map((p) => [p.ssn, p.dsn, p.length]);
}

describe('RX DSS mappings: literal cases', () => {
  it('one mapping over many segments', () => {
    const rx = new RxMappings();
    assert.equal(rx.add(map(1, D, 3000)), 'added');
    for (let ssn = 1; ssn < 3001; ssn += 1000) {
      assert.deepEqual(tuples(rx.resolve(ssn, 1000)), [[ssn, D + BigInt(ssn - 1), 1000]]);
      // Every later segment of the burst repeats the DSS.
      assert.equal(rx.add(map(1, D, 3000)), 'duplicate');
      rx.consume(ssn + 1000);
    }
    assert.equal(rx.consumed, 3001);
    assert.equal(rx.size, 0, 'the fully placed mapping is forgotten');
    assert.deepEqual(tuples(rx.resolve(3001, 10)), []);
  });

  it('a segment spanning two contiguous mappings gives two pieces', () => {
    const rx = new RxMappings();
    const far = 0xffff_ffff_0000_0000n;
    assert.equal(rx.add(map(1, D, 500)), 'added');
    assert.equal(rx.add(map(501, far, 500)), 'added');
    const pieces = rx.resolve(301, 400);
    assert.deepEqual(tuples(pieces), [
      [301, D + 300n, 200],
      [501, far, 200],
    ]);
    assert.equal(pieces[0]?.offset, 300);
    assert.equal(pieces[0]?.mapping.ssn, 1);
    assert.equal(pieces[1]?.offset, 0);
    assert.equal(pieces[1]?.mapping.dsn, far);
    rx.consume(701);
    assert.deepEqual(
      rx.mappings().map((m) => m.ssn),
      [501],
    );
  });

  it('stops at a gap in the mappings and continues once the gap is mapped', () => {
    const rx = new RxMappings();
    rx.add(map(1, D, 100));
    rx.add(map(201, D + 200n, 100));
    assert.deepEqual(tuples(rx.resolve(1, 300)), [[1, D, 100]]);
    assert.deepEqual(tuples(rx.resolve(101, 50)), [], 'no mapping for 101 yet');
    assert.equal(rx.add(map(101, D + 100n, 100)), 'added', 'a mapping arriving out of order');
    assert.deepEqual(
      rx.mappings().map((m) => m.ssn),
      [1, 101, 201],
    );
    assert.deepEqual(tuples(rx.resolve(1, 300)), [
      [1, D, 100],
      [101, D + 100n, 100],
      [201, D + 200n, 100],
    ]);
    assert.deepEqual(tuples(rx.resolve(1, 0)), []);
  });

  it('classifies duplicates, conflicts, stale, full and invalid mappings', () => {
    const rx = new RxMappings({ maxPending: 3 });
    assert.equal(rx.add(map(1, D, 100)), 'added');
    assert.equal(rx.add(map(1, D, 100)), 'duplicate');
    assert.equal(rx.add(map(1, D, 100, false, 0x1234)), 'duplicate', 'the checksum is not compared');
    assert.equal(rx.add(map(1, D + 1n, 100)), 'conflict', 'same bytes, other DSN');
    assert.equal(rx.add(map(1, D, 101)), 'conflict', 'same start, other length');
    assert.equal(rx.add(map(1, D, 101, true)), 'conflict', 'same span, but a DATA_FIN');
    assert.equal(rx.add(map(51, D + 50n, 100)), 'conflict', 'overlaps the tail, even consistently');
    assert.equal(rx.add(map(101, D + 100n, 100)), 'added', 'adjacent is fine');
    assert.equal(rx.add(map(301, D + 300n, 100)), 'added');
    assert.equal(rx.add(map(201, D + 200n, 100)), 'full');
    assert.equal(rx.add(map(150, D, 200)), 'conflict', 'a conflict is reported before fullness');
    assert.equal(rx.add(map(1, D, 0)), 'invalid', 'zero length (an infinite mapping is the caller’s)');
    assert.equal(rx.add(map(1 + 0x4000_0001, D, 10)), 'invalid', 'beyond any window');
    rx.consume(201);
    assert.equal(rx.size, 1);
    assert.equal(rx.add(map(1, D, 100)), 'stale', 'wholly before the consumed point');
    assert.equal(rx.add(map(101, D + 100n, 100)), 'stale', 'ends exactly at the consumed point');
    assert.equal(rx.add(map(151, D + 150n, 100)), 'added', 'straddles the consumed point');
    assert.deepEqual(tuples(rx.resolve(201, 200)), [[201, D + 200n, 50]], 'then a gap until 301');
  });

  it('forgets mappings that end at the consumed point, keeps the one it falls in; never goes back', () => {
    const rx = new RxMappings();
    rx.add(map(1, D, 100));
    rx.add(map(101, D + 100n, 100));
    rx.consume(150);
    assert.equal(rx.consumed, 150);
    assert.deepEqual(
      rx.mappings().map((m) => m.ssn),
      [101],
    );
    rx.consume(120);
    assert.equal(rx.consumed, 150, 'consume never moves back');
    assert.deepEqual(tuples(rx.resolve(150, 100)), [[150, D + 149n, 51]]);
  });

  it('a DATA_FIN alone maps nothing; with data it takes the last unit of the length', () => {
    const rx = new RxMappings();
    assert.equal(rx.add(map(0, D + 1000n, 1, true)), 'fin-only');
    assert.equal(rx.add(map(77, D + 1000n, 1, true)), 'fin-only', 'any span-0 DATA_FIN');
    assert.equal(rx.size, 0);
    assert.equal(rx.add(map(1, D, 101, true)), 'added');
    assert.equal(rx.mappings()[0]?.span, 100);
    assert.equal(rx.mappings()[0]?.end, 101);
    const half = rx.resolve(1, 50);
    assert.equal(half[0]?.dataFin, false);
    const all = rx.resolve(1, 200);
    assert.deepEqual(tuples(all), [[1, D, 100]], 'the DATA_FIN is not a subflow byte');
    assert.equal(all[0]?.dataFin, true);
    rx.consume(51);
    const rest = rx.resolve(51, 50);
    assert.equal(rest[0]?.dataFin, true);
    assert.equal(rest[0]?.offset, 50);
  });

  it('handles the 32-bit wrap of the subflow sequence number', () => {
    const first = 0xffff_ff00;
    const rx = new RxMappings({ firstSsn: first });
    assert.equal(rx.consumed, first);
    assert.equal(rx.add(map(0x100, D + 0x200n, 0x100)), 'added', 'after the wrap, added first');
    assert.equal(rx.add(map(first, D, 0x200)), 'added', 'across the wrap');
    assert.deepEqual(
      rx.mappings().map((m) => m.ssn),
      [first, 0x100],
      'sorted in sequence space, not numerically',
    );
    assert.equal(rx.mappings()[0]?.end, 0x100);
    assert.deepEqual(tuples(rx.resolve(0xffff_ff80, 0x200)), [
      [0xffff_ff80, D + 0x80n, 0x180],
      [0x100, D + 0x200n, 0x80],
    ]);
    assert.equal(rx.add(map(0xffff_fff0, D + 0xf0n, 0x20)), 'conflict');
    rx.consume(0x100);
    assert.equal(rx.size, 1);
    assert.equal(rx.add(map(first, D, 0x200)), 'stale');
    assert.equal(rx.add(map(0xffff_ffff, D, 0x10)), 'stale');
  });

  it('resolves DSNs across the 64-bit wrap', () => {
    const rx = new RxMappings();
    const top = 0xffff_ffff_ffff_fff0n;
    rx.add(map(1, top, 0x40));
    assert.deepEqual(tuples(rx.resolve(0x21, 0x10)), [[0x21, 0x10n, 0x10]]);
  });

  it('rejects API misuse', () => {
    assert.throws(() => new RxMappings({ maxPending: 0 }), InvalidArgumentError);
    const rx = new RxMappings();
    assert.throws(() => rx.add(map(1, D, 0x10000)), InvalidArgumentError);
    assert.throws(() => rx.add(map(1, D, -1)), InvalidArgumentError);
    rx.add(map(1, D, 10));
    const m = rx.mappings()[0];
    assert.ok(m !== undefined);
    assert.throws(() => rx.accumulate(m, new Uint8Array(1)), InvalidArgumentError, 'no checksum');
    assert.throws(() => rx.accumulate({ ...m }, new Uint8Array(1)), InvalidArgumentError, 'not held');
  });
});

describe('RX DSS mappings: checksum', () => {
  const payload = Uint8Array.from({ length: 301 }, (_, i) => (i * 37 + 11) & 0xff);

  it('verifies a mapping fed in odd-sized pieces', () => {
    const rx = new RxMappings();
    const csum = dssChecksum(D, 1, 301, payload);
    rx.add(map(1, D, 301, false, csum));
    const m = rx.mappings()[0];
    assert.ok(m !== undefined);
    assert.equal(rx.accumulate(m, payload, 0, 1), 'incomplete');
    assert.equal(rx.accumulate(m, payload, 1, 4), 'incomplete');
    assert.equal(rx.accumulate(m, payload, 4, 4), 'incomplete');
    assert.equal(rx.accumulate(m, payload, 4, 200), 'incomplete');
    assert.equal(rx.accumulate(m, payload, 200), 'ok');
    assert.equal(rx.accumulate(m, payload, 0, 0), 'ok', 'the verdict stays');
    assert.throws(() => rx.accumulate(m, payload, 0, 1), InvalidArgumentError, 'more than the mapping');
  });

  it('finds a corrupted byte and a wrong checksum', () => {
    const csum = dssChecksum(D, 1, 301, payload);
    const bad = payload.slice();
    bad[150] = (bad[150] as number) ^ 0x40;
    const rx = new RxMappings();
    rx.add(map(1, D, 301, false, csum));
    const m = rx.mappings()[0];
    assert.ok(m !== undefined);
    assert.equal(rx.accumulate(m, bad), 'bad');
    const rx2 = new RxMappings();
    rx2.add(map(1, D, 301, false, csum ^ 1));
    const m2 = rx2.mappings()[0];
    assert.ok(m2 !== undefined);
    assert.equal(rx2.accumulate(m2, payload), 'bad');
  });

  it('counts the DATA_FIN in the pseudo-header length, not in the payload', () => {
    const rx = new RxMappings();
    const csum = dssChecksum(D, 1, 302, payload);
    rx.add(map(1, D, 302, true, csum));
    const m = rx.resolve(1, 1000)[0]?.mapping;
    assert.ok(m !== undefined);
    assert.equal(m.span, 301);
    assert.equal(rx.accumulate(m, payload, 0, 151), 'incomplete');
    rx.consume(1000);
    assert.equal(rx.size, 0);
    assert.equal(rx.accumulate(m, payload, 151), 'ok', 'a forgotten mapping can still be finished');
  });

  it('agrees with dssChecksum for random mappings fed in random splits', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.nat(0xffff_ffff),
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.boolean(),
        fc.array(fc.nat(400), { maxLength: 12 }),
        fc.nat(),
        (dsn, ssn, data, fin, cuts, flip) => {
          const len = data.length + (fin ? 1 : 0);
          const csum = dssChecksum(dsn, ssn, len, data);
          const points = [...new Set(cuts.map((c) => c % data.length))].sort((a, b) => a - b);
          for (const corrupt of [false, true]) {
            const bytes = data.slice();
            if (corrupt) {
              const at = flip % bytes.length;
              bytes[at] = (bytes[at] as number) ^ (1 + (flip % 255));
            }
            const rx = new RxMappings({ firstSsn: ssn });
            assert.equal(rx.add(map(ssn, dsn, len, fin, csum)), 'added');
            const m = rx.mappings()[0];
            assert.ok(m !== undefined);
            let from = 0;
            for (const p of [...points, bytes.length]) {
              const r = rx.accumulate(m, bytes, from, p);
              from = p;
              if (p < bytes.length) assert.equal(r, 'incomplete');
              else assert.equal(r, corrupt ? 'bad' : 'ok');
            }
          }
        },
      ),
      { seed: 0x6d707463, numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A naive reference: mappings in offset space (offset 0 = the table's first SSN), bytes looked
// up one at a time by a linear search over the held mappings.

interface ModelMapping {
  start: number;
  span: number;
  dsn: bigint;
  len: number;
  fin: boolean;
}

interface Model {
  frontier: number;
  held: ModelMapping[];
}

function modelOwner(m: Model, o: number): ModelMapping | undefined {
  return m.held.find((h) => h.start <= o && o < h.start + h.span);
}

function modelAdd(m: Model, max: number, x: ModelMapping): string {
  if (x.len === 0) return 'invalid';
  if (x.span === 0) return 'fin-only';
  if (x.start + x.span <= m.frontier) return 'stale';
  const overlapping = m.held.filter((h) => h.start < x.start + x.span && x.start < h.start + h.span);
  if (overlapping.length > 0) {
    const h = overlapping[0] as ModelMapping;
    const same =
      overlapping.length === 1 &&
      h.start === x.start &&
      h.dsn === x.dsn &&
      h.len === x.len &&
      h.fin === x.fin;
    return same ? 'duplicate' : 'conflict';
  }
  if (m.held.length >= max) return 'full';
  m.held.push(x);
  return 'added';
}

/** Pieces as [offset of ssn, dsn, length, offset of the mapping's start, dataFin]. */
type PieceTuple = [number, bigint, number, number, boolean];

function modelResolve(m: Model, from: number, length: number): PieceTuple[] {
  const out: PieceTuple[] = [];
  let last: ModelMapping | undefined;
  for (let o = from; o < from + length; o++) {
    const h = modelOwner(m, o);
    if (h === undefined) break;
    const top = out[out.length - 1];
    if (h === last && top !== undefined) top[2]++;
    else out.push([o, dsnAdd(h.dsn, o - h.start), 1, h.start, false]);
    last = h;
    const cur = out[out.length - 1] as PieceTuple;
    cur[4] = h.fin && o === h.start + h.span - 1;
  }
  return out;
}

type Op =
  | { t: 'add'; start: number; len: number; fin: boolean; consistent: boolean; dsnJitter: number }
  | { t: 'again'; pick: number }
  | { t: 'resolve'; from: number; length: number }
  | { t: 'consume'; to: number };

const SPACE = 300;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('add' as const),
      start: fc.integer({ min: -20, max: SPACE }),
      len: fc.oneof(
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 }) },
        { weight: 5, arbitrary: fc.integer({ min: 1, max: 60 }) },
      ),
      fin: fc.oneof(
        { weight: 3, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
      consistent: fc.boolean(),
      dsnJitter: fc.integer({ min: -3, max: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('again' as const), pick: fc.nat() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('resolve' as const),
      from: fc.integer({ min: -10, max: SPACE }),
      length: fc.integer({ min: 0, max: 150 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('consume' as const),
      to: fc.integer({ min: -10, max: SPACE + 60 }),
    }),
  },
);

describe('RX DSS mappings against a per-byte model', () => {
  it('agrees on add results, pieces and the consumed point for random sequences', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constant(1),
          fc.nat(0xffff_ffff),
          fc.integer({ min: 0xffff_ffff - SPACE, max: 0xffff_ffff }),
        ),
        fc.oneof(
          fc.constant(D),
          fc.constant(0xffff_ffff_ffff_ff00n),
          fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        ),
        fc.integer({ min: 1, max: 8 }),
        fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }),
        (base, dsnBase, maxPending, ops) => {
          const rx = new RxMappings({ firstSsn: base, maxPending });
          const m: Model = { frontier: 0, held: [] };
          const sent: ModelMapping[] = [];
          const abs = (o: number) => seqAdd(base, o);
          for (const op of ops) {
            switch (op.t) {
              case 'add':
              case 'again': {
                let x: ModelMapping;
                if (op.t === 'again') {
                  const prev = sent[op.pick % Math.max(1, sent.length)];
                  if (prev === undefined) break;
                  x = prev;
                } else {
                  const fin = op.fin && op.len > 0;
                  const span = fin ? op.len - 1 : op.len;
                  const dsn = dsnAdd(dsnBase, op.start + (op.consistent ? 0 : op.dsnJitter * 1000 + 7));
                  x = { start: op.start, span, dsn, len: op.len, fin };
                  sent.push(x);
                }
                const got = rx.add(map(abs(x.start), x.dsn, x.len, x.fin));
                assert.equal(got, modelAdd(m, maxPending, x), `add ${JSON.stringify({ ...x, dsn: '' })}`);
                break;
              }
              case 'resolve': {
                const got = rx
                  .resolve(abs(op.from), op.length)
                  .map(
                    (p): PieceTuple => [
                      seqDiff(p.ssn, base),
                      p.dsn,
                      p.length,
                      seqDiff(p.mapping.ssn, base),
                      p.dataFin,
                    ],
                  );
                assert.deepEqual(got, modelResolve(m, op.from, op.length));
                break;
              }
              case 'consume': {
                rx.consume(abs(op.to));
                if (op.to > m.frontier) {
                  m.frontier = op.to;
                  m.held = m.held.filter((h) => h.start + h.span > m.frontier);
                }
                break;
              }
            }
            assert.equal(seqDiff(rx.consumed, base), m.frontier);
            assert.equal(rx.size, m.held.length);
            assert.deepEqual(
              rx.mappings().map((h) => seqDiff(h.ssn, base)),
              m.held.map((h) => h.start).sort((a, b) => a - b),
            );
          }
        },
      ),
      { seed: 0x72786d70, numRuns: 400 },
    );
  });
});
