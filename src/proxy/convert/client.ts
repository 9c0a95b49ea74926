/**
 * The client's side of RFC 8803, for `mptun client` in converter mode: the request it sends first
 * on its connection to the converter, and how it reads the converter's first bytes.
 *
 * - `convertRequest(destination, opts)`: Convert header + Connect TLV (+ Info TLV when asking for
 *   the converter's TCP extensions, + mptun's authentication TLV with a pre-shared key). The app's
 *   first bytes may follow it on the same connection (the converter passes them on once connected).
 * - `parseConvertReply(bytes)`: `connected` (what follows `length` is the destination's data),
 *   `error` (the Error TLV's code: the RFC maps these to a refused or reset connection for the
 *   app), `truncated` (read more), or `malformed`. Never throws.
 */
import { authTlv } from './auth.js';
import {
  convertErrorName,
  encodeConnectTlv,
  encodeConvertMessage,
  encodeInfoTlv,
  parseConvertMessage,
  TLV_ERROR,
  TLV_SUPPORTED_TCP_EXTENSIONS,
} from './codec.js';

export interface ConvertRequestOptions {
  /** Pre-shared key of a converter started with --psk-file. */
  key?: Buffer | undefined;
  /** Ask for the converter's supported TCP extensions (an Info TLV). */
  info?: boolean | undefined;
  /** Clock for the authentication timestamp (ms). */
  nowMs?: number | undefined;
}

/** The bytes a client sends first: the Convert message asking for `destination`. */
export function convertRequest(
  destination: { host: string; port: number },
  o: ConvertRequestOptions = {},
): Buffer {
  const connect = encodeConnectTlv(destination.host, destination.port);
  const tlvs = [...(o.info ? [encodeInfoTlv()] : []), connect];
  if (o.key !== undefined) tlvs.push(authTlv(o.key, connect, o.nowMs));
  return encodeConvertMessage(tlvs);
}

export type ConvertReply =
  | { state: 'truncated'; need: number }
  | { state: 'connected'; length: number; extensions?: number[] }
  | { state: 'error'; length: number; code: number; name: string }
  | { state: 'malformed'; reason: string };

/** Reads the converter's answer at the start of `buf`. */
export function parseConvertReply(buf: Buffer): ConvertReply {
  const p = parseConvertMessage(buf);
  if (!p.ok)
    return p.reason === 'truncated'
      ? { state: 'truncated', need: p.need }
      : { state: 'malformed', reason: p.reason };
  let extensions: number[] | undefined;
  for (const t of p.tlvs) {
    if (t.type === TLV_ERROR && 'code' in t)
      return { state: 'error', length: p.length, code: t.code, name: convertErrorName(t.code) };
    if (t.type === TLV_SUPPORTED_TCP_EXTENSIONS && 'kinds' in t) extensions = t.kinds;
  }
  return { state: 'connected', length: p.length, ...(extensions === undefined ? {} : { extensions }) };
}
