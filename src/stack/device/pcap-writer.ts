/**
 * Classic pcap files (the libpcap format that tcpdump, tshark and Wireshark read): a 24-byte
 * global header, then per packet a 16-byte record header and the bytes. We write LINKTYPE_RAW
 * (raw IPv4/IPv6, no link header) with microsecond timestamps, in host byte order as libpcap
 * does. Writes are synchronous appends, so a capture is complete even if the process dies.
 *
 * `readPcap` also reads what tcpdump writes (either byte order, micro- or nanosecond magic, any
 * link type), for tests and golden vectors; `ipPayloadOf` strips the common link headers.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

/** Raw IPv4/IPv6 packets, version from the first nibble (tcpdump.org link-layer types). */
export const LINKTYPE_RAW = 101;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;
export const LINKTYPE_NULL = 0;

const MAGIC_MICROS = 0xa1b2c3d4;
const MAGIC_NANOS = 0xa1b23c4d;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
/** Large enough for 64 KB super-packets plus headers (tcpdump's default snap length). */
export const DEFAULT_SNAPLEN = 262144;

export interface PcapWriterOptions {
  linkType?: number;
  snapLen?: number;
}

export class PcapWriter {
  private fd: number | undefined;
  private readonly snapLen: number;
  private readonly record = Buffer.alloc(RECORD_HEADER_LEN);

  /** Creates (or truncates) `path` and writes the global header. */
  constructor(
    readonly path: string,
    options: PcapWriterOptions = {},
  ) {
    this.snapLen = options.snapLen ?? DEFAULT_SNAPLEN;
    const header = Buffer.alloc(GLOBAL_HEADER_LEN);
    header.writeUInt32LE(MAGIC_MICROS, 0);
    header.writeUInt16LE(2, 4); // version 2.4
    header.writeUInt16LE(4, 6);
    // thiszone and sigfigs stay 0
    header.writeUInt32LE(this.snapLen, 16);
    header.writeUInt32LE(options.linkType ?? LINKTYPE_RAW, 20);
    this.fd = openSync(path, 'w');
    writeSync(this.fd, header);
  }

  /** Appends one packet; `timeMicros` defaults to the wall clock. Longer packets are cut to snapLen. */
  write(packet: Uint8Array, timeMicros: number = Date.now() * 1000): void {
    if (this.fd === undefined) throw new Error(`pcap writer for ${this.path} is closed`);
    const caplen = Math.min(packet.length, this.snapLen);
    const micros = Math.max(0, Math.floor(timeMicros));
    this.record.writeUInt32LE(Math.floor(micros / 1e6) >>> 0, 0);
    this.record.writeUInt32LE(micros % 1e6, 4);
    this.record.writeUInt32LE(caplen, 8);
    this.record.writeUInt32LE(packet.length, 12);
    writeSync(this.fd, this.record);
    writeSync(this.fd, packet, 0, caplen);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface PcapPacket {
  /** Captured bytes (a copy; may be shorter than `originalLength` if cut by the snap length). */
  data: Uint8Array;
  originalLength: number;
  timeMicros: number;
  linkType: number;
}

/** Reads every packet of a classic pcap file. Throws on a file that is not one. */
export function readPcap(path: string): PcapPacket[] {
  const buf = readFileSync(path);
  if (buf.length < GLOBAL_HEADER_LEN) throw new Error(`${path}: too short for a pcap header`);
  let le: boolean;
  let nanos: boolean;
  const magicLe = buf.readUInt32LE(0);
  const magicBe = buf.readUInt32BE(0);
  if (magicLe === MAGIC_MICROS || magicLe === MAGIC_NANOS) {
    le = true;
    nanos = magicLe === MAGIC_NANOS;
  } else if (magicBe === MAGIC_MICROS || magicBe === MAGIC_NANOS) {
    le = false;
    nanos = magicBe === MAGIC_NANOS;
  } else {
    throw new Error(`${path}: not a classic pcap file (pcapng is not supported)`);
  }
  const r32 = (off: number) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linkType = r32(20) & 0xffff;
  const packets: PcapPacket[] = [];
  let off = GLOBAL_HEADER_LEN;
  while (off + RECORD_HEADER_LEN <= buf.length) {
    const sec = r32(off);
    const frac = r32(off + 4);
    const caplen = r32(off + 8);
    const origlen = r32(off + 12);
    off += RECORD_HEADER_LEN;
    if (off + caplen > buf.length) throw new Error(`${path}: truncated packet record`);
    packets.push({
      data: new Uint8Array(buf.subarray(off, off + caplen)),
      originalLength: origlen,
      timeMicros: sec * 1e6 + (nanos ? Math.floor(frac / 1000) : frac),
      linkType,
    });
    off += caplen;
  }
  return packets;
}

/**
 * The IP packet inside a captured frame (IPv4 or IPv6), or undefined for other protocols
 * (ARP, ...) and link types we do not know.
 */
export function ipPayloadOf(packet: PcapPacket): Uint8Array | undefined {
  const d = packet.data;
  let etherType: number;
  let start: number;
  switch (packet.linkType) {
    case LINKTYPE_RAW:
      return d;
    case LINKTYPE_ETHERNET:
      if (d.length < 14) return undefined;
      etherType = (d[12]! << 8) | d[13]!;
      start = 14;
      break;
    case LINKTYPE_LINUX_SLL:
      if (d.length < 16) return undefined;
      etherType = (d[14]! << 8) | d[15]!;
      start = 16;
      break;
    case LINKTYPE_LINUX_SLL2:
      if (d.length < 20) return undefined;
      etherType = (d[0]! << 8) | d[1]!;
      start = 20;
      break;
    default:
      return undefined;
  }
  return etherType === 0x0800 || etherType === 0x86dd ? d.subarray(start) : undefined;
}
