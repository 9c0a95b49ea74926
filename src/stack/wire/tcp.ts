/**
 * TCP header and options codec (RFC 9293 §3.1), in the manner of smoltcp's wire/tcp.rs: a
 * parsed representation (`TcpHeader`), `parseTcp`, `encodeTcp` and `tcpHeaderLength`.
 *
 * Options are kept as a list in wire order, NOPs included, so a parsed header re-encodes to the
 * same bytes (up to padding after an EOL, which is written as zeros). Multipath TCP options
 * (kind 30) go through the MPTCP codec; one that it rejects does not fail the segment: it is
 * carried as `{ type: 'mptcp-invalid', reason, raw }`, so the TCP header stays usable and the
 * MPTCP layer can count the reason (RFC 8684 asks for fallback or a reset, not a silent drop,
 * in several such cases).
 *
 * Malformed TCP-level options fail the whole segment with a reason: RFC 9293 §3.1 lets a
 * receiver treat an illegal option length as an error, and a segment whose option list cannot
 * be walked cannot be trusted for its MPTCP signalling either.
 */
import { InvalidArgumentError, OptionSpaceError } from '../../errors.js';
import { fitsMask, isU32, readU16, readU32, writeU16, writeU32 } from './byte-order.js';
import { internetChecksum, pseudoHeaderSumV4, pseudoHeaderSumV6 } from './checksum.js';
import {
  encodeMptcpOption,
  type MptcpOption,
  mptcpOptionLength,
  parseMptcpOption,
  TCPOPT_MPTCP,
} from './mptcp-options.js';
import { fail, type ParseResult } from './parse-result.js';

/** IANA protocol number of TCP, for the IPv4 protocol field and the IPv6 next header. */
export const IP_PROTOCOL_TCP = 6;
/** Header without options (RFC 9293 §3.1: data offset 5). */
export const TCP_MIN_HEADER_LENGTH = 20;
/** Data offset is 4 bits of 32-bit words: 60 bytes, so at most 40 bytes of options. */
export const TCP_MAX_HEADER_LENGTH = 60;
export const TCP_MAX_OPTIONS_LENGTH = TCP_MAX_HEADER_LENGTH - TCP_MIN_HEADER_LENGTH;

/** Control bits (RFC 9293 §3.1; ECE/CWR from RFC 3168; AE, the former NS bit, RFC 9768). */
export const TCP_FIN = 0x001;
export const TCP_SYN = 0x002;
export const TCP_RST = 0x004;
export const TCP_PSH = 0x008;
export const TCP_ACK = 0x010;
export const TCP_URG = 0x020;
export const TCP_ECE = 0x040;
export const TCP_CWR = 0x080;
export const TCP_AE = 0x100;
/** The 12 bits after the data offset: control bits plus the still-reserved ones, kept as sent. */
const FLAGS_MASK = 0xfff;

/** Option kinds (IANA "TCP Option Kind Numbers") and their fixed lengths. */
export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
/** RFC 9293 §3.2: MSS, length 4. */
export const TCPOPT_MSS = 2;
const TCPOLEN_MSS = 4;
/** RFC 7323 §2.2: window scale, length 3. */
export const TCPOPT_WINDOW_SCALE = 3;
const TCPOLEN_WINDOW_SCALE = 3;
/** RFC 2018 §2: SACK-permitted, length 2. */
export const TCPOPT_SACK_PERMITTED = 4;
const TCPOLEN_SACK_PERMITTED = 2;
/** RFC 2018 §3: SACK, length 2 + 8 per block. */
export const TCPOPT_SACK = 5;
const TCPOLEN_SACK_BLOCK = 8;
/** 4 blocks = 34 bytes is all that fits in 40 bytes of option space (RFC 2018 §3). */
export const TCP_MAX_SACK_BLOCKS = 4;
/** RFC 7323 §3.2: timestamps, length 10. */
export const TCPOPT_TIMESTAMPS = 8;
const TCPOLEN_TIMESTAMPS = 10;

