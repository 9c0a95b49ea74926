/**
 * SYN cookies: when a listener's SYN backlog is full, the SYN-ACK's ISN encodes what the
 * connection needs, so no state is kept until the peer's ACK returns it (the idea of D. J.
 * Bernstein's cookies and Linux's tcp_syncookies; the layout here is our own).
 *
 * Cookie (the ISN of the SYN-ACK), 32 bits:
 *   31..27  time slot (1-minute slots, low 5 bits)
 *   26..24  MSS index into MSS_TABLE (the largest entry not above the peer's MSS)
 *   23..0   keyed hash of (four-tuple, full time slot, MSS index, peer ISN, option bits)
 *
 * Window scale and SACK-permitted do not fit in 32 bits beside a hash worth the name; like Linux
 * they ride in the low bits of our timestamp value when the peer sent timestamps (and come back
 * in its TSecr). A peer without timestamps gets a connection without window scaling and SACK.
 */
import { InvalidArgumentError } from '../../errors.js';
import type { IpAddress } from './address.js';
import { fourTupleHash } from './isn.js';

/** MSS values a cookie can carry (3 bits). 1220 = IPv6 minimum MTU 1280 - 60; 1440/1460 = Ethernet. */
export const MSS_TABLE: readonly number[] = [536, 1220, 1300, 1360, 1400, 1440, 1460, 8960];
/** A cookie is valid for its slot and the one before: at most two minutes (Linux: MAX_SYNCOOKIE_AGE). */
export const COOKIE_SLOT_MS = 60_000;
const SLOT_BITS = 5;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
const HASH_MASK = 0xff_ffff;
/** Timestamp option bits (RFC 7323 TSval low bits, as Linux's TS_OPT_*): 4 bits window scale, 1 bit SACK. */
const TS_BITS = 6;
const TS_MASK = (1 << TS_BITS) - 1;
const TS_WSCALE_MASK = 0xf;
/** RFC 7323 §2.3: shifts above 14 are treated as 14, so 15 is free to mean "no window scale". */
const TS_WSCALE_NONE = 0xf;
const TS_SACK = 0x10;
/** Marks "options were encoded in TSval" in the hash input, so the bits cannot be altered alone. */
const TS_PRESENT = 0x100;

/** What the peer's SYN offered. */
export interface CookieSynInfo {
  /** Peer ISN (the SYN's sequence number). */
  peerIsn: number;
  /** The peer's MSS option (536 when absent, RFC 9293 §3.7.1). */
  peerMss: number;
  /** The peer's window-scale shift, undefined when it sent none. */
  peerWindowScale: number | undefined;
  sackPermitted: boolean;
  /** The peer sent a timestamps option. */
  timestamps: boolean;
}

/** What a valid returning ACK gives back. */
export interface CookieConnectionInfo {
  /** Our ISN (the cookie). */
  iss: number;
  /** The peer's ISN. */
  irs: number;
  /** MSS to send with (from MSS_TABLE). */
  mss: number;
  peerWindowScale: number | undefined;
  sackPermitted: boolean;
  timestamps: boolean;
}

export interface SynCookieCounters {
  /** SYN-ACKs answered with a cookie. */
  synCookiesSent: number;
  /** Returning ACKs whose cookie checked out (connections built from them). */
  synCookiesValid: number;
  /** ACKs to a listener that matched no connection and carried no valid cookie. */
  synCookiesInvalid: number;
}

export interface CookieSynAck {
  /** The cookie: our ISN. */
  iss: number;
  /** The MSS the cookie encodes. */
  mss: number;
  /** Our TSval for the SYN-ACK when the peer sent timestamps (options in its low bits). */
  tsVal: number | undefined;
}

function slotOf(now: number): number {
  return Math.floor(now / COOKIE_SLOT_MS);
}

export function mssIndexFor(peerMss: number): number {
  let index = 0;
  for (let i = 0; i < MSS_TABLE.length; i++) if (MSS_TABLE[i]! <= peerMss) index = i;
  return index;
}

