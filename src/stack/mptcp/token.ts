/**
 * The table of MPTCP connections by local token (RFC 8684 §3.1, §3.2): the token is the most
 * significant 32 bits of SHA-256 of the local key, and it is what an MP_JOIN SYN names to say
 * which connection it joins. A token names at most one connection, so a fresh key whose token
 * is already in use is discarded and another drawn (Linux does the same when it creates a token
 * for a request or a connection).
 *
 * How the stack drives it:
 * - a new connection, active or passive, calls `allocate(owner)` and uses the returned key and
 *   IDSN; `undefined` means no unique token was found in `maxTries` draws (counted as
 *   MPFallbackTokenInit): the connection falls back to plain TCP (Linux does the same);
 * - a connection rebuilt from a SYN cookie already has its key (the peer echoes it in the third
 *   ACK) and calls `claim(key, owner)`: refused (undefined, counted) when the token is taken;
 * - an MP_JOIN SYN looks its token up with `lookup(token)`;
 * - a connection that goes away calls `release(token, owner)`; only the owner's own entry is
 *   removed, so a stale release can never evict another connection.
 *
 * Pure: no clock, no I/O; the key source is injectable (tests script collisions).
 */
import { InvalidArgumentError } from '../../errors.js';
import type { MptcpCounters } from './counters.js';
import { keyMaterial, randomKey } from './crypto.js';

/**
 * Draws of a fresh key before `allocate` gives up. With n connections in use one draw collides
 * with probability n / 2^32, so 16 failures in a row mean a broken key source, not bad luck.
 */
export const DEFAULT_TOKEN_TRIES = 16;

const MAX_KEY = (1n << 64n) - 1n;

/** A local key and what follows from it. */
export interface TokenAllocation {
  /** The local 64-bit key, sent in MP_CAPABLE. */
  key: bigint;
  /** Most significant 32 bits of SHA-256(key): the connection's local token. */
  token: number;
  /** Least significant 64 bits of SHA-256(key): the initial data sequence number we send. */
  idsn: bigint;
}

/** The counters the table increments (an `MptcpCounters` fits). */
export type TokenCounters = Pick<
  MptcpCounters,
  'tokenCollisions' | 'tokenClaimTaken' | 'MPFallbackTokenInit'
>;

export interface TokenTableOptions {
  /** Source of fresh 64-bit keys; default crypto's `randomKey`. */
  keySource?: () => bigint;
  /** Draws before `allocate` gives up; default DEFAULT_TOKEN_TRIES. */
  maxTries?: number;
  /** Where to count; default a private object (see `counters`). */
  counters?: TokenCounters;
}

export class TokenTable<T> {
  private readonly owners = new Map<number, T>();
  private readonly keySource: () => bigint;
  private readonly maxTries: number;
  /** Collisions, refused claims and allocations given up. */
  readonly counters: TokenCounters;

  constructor(opts?: TokenTableOptions) {
    const maxTries = opts?.maxTries ?? DEFAULT_TOKEN_TRIES;
    if (!(Number.isInteger(maxTries) && maxTries >= 1)) {
      throw new InvalidArgumentError(`token table: maxTries must be a positive integer, got ${maxTries}`);
    }
    this.keySource = opts?.keySource ?? randomKey;
    this.maxTries = maxTries;
    this.counters = opts?.counters ?? { tokenCollisions: 0, tokenClaimTaken: 0, MPFallbackTokenInit: 0 };
  }

  /** Number of tokens in use. */
  get size(): number {
    return this.owners.size;
  }

  /**
   * A fresh key whose token is not in use, registered to `owner`; undefined after `maxTries`
   * draws that all collided (counted as MPFallbackTokenInit; each collision as tokenCollisions).
   */
  allocate(owner: T): TokenAllocation | undefined {
    for (let i = 0; i < this.maxTries; i++) {
      const key = this.keySource();
      checkKey(key, 'key source');
      const material = keyMaterial(key);
      if (this.owners.has(material.token)) {
        this.counters.tokenCollisions++;
        continue;
      }
      this.owners.set(material.token, owner);
      return { key, token: material.token, idsn: material.idsn };
    }
    this.counters.MPFallbackTokenInit++;
    return undefined;
  }

  /**
   * Registers a key chosen elsewhere (a connection rebuilt from a SYN cookie) to `owner`, unless
   * its token is in use (undefined, counted as tokenClaimTaken: the caller must not proceed as
   * MPTCP with that key).
   */
  claim(key: bigint, owner: T): TokenAllocation | undefined {
    checkKey(key, 'claim');
    const material = keyMaterial(key);
    if (this.owners.has(material.token)) {
      this.counters.tokenClaimTaken++;
      return undefined;
    }
    this.owners.set(material.token, owner);
    return { key, token: material.token, idsn: material.idsn };
  }

  /** The connection holding `token`, if any (for an MP_JOIN SYN). */
  lookup(token: number): T | undefined {
    return this.owners.get(token >>> 0);
  }

  /**
   * Frees `token` if `owner` holds it; true when an entry was removed. A release by anyone else
   * (a connection that lost a race, a stale handle) changes nothing.
   */
  release(token: number, owner: T): boolean {
    const t = token >>> 0;
    if (!this.owners.has(t) || this.owners.get(t) !== owner) return false;
    this.owners.delete(t);
    return true;
  }
}

function checkKey(key: bigint, what: string): void {
  if (typeof key !== 'bigint' || key < 0n || key > MAX_KEY) {
    throw new InvalidArgumentError(`token table: ${what} gave a key outside [0, 2^64): ${String(key)}`);
  }
}
