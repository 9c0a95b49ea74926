/**
 * The 0-RTT TCP Convert Protocol (RFC 8803) wire format: what a client sends in the first bytes of
 * its (MPTCP) connection to a Transport Converter, and what the converter answers.
 *
 * Every message starts with the 4-byte Convert fixed header (version 1, total length in 32-bit
 * words including the header, 16 unassigned bits), followed by TLVs, each with a 1-byte type, a
 * 1-byte length in 32-bit words (including type and length) and a value padded to a word.
 * Bytes after `totalLength * 4` are application data.
 *
 * Encoders return fresh Buffers; `parseConvertMessage` never throws: a result with a stable
 * `reason` (and the matching Error TLV code to answer with) for everything it cannot accept.
 */
import { isIP } from 'node:net';

export const CONVERT_VERSION = 1;
export const CONVERT_HEADER_LENGTH = 4;
/** The largest Convert message: the total length is one byte of 32-bit words. */
export const CONVERT_MAX_LENGTH = 255 * 4;

/** TLV types (IANA "Convert TLVs"). */
export const TLV_INFO = 1;
export const TLV_CONNECT = 10;
export const TLV_EXTENDED_TCP_HEADER = 20;
export const TLV_SUPPORTED_TCP_EXTENSIONS = 21;
export const TLV_COOKIE = 22;
export const TLV_ERROR = 30;
/**
 * mptun's pre-shared-key authentication of a request (a private-use type, 192-255): 2 unassigned
 * bytes, an 8-byte timestamp (ms since the epoch) and the 32-byte HMAC-SHA256 of the request
 * (see auth.ts). Not part of RFC 8803; a converter without a key refuses it as unsupported.
 */
export const TLV_MPTUN_AUTH = 0xc0;

/** Error codes (IANA "Convert Errors"). */
export const ConvertError = {
  UnsupportedVersion: 0,
  MalformedMessage: 1,
  UnsupportedMessage: 2,
  MissingCookie: 3,
  NotAuthorized: 32,
  UnsupportedTcpOption: 33,
  ResourceExceeded: 64,
  NetworkFailure: 65,
  ConnectionReset: 96,
  DestinationUnreachable: 97,
} as const;
export type ConvertErrorCode = (typeof ConvertError)[keyof typeof ConvertError];

const ERROR_NAMES: Record<number, string> = {
  0: 'unsupported version',
  1: 'malformed message',
  2: 'unsupported message',
  3: 'missing cookie',
  32: 'not authorized',
  33: 'unsupported TCP option',
  64: 'resource exceeded',
  65: 'network failure',
  96: 'connection reset by the destination',
  97: 'destination unreachable',
};

/** A human-readable name for an error code ("error 77" for an unknown one). */
export function convertErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `error ${code}`;
}

export type ConvertTlv =
  | { type: typeof TLV_INFO }
  | {
      type: typeof TLV_CONNECT;
      /** The destination: an IPv4 address for an IPv4-mapped one, else IPv6 text. */
      host: string;
      port: number;
      /** TCP options the client asks the converter to use towards the destination (raw). */
      options: Buffer;
    }
  | { type: typeof TLV_EXTENDED_TCP_HEADER; header: Buffer }
  | { type: typeof TLV_SUPPORTED_TCP_EXTENSIONS; kinds: number[] }
  | { type: typeof TLV_COOKIE; cookie: Buffer }
  | { type: typeof TLV_ERROR; code: number; value: Buffer }
  | { type: typeof TLV_MPTUN_AUTH; timestampMs: bigint; mac: Buffer }
  | { type: number; unknown: true; value: Buffer };

export interface ConvertMessage {
  tlvs: ConvertTlv[];
  /** Bytes the message took (the total length × 4). */
  length: number;
  /** The raw bytes of each TLV, in order (the authentication covers the Connect TLV's). */
  raw: Buffer[];
}

