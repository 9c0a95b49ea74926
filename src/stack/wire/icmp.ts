/**
 * ICMPv4 echo request and reply (RFC 792): type, code, checksum over the whole ICMP message,
 * identifier, sequence number, then the data the reply must return unchanged. Only what the
 * device self-check and tests need; other ICMP types are reported as such, not parsed.
 */
import { InvalidArgumentError } from '../../errors.js';
import { isUint, readU16, writeU16 } from './byte-order.js';
import { internetChecksum } from './checksum.js';
import { fail, ok, type ParseResult } from './parse-result.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ECHO_HEADER_LENGTH = 8;

export interface IcmpEcho {
  type: typeof ICMP_ECHO_REQUEST | typeof ICMP_ECHO_REPLY;
  identifier: number;
  sequence: number;
  /** A view into the parsed buffer, not a copy. */
  data: Uint8Array;
}

/**
 * Parses the ICMP message in buf[offset, end) (the IPv4 payload). With `verifyChecksum` a
 * message whose checksum is wrong is rejected.
 */
export function parseIcmpEcho(
  buf: Uint8Array,
  offset = 0,
  end = buf.length,
  verifyChecksum = true,
): ParseResult<IcmpEcho> {
  if (end > buf.length || end - offset < ICMP_ECHO_HEADER_LENGTH) return fail('icmp.truncated');
  const type = buf[offset]!;
  if (type !== ICMP_ECHO_REQUEST && type !== ICMP_ECHO_REPLY) return fail('icmp.not-echo');
  if (buf[offset + 1] !== 0) return fail('icmp.bad-code');
  if (verifyChecksum && internetChecksum(buf, offset, end) !== 0) return fail('icmp.bad-checksum');
  return ok({
    type,
    identifier: readU16(buf, offset + 4),
    sequence: readU16(buf, offset + 6),
    data: buf.subarray(offset + ICMP_ECHO_HEADER_LENGTH, end),
  });
}

/** Writes the message (checksum included) at out[offset...]; returns its length. */
export function encodeIcmpEcho(echo: IcmpEcho, out: Uint8Array, offset = 0): number {
  if (!isUint(echo.identifier, 16) || !isUint(echo.sequence, 16)) {
    throw new InvalidArgumentError('ICMP identifier and sequence must fit 16 bits');
  }
  const length = ICMP_ECHO_HEADER_LENGTH + echo.data.length;
  if (offset < 0 || offset + length > out.length) {
    throw new InvalidArgumentError(`ICMP echo needs ${length} bytes at offset ${offset}`);
  }
  out[offset] = echo.type;
  out[offset + 1] = 0;
  writeU16(out, offset + 2, 0);
  writeU16(out, offset + 4, echo.identifier);
  writeU16(out, offset + 6, echo.sequence);
  out.set(echo.data, offset + ICMP_ECHO_HEADER_LENGTH);
  writeU16(out, offset + 2, internetChecksum(out, offset, offset + length));
  return length;
}
