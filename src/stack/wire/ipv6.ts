/**
 * IPv6 header codec (RFC 8200): the fixed header, and a walk over the common extension headers
 * to find the upper-layer protocol and where its header starts.
 */
import { InvalidArgumentError } from '../../errors.js';
import { fitsMask, readU16, readU32, writeU16 } from './byte-order.js';
import { tryIpv4FromString } from './ipv4.js';
import { fail, type ParseResult } from './parse-result.js';

/** The fixed header (RFC 8200 §3). */
export const IPV6_HEADER_LENGTH = 40;
export const IPV6_VERSION = 6;
export const IPV6_ADDRESS_LENGTH = 16;

/** Next Header values of the extension headers we step over (IANA "IPv6 Extension Header Types"). */
export const IPV6_NEXT_HOP_BY_HOP = 0;
export const IPV6_NEXT_ROUTING = 43;
export const IPV6_NEXT_FRAGMENT = 44;
/** RFC 4302: its length field counts 4-byte units minus 2, unlike the others. */
export const IPV6_NEXT_AUTH = 51;
export const IPV6_NEXT_NONE = 59;
export const IPV6_NEXT_DEST_OPTIONS = 60;
/** RFC 8200 §4.5: the Fragment header is 8 bytes. */
const FRAGMENT_HEADER_LENGTH = 8;
/** A sanity bound: real packets carry a handful; more is an attack on our parse loop. */
const MAX_EXTENSION_HEADERS = 16;

export interface Ipv6Fields {
  trafficClass: number;
  /** 20 bits. */
  flowLabel: number;
  /** Bytes after the fixed header, extension headers included. */
  payloadLength: number;
  /** Next Header of the fixed header (the first extension header, or the upper layer). */
  nextHeader: number;
  hopLimit: number;
  /** 16-byte addresses. In a parsed header these are views into the packet, not copies. */
  src: Uint8Array;
  dst: Uint8Array;
}

export interface Ipv6Fragment {
  /** In 8-byte units, as on the wire. */
  fragmentOffset: number;
  moreFragments: boolean;
  identification: number;
}

export interface Ipv6Header extends Ipv6Fields {
  version: 6;
  /** 40 + payloadLength: where the packet ends, relative to the header. */
  totalLength: number;
  /** The upper-layer protocol after the extension headers (59 if there is none). */
  protocol: number;
  /**
   * Where the upper-layer header starts, relative to the fixed header. For a non-first
   * fragment (fragment.fragmentOffset > 0) it is where the fragment's data starts.
   */
  payloadOffset: number;
  /** Set when a Fragment header was present. */
  fragment: Ipv6Fragment | null;
}

/**
 * Parses the IPv6 header at buf[offset...] and walks hop-by-hop, routing, destination options,
 * fragment and AH headers. Stops at the first other Next Header value (the upper layer, ESP...),
 * or after the Fragment header of a non-first fragment. Bytes past 40 + payloadLength are
 * ignored (link padding).
 */
export function parseIpv6(buf: Uint8Array, offset = 0): ParseResult<Ipv6Header> {
  const available = buf.length - offset;
  if (offset < 0 || available < IPV6_HEADER_LENGTH) return fail('ipv6.truncated');
  const word0 = readU32(buf, offset);
  if (word0 >>> 28 !== IPV6_VERSION) return fail('ipv6.bad-version');
  const payloadLength = readU16(buf, offset + 4);
  const totalLength = IPV6_HEADER_LENGTH + payloadLength;
  // A jumbogram (RFC 2675) has payload length 0 and a hop-by-hop option; we do not take them.
  if (totalLength > available) return fail('ipv6.truncated');
  const nextHeader = buf[offset + 6]!;

  let protocol = nextHeader;
  let at = IPV6_HEADER_LENGTH;
  let fragment: Ipv6Fragment | null = null;
  for (let count = 0; ; count++) {
    let length: number;
    if (protocol === IPV6_NEXT_HOP_BY_HOP) {
      // RFC 8200 §4.3: only immediately after the fixed header.
      if (count > 0) return fail('ipv6.misplaced-hop-by-hop');
      length = -1;
    } else if (protocol === IPV6_NEXT_ROUTING || protocol === IPV6_NEXT_DEST_OPTIONS) {
      length = -1;
    } else if (protocol === IPV6_NEXT_AUTH) {
      length = -2;
    } else if (protocol === IPV6_NEXT_FRAGMENT) {
      length = FRAGMENT_HEADER_LENGTH;
    } else {
      break;
    }
    if (count >= MAX_EXTENSION_HEADERS) return fail('ipv6.too-many-extension-headers');
    if (at + 2 > totalLength) return fail('ipv6.extension-truncated');
    const lengthByte = buf[offset + at + 1]!;
    if (length === -1) length = (lengthByte + 1) * 8;
    else if (length === -2) length = (lengthByte + 2) * 4;
    if (at + length > totalLength) return fail('ipv6.extension-truncated');
    const next = buf[offset + at]!;
    if (protocol === IPV6_NEXT_FRAGMENT) {
      if (fragment !== null) return fail('ipv6.duplicate-fragment-header');
      const offsetFlags = readU16(buf, offset + at + 2);
      fragment = {
        fragmentOffset: offsetFlags >>> 3,
        moreFragments: (offsetFlags & 1) === 1,
        identification: readU32(buf, offset + at + 4),
      };
      protocol = next;
      at += length;
      // A later fragment carries no upper-layer header to walk to.
      if (fragment.fragmentOffset !== 0) break;
      continue;
    }
    protocol = next;
    at += length;
  }

  return {
    ok: true,
    value: {
      version: IPV6_VERSION,
      trafficClass: (word0 >>> 20) & 0xff,
      flowLabel: word0 & 0xfffff,
      payloadLength,
      nextHeader,
      hopLimit: buf[offset + 7]!,
      src: buf.subarray(offset + 8, offset + 24),
      dst: buf.subarray(offset + 24, offset + 40),
      totalLength,
      protocol,
      payloadOffset: at,
      fragment,
    },
  };
}