export interface SackBlock {
  /** First sequence number of the block. */
  left: number;
  /** Sequence number just after the block. */
  right: number;
}

/** One TCP option, in wire order. */
export type TcpOption =
  | { type: 'eol' }
  | { type: 'nop' }
  | { type: 'mss'; mss: number }
  /** `shift` as sent; RFC 7323 §2.3 says to use 14 for anything larger: that is the caller's. */
  | { type: 'window-scale'; shift: number }
  | { type: 'sack-permitted' }
  | { type: 'sack'; blocks: SackBlock[] }
  | { type: 'timestamps'; tsVal: number; tsEcr: number }
  | { type: 'mptcp'; option: MptcpOption }
  /** An MPTCP option its codec rejected: the whole option (kind and length included), copied. */
  | { type: 'mptcp-invalid'; reason: string; raw: Uint8Array }
  /** Any other kind; `data` is the option body after kind and length, copied. */
  | { type: 'unknown'; kind: number; data: Uint8Array };

export type TcpOptionType = TcpOption['type'];

/** What a caller provides to encode a header; a parsed `TcpHeader` is one too. */
export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seqNumber: number;
  ackNumber: number;
  /** Control bits (TCP_SYN | TCP_ACK...), plus any reserved bits as received. */
  flags: number;
  window: number;
  /** Written as given (0 when absent); see `fillTcpChecksumV4` / `fillTcpChecksumV6`. */
  checksum?: number;
  urgentPointer?: number;
  options: TcpOption[];
}

export interface TcpHeader extends TcpFields {
  checksum: number;
  urgentPointer: number;
  /** The data offset field: header length in 32-bit words. */
  dataOffset: number;
  /** Data offset in bytes: the payload starts this far after the header. */
  headerLength: number;
}

// Options without fields are shared (and frozen) rather than allocated per segment.
const NOP: TcpOption = Object.freeze({ type: 'nop' });
const EOL: TcpOption = Object.freeze({ type: 'eol' });
const SACK_PERMITTED: TcpOption = Object.freeze({ type: 'sack-permitted' });

/** Adapter to the MPTCP option codec: `opt` is the whole option, kind and length included. */
function decodeMptcp(opt: Uint8Array): ParseResult<MptcpOption> {
  return parseMptcpOption(opt);
}

/**
 * Parses the TCP header at buf[start, end) (the IP payload). The payload is
 * buf[start + headerLength, end). Never throws.
 */
export function parseTcp(buf: Uint8Array, start = 0, end = buf.length): ParseResult<TcpHeader> {
  if (start < 0 || end > buf.length || end - start < TCP_MIN_HEADER_LENGTH) return fail('tcp.truncated');
  const dataOffset = buf[start + 12]! >>> 4;
  const headerLength = dataOffset * 4;
  if (headerLength < TCP_MIN_HEADER_LENGTH) return fail('tcp.bad-data-offset');
  if (headerLength > end - start) return fail('tcp.truncated');
  const options: TcpOption[] = [];
  const reason = parseOptions(buf, start + TCP_MIN_HEADER_LENGTH, start + headerLength, options);
  if (reason !== undefined) return fail(reason);
  return {
    ok: true,
    value: {
      srcPort: readU16(buf, start),
      dstPort: readU16(buf, start + 2),
      seqNumber: readU32(buf, start + 4),
      ackNumber: readU32(buf, start + 8),
      dataOffset,
      headerLength,
      flags: readU16(buf, start + 12) & FLAGS_MASK,
      window: readU16(buf, start + 14),
      checksum: readU16(buf, start + 16),
      urgentPointer: readU16(buf, start + 18),
      options,
    },
  };
}

