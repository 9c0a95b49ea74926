import type { GsoInfo, GsoType } from '../device/device.js';

/**
 * struct virtio_net_hdr (linux/virtio_net.h), the 10-byte header a TUN opened with IFF_VNET_HDR
 * puts before every packet, both ways. Little-endian: TUN uses the host's byte order unless told
 * otherwise (TUNSETVNETBE), and mptun runs on little-endian hosts (x86-64, arm64).
 *
 *   0 flags (u8)  1 gso_type (u8)  2 hdr_len (u16)  4 gso_size (u16)  6 csum_start (u16)  8 csum_offset (u16)
 */
export const VIRTIO_NET_HDR_LEN = 10;

const F_NEEDS_CSUM = 1;
const F_DATA_VALID = 2;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
/** Set on top of the type when the TCP flow uses ECN (we never offer TUN_F_TSO_ECN, so rare). */
const GSO_ECN = 0x80;

/** Fills `out` from the header at `offset`; returns a drop reason or undefined when fine. */
export function parseVirtioNetHdr(view: DataView, offset: number, out: GsoInfo): string | undefined {
  if (offset + VIRTIO_NET_HDR_LEN > view.byteLength) return 'vnet-hdr-truncated';
  const flags = view.getUint8(offset);
  const rawType = view.getUint8(offset + 1) & ~GSO_ECN;
  let gsoType: GsoType;
  if (rawType === GSO_NONE) gsoType = 'none';
  else if (rawType === GSO_TCPV4) gsoType = 'tcpv4';
  else if (rawType === GSO_TCPV6) gsoType = 'tcpv6';
  else return 'vnet-hdr-gso-type';
  out.needsCsum = (flags & F_NEEDS_CSUM) !== 0;
  out.dataValid = (flags & F_DATA_VALID) !== 0;
  out.gsoType = gsoType;
  // The kernel's hdr_len is a hint (it may cover more than the IP + TCP headers); parse those.
  out.hdrLen = view.getUint16(offset + 2, true);
  out.gsoSize = view.getUint16(offset + 4, true);
  out.csumStart = view.getUint16(offset + 6, true);
  out.csumOffset = view.getUint16(offset + 8, true);
  return undefined;
}

/** Writes the header for `gso` (all zero when absent: a plain, fully checksummed packet). */
export function encodeVirtioNetHdr(gso: GsoInfo | undefined, view: DataView, offset: number): void {
  if (gso === undefined) {
    view.setUint32(offset, 0, true);
    view.setUint32(offset + 4, 0, true);
    view.setUint16(offset + 8, 0, true);
    return;
  }
  const type = gso.gsoType === 'tcpv4' ? GSO_TCPV4 : gso.gsoType === 'tcpv6' ? GSO_TCPV6 : GSO_NONE;
  view.setUint8(offset, (gso.needsCsum ? F_NEEDS_CSUM : 0) | (gso.dataValid ? F_DATA_VALID : 0));
  view.setUint8(offset + 1, type);
  view.setUint16(offset + 2, gso.hdrLen, true);
  view.setUint16(offset + 4, gso.gsoSize, true);
  view.setUint16(offset + 6, gso.csumStart, true);
  view.setUint16(offset + 8, gso.csumOffset, true);
}

export function emptyGsoInfo(): GsoInfo {
  return {
    needsCsum: false,
    dataValid: false,
    gsoType: 'none',
    hdrLen: 0,
    gsoSize: 0,
    csumStart: 0,
    csumOffset: 0,
  };
}