/**
 * Writes the 40-byte fixed header at out[offset...] and returns 40. Extension headers, if any,
 * are the caller's (set `nextHeader` to the first one). Throws InvalidArgumentError on misuse.
 */
export function encodeIpv6(h: Ipv6Fields, out: Uint8Array, offset = 0): number {
  if (
    !fitsMask(h.trafficClass, 0xff) ||
    !fitsMask(h.flowLabel, 0xfffff) ||
    !fitsMask(h.payloadLength, 0xffff)
  ) {
    throw new InvalidArgumentError('IPv6 trafficClass/flowLabel/payloadLength out of range');
  }
  if (!fitsMask(h.nextHeader, 0xff) || !fitsMask(h.hopLimit, 0xff)) {
    throw new InvalidArgumentError('IPv6 nextHeader/hopLimit must fit 8 bits');
  }
  if (h.src.length !== IPV6_ADDRESS_LENGTH || h.dst.length !== IPV6_ADDRESS_LENGTH) {
    throw new InvalidArgumentError('IPv6 addresses must be 16 bytes');
  }
  if (offset < 0 || offset + IPV6_HEADER_LENGTH > out.length) {
    throw new InvalidArgumentError(`IPv6 header needs 40 bytes at offset ${offset}`);
  }
  out[offset] = (IPV6_VERSION << 4) | (h.trafficClass >>> 4);
  out[offset + 1] = ((h.trafficClass & 0x0f) << 4) | (h.flowLabel >>> 16);
  writeU16(out, offset + 2, h.flowLabel & 0xffff);
  writeU16(out, offset + 4, h.payloadLength);
  out[offset + 6] = h.nextHeader;
  out[offset + 7] = h.hopLimit;
  out.set(h.src, offset + 8);
  out.set(h.dst, offset + 24);
  return IPV6_HEADER_LENGTH;
}

/** Text (RFC 4291 §2.2, including :: and a trailing dotted quad) to 16 bytes; throws on junk. */
export function ipv6FromString(text: string): Uint8Array {
  const bytes = tryIpv6FromString(text);
  if (bytes === undefined) throw new InvalidArgumentError(`not an IPv6 address: '${text}'`);
  return bytes;
}

/** Like `ipv6FromString` but returns undefined instead of throwing. Zone ids are refused. */
export function tryIpv6FromString(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const groups = head.length + tail.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) return undefined;
  const bytes = new Uint8Array(IPV6_ADDRESS_LENGTH);
  for (let i = 0; i < head.length; i++) writeU16(bytes, i * 2, head[i]!);
  for (let i = 0; i < tail.length; i++) writeU16(bytes, (8 - tail.length + i) * 2, tail[i]!);
  return bytes;
}

/** Colon-separated hex groups; the last may be a dotted quad when `lastMayBeIpv4`. */
function parseGroups(part: string, lastMayBeIpv4: boolean): number[] | undefined {
  if (part === '') return [];
  const fields = part.split(':');
  const groups: number[] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (lastMayBeIpv4 && i === fields.length - 1 && field.includes('.')) {
      const v4 = tryIpv4FromString(field);
      if (v4 === undefined) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(field)) return undefined;
      groups.push(Number.parseInt(field, 16));
    }
  }
  return groups;
}

/**
 * 16 bytes at bytes[offset...] to the canonical text of RFC 5952: lowercase, no leading zeros,
 * the longest run (first on a tie) of two or more zero groups as '::', and IPv4-mapped
 * addresses as ::ffff:a.b.c.d. For logs and config, not the packet path.
 */
export function ipv6ToString(bytes: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + IPV6_ADDRESS_LENGTH > bytes.length) {
    throw new InvalidArgumentError('IPv6 address needs 16 bytes');
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(readU16(bytes, offset + i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const b = (i: number) => bytes[offset + 12 + i]!;
    return `::ffff:${b(0)}.${b(1)}.${b(2)}.${b(3)}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
