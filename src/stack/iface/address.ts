/**
 * IP addresses as the iface layer handles them: IPv4 as a uint32 (no allocation per packet),
 * IPv6 as 16 bytes. Text forms only at the API edge (connect/listen options, remoteAddress).
 */
import { InvalidArgumentError } from '../../errors.js';
import { ipv4ToString, tryIpv4FromString } from '../wire/ipv4.js';
import { ipv6ToString, tryIpv6FromString } from '../wire/ipv6.js';

export type IpAddress =
  | { readonly family: 4; readonly v4: number }
  | { readonly family: 6; readonly v6: Uint8Array };

export function v4(address: number): IpAddress {
  return { family: 4, v4: address >>> 0 };
}

/** Copies the 16 bytes (parsed headers hold views into borrowed frames). */
export function v6(bytes: Uint8Array): IpAddress {
  return { family: 6, v6: bytes.slice(0, 16) };
}

export function tryParseAddress(text: string): IpAddress | undefined {
  const a4 = tryIpv4FromString(text);
  if (a4 !== undefined) return v4(a4);
  const a6 = tryIpv6FromString(text);
  return a6 === undefined ? undefined : { family: 6, v6: a6 };
}

/** Text to an address; throws InvalidArgumentError on anything else (API misuse). */
export function parseAddress(text: string): IpAddress {
  const a = tryParseAddress(text);
  if (a === undefined) throw new InvalidArgumentError(`not an IP address: '${text}'`);
  return a;
}

export function formatAddress(a: IpAddress): string {
  return a.family === 4 ? ipv4ToString(a.v4) : ipv6ToString(a.v6);
}

/** `addr:port`, IPv6 in brackets. */
export function formatEndpoint(a: IpAddress, port: number): string {
  return a.family === 4 ? `${ipv4ToString(a.v4)}:${port}` : `[${ipv6ToString(a.v6)}]:${port}`;
}

export function bytesEqual16(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function addressEqual(a: IpAddress, b: IpAddress): boolean {
  if (a.family === 4) return b.family === 4 && a.v4 === b.v4;
  return b.family === 6 && bytesEqual16(a.v6, b.v6);
}

/** The address as bytes (4 or 16), for hashing. */
export function addressBytes(a: IpAddress): Uint8Array {
  if (a.family === 6) return a.v6;
  const out = new Uint8Array(4);
  out[0] = a.v4 >>> 24;
  out[1] = (a.v4 >>> 16) & 0xff;
  out[2] = (a.v4 >>> 8) & 0xff;
  out[3] = a.v4 & 0xff;
  return out;
}

/** A stable string key (for maps keyed by address; not the packet path). */
export function addressKey(a: IpAddress): string {
  return a.family === 4 ? `4:${a.v4}` : `6:${Buffer.from(a.v6.buffer, a.v6.byteOffset, 16).toString('hex')}`;
}

/** One of the stack's own addresses as configured: `IP` or `IP/PREFIX`. */
export interface InterfaceAddress {
  readonly address: IpAddress;
  /** The prefix length when one was given (0-32 for IPv4, 0-128 for IPv6). */
  readonly prefix: number | undefined;
  /**
   * The subnet's directed broadcast (RFC 919, RFC 922: host part all ones), IPv4 with a prefix
   * of /30 or shorter only: /31 links have none (RFC 3021), /32 is a single host and IPv6 has
   * no broadcast at all.
   */
  readonly broadcast: number | undefined;
}

/**
 * `IP` or `IP/PREFIX` to an interface address; throws InvalidArgumentError saying what is wrong
 * (API misuse: these come from configuration, not from the network).
 */
export function parseInterfaceAddress(text: string): InterfaceAddress {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = tryParseAddress(addressText);
  if (address === undefined) {
    throw new InvalidArgumentError(`not an IP address or IP/PREFIX: '${text}'`);
  }
  if (slash < 0) return { address, prefix: undefined, broadcast: undefined };
  const prefixText = text.slice(slash + 1);
  const max = address.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    const shown = prefixText === '' ? 'nothing' : `'${prefixText}'`;
    throw new InvalidArgumentError(
      `address '${text}': the prefix after '/' must be a whole number 0-${max} for IPv${address.family}, got ${shown}`,
    );
  }
  const prefix = Number(prefixText);
  const broadcast = broadcastOf(address, prefix);
  if (address.family === 4 && broadcast === address.v4) {
    throw new InvalidArgumentError(
      `address '${text}' is the broadcast address of its subnet; a host cannot own it`,
    );
  }
  return { address, prefix, broadcast };
}

function broadcastOf(a: IpAddress, prefix: number): number | undefined {
  if (a.family === 6 || prefix > 30) return undefined;
  return (a.v4 | (0xffffffff >>> prefix)) >>> 0;
}