/** Why a message could not be taken, with the Error TLV code a converter answers it with. */
export type ConvertParseFailure =
  | { ok: false; reason: 'truncated'; need: number }
  | {
      ok: false;
      reason:
        | 'bad-version'
        | 'bad-total-length'
        | 'bad-tlv-length'
        | 'tlv-overruns-message'
        | 'bad-connect'
        | 'bad-error-tlv'
        | 'bad-auth-tlv';
      error: ConvertErrorCode;
      /** Byte offset of the offending field. */
      offset: number;
    };

export type ConvertParseResult = ({ ok: true } & ConvertMessage) | ConvertParseFailure;

function words(bytes: number): number {
  return Math.ceil(bytes / 4);
}

function pad(buf: Buffer): Buffer {
  const padded = Buffer.alloc(words(buf.length) * 4);
  buf.copy(padded);
  return padded;
}

/** The 16 bytes of an address in a Connect TLV (IPv4 as IPv4-mapped IPv6). */
export function addressBytes(host: string): Buffer {
  const family = isIP(host);
  if (family === 4) {
    const b = Buffer.alloc(16);
    b[10] = 0xff;
    b[11] = 0xff;
    for (const [i, part] of host.split('.').entries()) b[12 + i] = Number(part);
    return b;
  }
  if (family !== 6) throw new TypeError(`not an IP address: ${host}`);
  const b = Buffer.alloc(16);
  let text = host;
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const q = (quad[1] ?? '').split('.').map(Number);
    text = `${text.slice(0, -(quad[1] ?? '').length)}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return b;
}

/** The text form of 16 address bytes: IPv4 for an IPv4-mapped address, compressed IPv6 otherwise. */
export function addressText(b: Buffer): string {
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // Longest run of zero groups (two or more) becomes '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** One TLV: type, length in words, then `body` (padded). `body` starts right after the length byte. */
function tlv(type: number, body: Buffer): Buffer {
  const out = pad(Buffer.concat([Buffer.from([type, 0]), body]));
  if (out.length > 255 * 4) throw new RangeError(`Convert TLV ${type} too long (${out.length} bytes)`);
  out[1] = out.length / 4;
  return out;
}

export function encodeInfoTlv(): Buffer {
  return tlv(TLV_INFO, Buffer.alloc(2));
}

/** Connect TLV: the destination port and address, then optional raw TCP options (padded). */
export function encodeConnectTlv(host: string, port: number, options: Buffer = Buffer.alloc(0)): Buffer {
  const body = Buffer.alloc(18);
  body.writeUInt16BE(port, 0);
  addressBytes(host).copy(body, 2);
  return tlv(TLV_CONNECT, Buffer.concat([body, options]));
}

/** Extended TCP Header TLV: 2 unassigned bytes, then a TCP header (what the destination answered). */
export function encodeExtendedTcpHeaderTlv(header: Buffer): Buffer {
  return tlv(TLV_EXTENDED_TCP_HEADER, Buffer.concat([Buffer.alloc(2), header]));
}

/** Supported TCP Extensions TLV: 2 unassigned bytes, then one byte per supported TCP option kind. */
export function encodeSupportedTcpExtensionsTlv(kinds: readonly number[]): Buffer {
  return tlv(TLV_SUPPORTED_TCP_EXTENSIONS, Buffer.concat([Buffer.alloc(2), Buffer.from(kinds)]));
}

export function encodeCookieTlv(cookie: Buffer): Buffer {
  return tlv(TLV_COOKIE, Buffer.concat([Buffer.alloc(2), cookie]));
}

/** Error TLV: the code, then a value (one zero byte when there is none). */
export function encodeErrorTlv(code: number, value: Buffer = Buffer.alloc(1)): Buffer {
  return tlv(TLV_ERROR, Buffer.concat([Buffer.from([code]), value.length === 0 ? Buffer.alloc(1) : value]));
}

export function encodeAuthTlv(timestampMs: bigint, mac: Buffer): Buffer {
  const body = Buffer.alloc(10);
  body.writeBigUInt64BE(timestampMs, 2);
  return tlv(TLV_MPTUN_AUTH, Buffer.concat([body, mac]));
}

/** A whole Convert message: the fixed header (with the total length) and the TLVs, in order. */
export function encodeConvertMessage(tlvs: readonly Buffer[]): Buffer {
  const header = Buffer.from([CONVERT_VERSION, 0, 0, 0]);
  const out = Buffer.concat([header, ...tlvs]);
  if (out.length > CONVERT_MAX_LENGTH || out.length % 4 !== 0)
    throw new RangeError(
      `Convert message of ${out.length} bytes (at most ${CONVERT_MAX_LENGTH}, whole words)`,
    );
  out[1] = out.length / 4;
  return out;
}

/** An error answer: header + Error TLV. */
export function encodeConvertError(code: number, value?: Buffer): Buffer {
  return encodeConvertMessage([encodeErrorTlv(code, value)]);
}

function fail(
  reason: Exclude<ConvertParseFailure['reason'], 'truncated'>,
  error: ConvertErrorCode,
  offset: number,
): ConvertParseFailure {
  return { ok: false, reason, error, offset };
}

/**
 * Parses the Convert message at the start of `buf` (the first bytes of a connection). `truncated`
 * says how many bytes are needed in all before it can be decided; anything after the message is
 * not looked at (it is application data).
 */
export function parseConvertMessage(buf: Buffer): ConvertParseResult {
  if (buf.length < 2) return { ok: false, reason: 'truncated', need: CONVERT_HEADER_LENGTH };
  if (buf[0] !== CONVERT_VERSION) return fail('bad-version', ConvertError.UnsupportedVersion, 0);
  const total = (buf[1] ?? 0) * 4;
  if (total < CONVERT_HEADER_LENGTH) return fail('bad-total-length', ConvertError.MalformedMessage, 1);
  if (buf.length < total) return { ok: false, reason: 'truncated', need: total };
  const tlvs: ConvertTlv[] = [];
  const raw: Buffer[] = [];
  let off = CONVERT_HEADER_LENGTH;
  while (off < total) {
    if (off + 2 > total) return fail('tlv-overruns-message', ConvertError.MalformedMessage, off);
    const type = buf[off] ?? 0;
    const len = (buf[off + 1] ?? 0) * 4;
    if (len === 0) return fail('bad-tlv-length', ConvertError.MalformedMessage, off + 1);
    if (off + len > total) return fail('tlv-overruns-message', ConvertError.MalformedMessage, off + 1);
    const t = buf.subarray(off, off + len);
    const parsed = parseTlv(type, t);
    if (typeof parsed === 'string')
      return fail(
        parsed,
        parsed === 'bad-auth-tlv' ? ConvertError.NotAuthorized : ConvertError.MalformedMessage,
        off,
      );
    tlvs.push(parsed);
    raw.push(Buffer.from(t));
    off += len;
  }
  return { ok: true, tlvs, raw, length: total };
}

function parseTlv(type: number, t: Buffer): ConvertTlv | 'bad-connect' | 'bad-error-tlv' | 'bad-auth-tlv' {
  switch (type) {
    case TLV_INFO:
      return { type };
    case TLV_CONNECT: {
      if (t.length < 20) return 'bad-connect';
      const port = t.readUInt16BE(2);
      if (port === 0) return 'bad-connect';
      return { type, port, host: addressText(t.subarray(4, 20)), options: Buffer.from(t.subarray(20)) };
    }
    case TLV_EXTENDED_TCP_HEADER:
      return { type, header: Buffer.from(t.subarray(4)) };
    case TLV_SUPPORTED_TCP_EXTENSIONS:
      // Padding bytes are zero (TCP's end-of-option-list kind), never an extension.
      return { type, kinds: [...t.subarray(4)].filter((k) => k !== 0) };
    case TLV_COOKIE:
      return { type, cookie: Buffer.from(t.subarray(4)) };
    case TLV_ERROR:
      if (t.length < 4) return 'bad-error-tlv';
      return { type, code: t[2] ?? 0, value: Buffer.from(t.subarray(3)) };
    case TLV_MPTUN_AUTH:
      if (t.length !== 44) return 'bad-auth-tlv';
      return { type, timestampMs: t.readBigUInt64BE(4), mac: Buffer.from(t.subarray(12, 44)) };
    default:
      return { type, unknown: true, value: Buffer.from(t.subarray(2)) };
  }
}