/** Walks the option bytes [at, end) into `out`; returns a failure reason or undefined. */
function parseOptions(buf: Uint8Array, at: number, end: number, out: TcpOption[]): string | undefined {
  while (at < end) {
    const kind = buf[at]!;
    if (kind === TCPOPT_EOL) {
      // RFC 9293 §3.1: the end of the list; what follows is padding.
      out.push(EOL);
      return undefined;
    }
    if (kind === TCPOPT_NOP) {
      out.push(NOP);
      at++;
      continue;
    }
    if (at + 2 > end) return 'tcp.option-truncated';
    const length = buf[at + 1]!;
    if (length < 2) return 'tcp.bad-option-length';
    if (at + length > end) return 'tcp.option-overrun';
    switch (kind) {
      case TCPOPT_MSS:
        if (length !== TCPOLEN_MSS) return 'tcp.bad-mss-length';
        out.push({ type: 'mss', mss: readU16(buf, at + 2) });
        break;
      case TCPOPT_WINDOW_SCALE:
        if (length !== TCPOLEN_WINDOW_SCALE) return 'tcp.bad-window-scale-length';
        out.push({ type: 'window-scale', shift: buf[at + 2]! });
        break;
      case TCPOPT_SACK_PERMITTED:
        if (length !== TCPOLEN_SACK_PERMITTED) return 'tcp.bad-sack-permitted-length';
        out.push(SACK_PERMITTED);
        break;
      case TCPOPT_SACK: {
        if (length < 2 + TCPOLEN_SACK_BLOCK || (length - 2) % TCPOLEN_SACK_BLOCK !== 0) {
          return 'tcp.bad-sack-length';
        }
        const blocks: SackBlock[] = [];
        for (let b = at + 2; b < at + length; b += TCPOLEN_SACK_BLOCK) {
          blocks.push({ left: readU32(buf, b), right: readU32(buf, b + 4) });
        }
        out.push({ type: 'sack', blocks });
        break;
      }
      case TCPOPT_TIMESTAMPS:
        if (length !== TCPOLEN_TIMESTAMPS) return 'tcp.bad-timestamps-length';
        out.push({ type: 'timestamps', tsVal: readU32(buf, at + 2), tsEcr: readU32(buf, at + 6) });
        break;
      case TCPOPT_MPTCP: {
        const raw = buf.subarray(at, at + length);
        const parsed = decodeMptcp(raw);
        out.push(
          parsed.ok
            ? { type: 'mptcp', option: parsed.value }
            : { type: 'mptcp-invalid', reason: parsed.reason, raw: raw.slice() },
        );
        break;
      }
      default:
        // RFC 9293 §3.1: unknown options with a length field are skipped.
        out.push({ type: 'unknown', kind, data: buf.slice(at + 2, at + length) });
    }
    at += length;
  }
  return undefined;
}

/** Encoded length of one option, without padding. */
export function tcpOptionLength(option: TcpOption): number {
  switch (option.type) {
    case 'eol':
    case 'nop':
      return 1;
    case 'mss':
      return TCPOLEN_MSS;
    case 'window-scale':
      return TCPOLEN_WINDOW_SCALE;
    case 'sack-permitted':
      return TCPOLEN_SACK_PERMITTED;
    case 'sack':
      return 2 + TCPOLEN_SACK_BLOCK * option.blocks.length;
    case 'timestamps':
      return TCPOLEN_TIMESTAMPS;
    case 'mptcp':
      return mptcpOptionLength(option.option);
    case 'mptcp-invalid':
      return option.raw.length;
    case 'unknown':
      return 2 + option.data.length;
  }
}

/** Bytes the options take on the wire, padded to a multiple of 4 (the data offset's unit). */
export function tcpOptionsLength(options: readonly TcpOption[]): number {
  let length = 0;
  for (const option of options) length += tcpOptionLength(option);
  return (length + 3) & ~3;
}

/** Header length `encodeTcp` writes: 20 plus the padded options. */
export function tcpHeaderLength(h: Pick<TcpFields, 'options'>): number {
  return TCP_MIN_HEADER_LENGTH + tcpOptionsLength(h.options);
}

/** Option bytes left in a header that already carries `options` (before padding). */
export function tcpOptionSpaceLeft(options: readonly TcpOption[]): number {
  let length = 0;
  for (const option of options) length += tcpOptionLength(option);
  return TCP_MAX_OPTIONS_LENGTH - length;
}

