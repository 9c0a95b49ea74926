/**
 * The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2): sent to the
 * backend before any byte of the client's stream, so the service sees the real client address
 * (for an MPTCP connection: the source of its initial subflow) instead of the proxy's.
 *
 * Binary form: the 12-byte signature, version 2 + command PROXY (0x21), the family and transport
 * (0x11 TCP over IPv4, 0x21 TCP over IPv6), the length of what follows, then source address,
 * destination address, source port, destination port. When the two addresses are of different
 * families, the IPv4 one is written IPv4-mapped and the header says IPv6.
 */
import { isIP } from 'node:net';
import { addressBytes } from '../convert/codec.js';

export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

export interface ProxyEndpoints {
  source: { address: string; port: number };
  destination: { address: string; port: number };
}

/** The header for one proxied TCP connection. */
export function encodeProxyV2(e: ProxyEndpoints): Buffer {
  const { source: s, destination: d } = e;
  const v4 = isIP(s.address) === 4 && isIP(d.address) === 4;
  const addrLen = v4 ? 12 : 36;
  const out = Buffer.alloc(16 + addrLen);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, STREAM
  out.writeUInt16BE(addrLen, 14);
  if (v4) {
    addressBytes(s.address).copy(out, 16, 12, 16);
    addressBytes(d.address).copy(out, 20, 12, 16);
    out.writeUInt16BE(s.port, 24);
    out.writeUInt16BE(d.port, 26);
  } else {
    addressBytes(s.address).copy(out, 16);
    addressBytes(d.address).copy(out, 32);
    out.writeUInt16BE(s.port, 48);
    out.writeUInt16BE(d.port, 50);
  }
  return out;
}

/** The LOCAL command (a connection the proxy made itself, no addresses): health checks. */
export function encodeProxyV2Local(): Buffer {
  const out = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20;
  return out;
}
