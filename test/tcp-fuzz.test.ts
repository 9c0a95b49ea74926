/**
 * Must-show 4 for the engine: whatever segments arrive (any flags, sequence and ACK numbers
 * near or far from the window, duplicate or contradictory options, payloads), `process` and
 * `dispatch` never throw, and every segment the engine emits encodes (fields in range, options
 * within 40 bytes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { TcpOption } from '../src/stack/wire/tcp.js';
import { encodeTcp } from '../src/stack/wire/tcp.js';
import { header, LOCAL_ISN, REMOTE_ISN, TcpFixture } from './support/tcp-fixture.js';

const optionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ type: 'nop' }),
  fc.integer({ min: 0, max: 65535 }).map<TcpOption>((mss) => ({ type: 'mss', mss })),
  fc.integer({ min: 0, max: 255 }).map<TcpOption>((shift) => ({ type: 'window-scale', shift })),
  fc.constant<TcpOption>({ type: 'sack-permitted' }),
  fc
    .tuple(fc.nat(0xffff_ffff), fc.nat(0xffff_ffff))
    .map<TcpOption>(([tsVal, tsEcr]) => ({ type: 'timestamps', tsVal, tsEcr })),
  fc
    .array(fc.tuple(fc.integer({ min: -70000, max: 70000 }), fc.integer({ min: -100, max: 70000 })), {
      minLength: 1,
      maxLength: 4,
    })
    .map<TcpOption>((bs) => ({
      type: 'sack',
      blocks: bs.map(([l, n]) => ({ left: (LOCAL_ISN + 1 + l) >>> 0, right: (LOCAL_ISN + 1 + l + n) >>> 0 })),
    })),
);

const stepArb = fc.record({
  flags: fc.integer({ min: 0, max: 0x3f }),
  seqOff: fc.oneof(fc.integer({ min: -3000, max: 70000 }), fc.nat(0xffff_ffff)),
  ackOff: fc.oneof(fc.integer({ min: -3000, max: 70000 }), fc.nat(0xffff_ffff)),
  window: fc.integer({ min: 0, max: 65535 }),
  options: fc.array(optionArb, { maxLength: 4 }),
  payload: fc.integer({ min: 0, max: 3000 }),
  write: fc.integer({ min: 0, max: 5000 }),
  read: fc.boolean(),
  advance: fc.integer({ min: 0, max: 3000 }),
  action: fc.constantFrom('none', 'none', 'none', 'shutdown', 'abort'),
});

function checkEmitted(f: TcpFixture): void {
  const buf = new Uint8Array(60);
  f.conn.dispatch(f.now, (seg) => {
    encodeTcp(seg.header, buf);
    assert.ok(seg.gsoSize === 0 || seg.payload.length > seg.gsoSize);
  });
  // Nothing left due: a timer driver calling dispatch at pollAt() never spins.
  const at = f.conn.pollAt();
  assert.ok(at > f.now, `pollAt ${at} not after now ${f.now} in ${f.conn.state}`);
}

describe('TCP engine under arbitrary input', () => {
  for (const [name, config, synOptions] of [
    ['plain', {}, []],
    [
      'all options',
      { sack: true, timestamps: true, windowScale: true, delayedAckMs: 40, maxPayload: 65536 },
      [
        { type: 'mss', mss: 1460 },
        { type: 'sack-permitted' },
        { type: 'timestamps', tsVal: 1, tsEcr: 0 },
        { type: 'window-scale', shift: 7 },
      ],
    ],
  ] as const) {
    it(`never throws and always emits encodable segments, from any opening state (${name})`, () => {
      fc.assert(
        fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), fc.nat(2), (steps, start) => {
          const opts = [...synOptions] as TcpOption[];
          const f =
            start === 0
              ? TcpFixture.established(config, opts)
              : start === 1
                ? TcpFixture.accepting(config, opts)
                : TcpFixture.connecting(config);
          if (start === 2) {
            // Half the time the peer answers the SYN properly first.
            f.collect();
            if (steps.length % 2 === 0) {
              f.send({ flags: 'SA', seq: REMOTE_ISN, ack: LOCAL_ISN + 1, options: opts });
            }
          }
          for (const s of steps) {
            if (s.write > 0) f.conn.write(new Uint8Array(s.write));
            const h = header({
              flags: '',
              seq: REMOTE_ISN + 1 + s.seqOff,
              ack: LOCAL_ISN + 1 + s.ackOff,
              window: s.window,
              options: s.options,
            });
            h.flags = s.flags;
            f.conn.process(h, new Uint8Array(s.payload), f.now);
            if (s.read) f.conn.read();
            if (s.action === 'shutdown') f.conn.shutdown();
            if (s.action === 'abort') f.conn.abort();
            checkEmitted(f);
            f.advance(s.advance);
            checkEmitted(f);
          }
        }),
        { numRuns: 150, seed: 42 },
      );
    });
  }
});