export class SynCookies {
  readonly counters: SynCookieCounters = { synCookiesSent: 0, synCookiesValid: 0, synCookiesInvalid: 0 };

  constructor(private readonly secret: Uint8Array) {
    if (secret.length < 16) throw new InvalidArgumentError('SYN cookie secret must be at least 16 bytes');
  }

  /**
   * Makes the cookie for a SYN. `tsNow` is our current timestamp clock value (TSval), needed
   * when the peer sent timestamps; the returned TSval is never above it, so the timestamps the
   * connection sends later do not go backwards.
   */
  encode(
    now: number,
    local: IpAddress,
    localPort: number,
    remote: IpAddress,
    remotePort: number,
    syn: CookieSynInfo,
    tsNow: number,
  ): CookieSynAck {
    const slot = slotOf(now);
    const mssIndex = mssIndexFor(syn.peerMss);
    let tsVal: number | undefined;
    let tsBits = 0;
    if (syn.timestamps) {
      const wscale = syn.peerWindowScale === undefined ? TS_WSCALE_NONE : Math.min(syn.peerWindowScale, 14);
      const bits = wscale | (syn.sackPermitted ? TS_SACK : 0);
      tsBits = TS_PRESENT | bits;
      let v = ((tsNow & ~TS_MASK) | bits) >>> 0;
      // Never ahead of the clock the connection will use.
      if (((v - tsNow) | 0) > 0) v = (v - (TS_MASK + 1)) >>> 0;
      tsVal = v;
    }
    const hash = this.hash(local, localPort, remote, remotePort, slot, mssIndex, syn.peerIsn, tsBits);
    const iss = (((slot & SLOT_MASK) << 27) | (mssIndex << 24) | (hash & HASH_MASK)) >>> 0;
    this.counters.synCookiesSent++;
    return { iss, mss: MSS_TABLE[mssIndex]!, tsVal };
  }

  /**
   * Checks the ACK (no SYN, no RST) that completes a cookie handshake: `seq` and `ack` as
   * received, `tsEcr` the echoed timestamp when the ACK carries timestamps. Returns the
   * connection's parameters, or undefined (counted) when the cookie is not ours or too old.
   */
  decode(
    now: number,
    local: IpAddress,
    localPort: number,
    remote: IpAddress,
    remotePort: number,
    seq: number,
    ack: number,
    tsEcr: number | undefined,
  ): CookieConnectionInfo | undefined {
    const iss = (ack - 1) >>> 0;
    const irs = (seq - 1) >>> 0;
    const current = slotOf(now);
    const cookieSlot = iss >>> 27;
    const age = (current - cookieSlot) & SLOT_MASK;
    const mssIndex = (iss >>> 24) & 0x7;
    const tsBits = tsEcr === undefined ? 0 : TS_PRESENT | (tsEcr & (TS_WSCALE_MASK | TS_SACK));
    if (age <= 1) {
      const slot = current - age;
      const hash = this.hash(local, localPort, remote, remotePort, slot, mssIndex, irs, tsBits);
      if ((hash & HASH_MASK) === (iss & HASH_MASK)) {
        this.counters.synCookiesValid++;
        const wscale = tsEcr === undefined ? TS_WSCALE_NONE : tsEcr & TS_WSCALE_MASK;
        return {
          iss,
          irs,
          mss: MSS_TABLE[mssIndex]!,
          peerWindowScale: wscale === TS_WSCALE_NONE ? undefined : wscale,
          sackPermitted: tsEcr !== undefined && (tsEcr & TS_SACK) !== 0,
          timestamps: tsEcr !== undefined,
        };
      }
    }
    this.counters.synCookiesInvalid++;
    return undefined;
  }

  private hash(
    local: IpAddress,
    localPort: number,
    remote: IpAddress,
    remotePort: number,
    slot: number,
    mssIndex: number,
    peerIsn: number,
    tsBits: number,
  ): number {
    return fourTupleHash(
      this.secret,
      'syn-cookie',
      local,
      localPort,
      remote,
      remotePort,
      slot,
      mssIndex,
      peerIsn,
      tsBits,
    );
  }
}
