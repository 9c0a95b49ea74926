/**
 * UDP header (RFC 768): source port, destination port, length (header + data), checksum over
 * the pseudo-header, header and data. Over IPv4 a zero checksum means "none"; a computed zero is
 * sent as 0xffff.
 */
import { InvalidArgumentError } from '../../errors.js';
import { isUint, readU16, writeU16 } from './byte-order.js';
import { internetChecksum } from './checksum.js';
import { fail, ok, type ParseResult } from './parse-result.js';

export const UDP_HEADER_LENGTH = 8;
export const IPPROTO_UDP = 17;

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  /** Header plus data, as on the wire. */
  length: number;
  checksum: number;
  /** A view into the parsed buffer, not a copy. */
  payload: Uint8Array;
}

/**
 * Parses the datagram in buf[offset, end) (the IP payload; bytes past `length` are ignored).
 * When `pseudoSum` (see pseudoHeaderSumV4/V6 in checksum.ts, with the datagram's length) is
 * given and the checksum field is not zero, a wrong checksum is rejected.
 */
export function parseUdp(
  buf: Uint8Array,
  offset = 0,
  end = buf.length,
  pseudoSum?: number,
): ParseResult<UdpHeader> {
  if (end > buf.length || end - offset < UDP_HEADER_LENGTH) return fail('udp.truncated');
  const length = readU16(buf, offset + 4);
  if (length < UDP_HEADER_LENGTH) return fail('udp.bad-length');
  if (length > end - offset) return fail('udp.truncated');
  const checksum = readU16(buf, offset + 6);
  if (
    pseudoSum !== undefined &&
    checksum !== 0 &&
    internetChecksum(buf, offset, offset + length, pseudoSum) !== 0
  ) {
    return fail('udp.bad-checksum');
  }
  return ok({
    srcPort: readU16(buf, offset),
    dstPort: readU16(buf, offset + 2),
    length,
    checksum,
    payload: buf.subarray(offset + UDP_HEADER_LENGTH, offset + length),
  });
}

/**
 * Writes the header for a payload of `payloadLength` bytes already in place after it, with the
 * checksum over `pseudoSum` + header + payload; returns the header length.
 */
export function encodeUdp(
  ports: { srcPort: number; dstPort: number },
  payloadLength: number,
  pseudoSum: number,
  out: Uint8Array,
  offset = 0,
): number {
  const length = UDP_HEADER_LENGTH + payloadLength;
  if (!isUint(ports.srcPort, 16) || !isUint(ports.dstPort, 16)) {
    throw new InvalidArgumentError('UDP ports must fit 16 bits');
  }
  if (!isUint(length, 16)) throw new InvalidArgumentError(`UDP datagram too long (${length} bytes)`);
  if (offset < 0 || offset + length > out.length) {
    throw new InvalidArgumentError(`UDP datagram needs ${length} bytes at offset ${offset}`);
  }
  writeU16(out, offset, ports.srcPort);
  writeU16(out, offset + 2, ports.dstPort);
  writeU16(out, offset + 4, length);
  writeU16(out, offset + 6, 0);
  writeU16(out, offset + 6, internetChecksum(out, offset, offset + length, pseudoSum) || 0xffff);
  return UDP_HEADER_LENGTH;
}
