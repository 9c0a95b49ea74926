/**
 * Optional pre-shared-key authentication of Convert requests (mptun's own private-use TLV,
 * codec.ts TLV_MPTUN_AUTH). The client adds, after its Connect TLV, a TLV with the time it sent
 * the request and HMAC-SHA256(key, label || timestamp || Connect TLV bytes); the converter
 * recomputes it and takes the request only within `skewMs` of its own clock. A request copied off
 * the wire can be replayed within that window, to the same destination only (the MAC covers
 * the Connect TLV); the tunnel is not encrypted.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeAuthTlv } from './codec.js';

const LABEL = Buffer.from('mptun convert auth v1\0');
export const DEFAULT_AUTH_SKEW_MS = 60_000;

function mac(key: Buffer, timestampMs: bigint, connectTlv: Buffer): Buffer {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(timestampMs);
  return createHmac('sha256', key).update(LABEL).update(ts).update(connectTlv).digest();
}

/** The authentication TLV for a request whose Connect TLV is `connectTlv`. */
export function authTlv(key: Buffer, connectTlv: Buffer, nowMs: number = Date.now()): Buffer {
  const ts = BigInt(Math.floor(nowMs));
  return encodeAuthTlv(ts, mac(key, ts, connectTlv));
}

export type AuthVerdict = 'ok' | 'missing' | 'bad-mac' | 'stale';

/** Checks a received authentication TLV against the Connect TLV it came with. */
export function checkAuth(
  key: Buffer,
  connectTlv: Buffer,
  auth: { timestampMs: bigint; mac: Buffer } | undefined,
  nowMs: number = Date.now(),
  skewMs: number = DEFAULT_AUTH_SKEW_MS,
): AuthVerdict {
  if (auth === undefined) return 'missing';
  const expected = mac(key, auth.timestampMs, connectTlv);
  if (auth.mac.length !== expected.length || !timingSafeEqual(auth.mac, expected)) return 'bad-mac';
  const age = Math.abs(nowMs - Number(auth.timestampMs));
  return age <= skewMs ? 'ok' : 'stale';
}