/**
 * Writes the header and options at out[offset...] and returns the header length. The checksum
 * field gets `h.checksum ?? 0`: fill it in once the payload is in place. Throws
 * OptionSpaceError when the options exceed 40 bytes, InvalidArgumentError on other misuse.
 */
export function encodeTcp(h: TcpFields, out: Uint8Array, offset = 0): number {
  const optionsLength = tcpOptionsLength(h.options);
  if (optionsLength > TCP_MAX_OPTIONS_LENGTH) {
    throw new OptionSpaceError(`TCP options take ${optionsLength} bytes; at most 40 fit`);
  }
  const checksum = h.checksum ?? 0;
  const urgentPointer = h.urgentPointer ?? 0;
  if (!fitsMask(h.srcPort, 0xffff) || !fitsMask(h.dstPort, 0xffff) || !fitsMask(h.window, 0xffff)) {
    throw new InvalidArgumentError('TCP ports and window must fit 16 bits');
  }
  if (!isU32(h.seqNumber) || !isU32(h.ackNumber)) {
    throw new InvalidArgumentError('TCP sequence and acknowledgment numbers must be uint32');
  }
  if (!fitsMask(h.flags, 0xfff) || !fitsMask(checksum, 0xffff) || !fitsMask(urgentPointer, 0xffff)) {
    throw new InvalidArgumentError('TCP flags must fit 12 bits, checksum and urgent pointer 16 bits');
  }
  const headerLength = TCP_MIN_HEADER_LENGTH + optionsLength;
  if (offset < 0 || offset + headerLength > out.length) {
    throw new InvalidArgumentError(`TCP header needs ${headerLength} bytes at offset ${offset}`);
  }
  writeU16(out, offset, h.srcPort);
  writeU16(out, offset + 2, h.dstPort);
  writeU32(out, offset + 4, h.seqNumber);
  writeU32(out, offset + 8, h.ackNumber);
  writeU16(out, offset + 12, ((headerLength >>> 2) << 12) | h.flags);
  writeU16(out, offset + 14, h.window);
  writeU16(out, offset + 16, checksum);
  writeU16(out, offset + 18, urgentPointer);
  let at = offset + TCP_MIN_HEADER_LENGTH;
  for (const option of h.options) at = encodeOption(option, out, at);
  // Pad with EOL (zero) bytes to the data offset.
  out.fill(0, at, offset + headerLength);
  return headerLength;
}

function encodeOption(option: TcpOption, out: Uint8Array, at: number): number {
  switch (option.type) {
    case 'eol':
      out[at] = TCPOPT_EOL;
      return at + 1;
    case 'nop':
      out[at] = TCPOPT_NOP;
      return at + 1;
    case 'mss':
      if (!fitsMask(option.mss, 0xffff)) throw new InvalidArgumentError('TCP MSS must fit 16 bits');
      out[at] = TCPOPT_MSS;
      out[at + 1] = TCPOLEN_MSS;
      writeU16(out, at + 2, option.mss);
      return at + TCPOLEN_MSS;
    case 'window-scale':
      if (!fitsMask(option.shift, 0xff)) throw new InvalidArgumentError('TCP window scale must fit 8 bits');
      out[at] = TCPOPT_WINDOW_SCALE;
      out[at + 1] = TCPOLEN_WINDOW_SCALE;
      out[at + 2] = option.shift;
      return at + TCPOLEN_WINDOW_SCALE;
    case 'sack-permitted':
      out[at] = TCPOPT_SACK_PERMITTED;
      out[at + 1] = TCPOLEN_SACK_PERMITTED;
      return at + TCPOLEN_SACK_PERMITTED;
    case 'sack': {
      const n = option.blocks.length;
      if (n < 1 || n > TCP_MAX_SACK_BLOCKS) throw new InvalidArgumentError('TCP SACK needs 1 to 4 blocks');
      out[at] = TCPOPT_SACK;
      out[at + 1] = 2 + TCPOLEN_SACK_BLOCK * n;
      let b = at + 2;
      for (const block of option.blocks) {
        if (!isU32(block.left) || !isU32(block.right)) {
          throw new InvalidArgumentError('TCP SACK edges must be uint32');
        }
        writeU32(out, b, block.left);
        writeU32(out, b + 4, block.right);
        b += TCPOLEN_SACK_BLOCK;
      }
      return b;
    }
    case 'timestamps':
      if (!isU32(option.tsVal) || !isU32(option.tsEcr)) {
        throw new InvalidArgumentError('TCP timestamps must be uint32');
      }
      out[at] = TCPOPT_TIMESTAMPS;
      out[at + 1] = TCPOLEN_TIMESTAMPS;
      writeU32(out, at + 2, option.tsVal);
      writeU32(out, at + 6, option.tsEcr);
      return at + TCPOLEN_TIMESTAMPS;
    case 'mptcp':
      return at + encodeMptcpOption(option.option, out, at);
    case 'mptcp-invalid':
      out.set(option.raw, at);
      return at + option.raw.length;
    case 'unknown':
      if (
        !fitsMask(option.kind, 0xff) ||
        option.kind <= TCPOPT_NOP ||
        option.data.length > TCP_MAX_OPTIONS_LENGTH - 2
      ) {
        throw new InvalidArgumentError('unknown TCP option needs a kind above 1 and at most 38 data bytes');
      }
      out[at] = option.kind;
      out[at + 1] = 2 + option.data.length;
      out.set(option.data, at + 2);
      return at + 2 + option.data.length;
  }
}

