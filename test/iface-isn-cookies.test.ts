import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress } from '../src/stack/iface/address.js';
import { IsnGenerator } from '../src/stack/iface/isn.js';
import { COOKIE_SLOT_MS, MSS_TABLE, mssIndexFor, SynCookies } from '../src/stack/iface/syn-cookies.js';
import { TimerHeap } from '../src/stack/iface/timer-heap.js';

const secret = new Uint8Array(32).fill(7);
const a = parseAddress('10.0.0.1');
const b = parseAddress('10.0.0.2');
const a6 = parseAddress('fd00::1');
const b6 = parseAddress('fd00::2');

test('ISN: the 4 µs clock advances it by 250 per ms for one four-tuple', () => {
  const gen = new IsnGenerator(secret);
  const t0 = gen.isn(1000, a, 40000, b, 80);
  const t1 = gen.isn(1001, a, 40000, b, 80);
  assert.equal((t1 - t0) >>> 0, 250);
});

test('ISN: different four-tuples and secrets give unrelated numbers', () => {
  const gen = new IsnGenerator(secret);
  const other = new IsnGenerator(new Uint8Array(32).fill(8));
  const x = gen.isn(0, a, 40000, b, 80);
  assert.notEqual(x, gen.isn(0, a, 40001, b, 80));
  assert.notEqual(x, gen.isn(0, b, 40000, a, 80));
  assert.notEqual(x, other.isn(0, a, 40000, b, 80));
  assert.notEqual(gen.isn(0, a6, 1, b6, 2), gen.isn(0, b6, 1, a6, 2));
  // Deterministic for a given secret: what tests and the simulator rely on.
  assert.equal(x, new IsnGenerator(secret).isn(0, a, 40000, b, 80));
});

test('ISN: wraps modulo 2^32 after about 4.77 hours of the clock', () => {
  const gen = new IsnGenerator(secret);
  const period = 0x1_0000_0000 / 250;
  assert.equal(gen.isn(5, a, 1, b, 2), gen.isn(5 + period, a, 1, b, 2));
});

test('SYN cookie: MSS index is the largest table entry not above the peer MSS', () => {
  assert.equal(MSS_TABLE[mssIndexFor(1460)], 1460);
  assert.equal(MSS_TABLE[mssIndexFor(1459)], 1440);
  assert.equal(MSS_TABLE[mssIndexFor(100)], 536);
  assert.equal(MSS_TABLE[mssIndexFor(65535)], 8960);
});

test('SYN cookie: round trip with timestamps carries MSS, window scale and SACK', () => {
  const cookies = new SynCookies(secret);
  const syn = { peerIsn: 123456, peerMss: 1460, peerWindowScale: 7, sackPermitted: true, timestamps: true };
  const c = cookies.encode(5000, a, 80, b, 40000, syn, 999_999);
  assert.ok(c.tsVal !== undefined && ((c.tsVal - 999_999) | 0) <= 0, 'TSval never ahead of the clock');
  const info = cookies.decode(6000, a, 80, b, 40000, 123457, (c.iss + 1) >>> 0, c.tsVal);
  assert.deepEqual(info, {
    iss: c.iss,
    irs: 123456,
    mss: 1460,
    peerWindowScale: 7,
    sackPermitted: true,
    timestamps: true,
  });
  assert.deepEqual(cookies.counters, { synCookiesSent: 1, synCookiesValid: 1, synCookiesInvalid: 0 });
});

test('SYN cookie: without timestamps no window scale and no SACK come back', () => {
  const cookies = new SynCookies(secret);
  const syn = {
    peerIsn: 1,
    peerMss: 1300,
    peerWindowScale: undefined,
    sackPermitted: false,
    timestamps: false,
  };
  const c = cookies.encode(0, a6, 443, b6, 50000, syn, 0);
  assert.equal(c.tsVal, undefined);
  const info = cookies.decode(0, a6, 443, b6, 50000, 2, (c.iss + 1) >>> 0, undefined);
  assert.equal(info?.mss, 1300);
  assert.equal(info?.peerWindowScale, undefined);
  assert.equal(info?.sackPermitted, false);
  assert.equal(info?.timestamps, false);
});

test('SYN cookie: a wrong ACK, a wrong tuple, altered TSecr bits or an old cookie are invalid', () => {
  const cookies = new SynCookies(secret);
  const syn = { peerIsn: 77, peerMss: 1460, peerWindowScale: 2, sackPermitted: true, timestamps: true };
  const c = cookies.encode(0, a, 80, b, 40000, syn, 1 << 20);
  const ack = (c.iss + 1) >>> 0;
  assert.equal(cookies.decode(0, a, 80, b, 40000, 78, (ack + 1) >>> 0, c.tsVal), undefined);
  assert.equal(cookies.decode(0, a, 80, b, 40001, 78, ack, c.tsVal), undefined);
  assert.equal(cookies.decode(0, a, 80, b, 40000, 79, ack, c.tsVal), undefined, 'peer ISN is bound');
  assert.equal(cookies.decode(0, a, 80, b, 40000, 78, ack, (c.tsVal! ^ 0x10) >>> 0), undefined);
  assert.ok(cookies.decode(COOKIE_SLOT_MS * 1.5, a, 80, b, 40000, 78, ack, c.tsVal), 'next slot is fine');
  assert.equal(cookies.decode(COOKIE_SLOT_MS * 2, a, 80, b, 40000, 78, ack, c.tsVal), undefined, 'too old');
  assert.equal(cookies.counters.synCookiesInvalid, 5);
});

test('timer heap: pops due items in time order and follows updates', () => {
  const heap = new TimerHeap<{ heapAt: number; heapIndex: number; id: number }>();
  const items = [5, 1, 9, 3, 7].map((at, id) => ({
    heapAt: Number.POSITIVE_INFINITY,
    heapIndex: -1,
    id,
    at,
  }));
  for (const it of items) heap.set(it, it.at);
  heap.set(items[2]!, 0); // 9 -> 0
  heap.set(items[0]!, Number.POSITIVE_INFINITY); // removed
  const order: number[] = [];
  for (let it = heap.popDue(8); it !== undefined; it = heap.popDue(8)) order.push(it.id);
  assert.deepEqual(order, [2, 1, 3, 4]);
  assert.equal(heap.size, 0);
});
