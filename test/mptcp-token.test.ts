import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../src/errors.js';
import { mptcpCounterSet } from '../src/stack/mptcp/counters.js';
import { keyMaterial } from '../src/stack/mptcp/crypto.js';
import { DEFAULT_TOKEN_TRIES, TokenTable } from '../src/stack/mptcp/token.js';

/** A key source that returns the given keys in order, then fails the test if asked for more. */
function scripted(...keys: bigint[]): () => bigint {
  let i = 0;
  return () => {
    const key = keys[i++];
    assert.ok(key !== undefined, 'key source asked for more keys than scripted');
    return key;
  };
}

const K1 = 0x0123_4567_89ab_cdefn;
const K2 = 0xfedc_ba98_7654_3210n;
const K3 = 0x1111_2222_3333_4444n;

describe('MPTCP token table', () => {
  it('allocates a key with its token and IDSN and finds the owner by token', () => {
    const table = new TokenTable<string>({ keySource: scripted(K1) });
    const a = table.allocate('conn-1');
    assert.deepEqual(a, { key: K1, ...keyMaterial(K1) });
    assert.equal(table.size, 1);
    assert.equal(table.lookup(keyMaterial(K1).token), 'conn-1');
    assert.equal(table.lookup(keyMaterial(K2).token), undefined);
    assert.deepEqual(table.counters, { tokenCollisions: 0, tokenClaimTaken: 0, MPFallbackTokenInit: 0 });
  });

  it('draws again when a fresh key collides with a token in use, counting each collision', () => {
    const table = new TokenTable<string>({ keySource: scripted(K1, K1, K1, K2) });
    assert.equal(table.allocate('first')?.key, K1);
    const second = table.allocate('second');
    assert.equal(second?.key, K2);
    assert.equal(table.counters.tokenCollisions, 2);
    assert.equal(table.lookup(keyMaterial(K1).token), 'first', 'the first owner keeps its token');
    assert.equal(table.lookup(keyMaterial(K2).token), 'second');
    assert.equal(table.size, 2);
  });

  it('gives up after maxTries collisions: never two owners on one token', () => {
    const keys = Array.from({ length: 1 + DEFAULT_TOKEN_TRIES }, () => K1);
    const table = new TokenTable<string>({ keySource: scripted(...keys) });
    table.allocate('first');
    assert.equal(table.allocate('second'), undefined);
    assert.equal(table.counters.tokenCollisions, DEFAULT_TOKEN_TRIES);
    assert.equal(table.counters.MPFallbackTokenInit, 1);
    assert.equal(table.lookup(keyMaterial(K1).token), 'first');
    assert.equal(table.size, 1);
  });

  it('honours a smaller maxTries', () => {
    const table = new TokenTable<string>({ keySource: scripted(K1, K1, K1), maxTries: 2 });
    table.allocate('first');
    assert.equal(table.allocate('second'), undefined);
    assert.equal(table.counters.tokenCollisions, 2);
  });

  it('counts into a shared MptcpCounters', () => {
    const counters = mptcpCounterSet.create();
    const table = new TokenTable<string>({ keySource: scripted(K1, K1, K2), counters });
    table.allocate('a');
    table.allocate('b');
    table.claim(K2, 'c');
    assert.deepEqual(mptcpCounterSet.nonZero(counters), { tokenCollisions: 1, tokenClaimTaken: 1 });
  });

  it('claims a key chosen elsewhere unless its token is taken', () => {
    const table = new TokenTable<string>({ keySource: scripted(K1) });
    table.allocate('fresh');
    assert.deepEqual(table.claim(K2, 'cookie'), { key: K2, ...keyMaterial(K2) });
    assert.equal(table.lookup(keyMaterial(K2).token), 'cookie');
    assert.equal(table.claim(K1, 'cookie-2'), undefined, 'token of K1 is taken');
    assert.equal(table.claim(K2, 'cookie'), undefined, 'a second claim of the same key is refused too');
    assert.equal(table.counters.tokenClaimTaken, 2);
    assert.equal(table.lookup(keyMaterial(K1).token), 'fresh');
    assert.equal(table.size, 2);
  });

  it('releases only the owner’s own entry', () => {
    const table = new TokenTable<object>({ keySource: scripted(K1, K2, K1) });
    const a = { name: 'a' };
    const b = { name: 'b' };
    const ta = table.allocate(a)?.token as number;
    const tb = table.allocate(b)?.token as number;
    assert.equal(table.release(ta, b), false, 'b does not own ta');
    assert.equal(table.lookup(ta), a);
    assert.equal(table.release(keyMaterial(K3).token, a), false, 'unknown token');
    assert.equal(table.release(ta, a), true);
    assert.equal(table.release(ta, a), false, 'already released');
    assert.equal(table.lookup(ta), undefined);
    assert.equal(table.lookup(tb), b);
    assert.equal(table.size, 1);
    // The freed token can be handed out again.
    assert.equal(table.allocate({ name: 'c' })?.token, ta);
    assert.equal(table.counters.tokenCollisions, 0);
  });

  it('uses crypto random keys by default', () => {
    const table = new TokenTable<number>();
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const a = table.allocate(i);
      assert.ok(a !== undefined);
      assert.equal(a.token, keyMaterial(a.key).token);
      seen.add(a.token);
    }
    assert.equal(seen.size, 100);
    assert.equal(table.size, 100);
  });

  it('rejects API misuse: bad maxTries, out-of-range keys', () => {
    assert.throws(() => new TokenTable({ maxTries: 0 }), InvalidArgumentError);
    assert.throws(() => new TokenTable({ maxTries: 1.5 }), InvalidArgumentError);
    const table = new TokenTable<string>({ keySource: scripted(-1n) });
    assert.throws(() => table.allocate('x'), InvalidArgumentError);
    assert.throws(() => table.claim(1n << 64n, 'x'), InvalidArgumentError);
    assert.equal(table.size, 0);
  });
});