/** The first option of the given type, typed accordingly. */
export function findTcpOption<T extends TcpOptionType>(
  options: readonly TcpOption[],
  type: T,
): Extract<TcpOption, { type: T }> | undefined {
  for (const option of options) {
    if (option.type === type) return option as Extract<TcpOption, { type: T }>;
  }
  return undefined;
}

/** Offset of the checksum field within the TCP header. */
const CHECKSUM_OFFSET = 16;

/** Writes the checksum of the segment buf[start, end) given its pseudo-header sum; returns it. */
function fillTcpChecksum(buf: Uint8Array, start: number, end: number, pseudoSum: number): number {
  writeU16(buf, start + CHECKSUM_OFFSET, 0);
  const checksum = internetChecksum(buf, start, end, pseudoSum);
  writeU16(buf, start + CHECKSUM_OFFSET, checksum);
  return checksum;
}

/**
 * True when the TCP segment buf[start, end) carries a valid checksum for the IPv4 addresses
 * (uint32): the sum over pseudo-header and segment, checksum field included, is all ones.
 */
export function verifyTcpChecksumV4(
  buf: Uint8Array,
  start: number,
  end: number,
  src: number,
  dst: number,
): boolean {
  return internetChecksum(buf, start, end, pseudoHeaderSumV4(src, dst, IP_PROTOCOL_TCP, end - start)) === 0;
}

/** Computes and writes the checksum of the TCP segment buf[start, end) over IPv4; returns it. */
export function fillTcpChecksumV4(
  buf: Uint8Array,
  start: number,
  end: number,
  src: number,
  dst: number,
): number {
  return fillTcpChecksum(buf, start, end, pseudoHeaderSumV4(src, dst, IP_PROTOCOL_TCP, end - start));
}

/** As `verifyTcpChecksumV4`, for IPv6 (16-byte addresses). */
export function verifyTcpChecksumV6(
  buf: Uint8Array,
  start: number,
  end: number,
  src: Uint8Array,
  dst: Uint8Array,
): boolean {
  return internetChecksum(buf, start, end, pseudoHeaderSumV6(src, dst, IP_PROTOCOL_TCP, end - start)) === 0;
}

/** As `fillTcpChecksumV4`, for IPv6 (16-byte addresses). */
export function fillTcpChecksumV6(
  buf: Uint8Array,
  start: number,
  end: number,
  src: Uint8Array,
  dst: Uint8Array,
): number {
  return fillTcpChecksum(buf, start, end, pseudoHeaderSumV6(src, dst, IP_PROTOCOL_TCP, end - start));
}
