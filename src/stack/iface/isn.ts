/**
 * Initial sequence numbers per RFC 6528 §3: ISN = M + F(localip, localport, remoteip,
 * remoteport, secretkey), where M is a timer ticking every 4 microseconds and F a keyed hash
 * (here HMAC-SHA-256 truncated to 32 bits). The timer keeps ISNs of successive incarnations of
 * a four-tuple increasing (RFC 9293 §3.4.1); the hash keeps them unguessable by off-path hosts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';
import { addressBytes, type IpAddress } from './address.js';

/** RFC 6528 §3 (and RFC 793's clock): M is incremented every 4 µs, i.e. 250 ticks per ms. */
const TICKS_PER_MS = 250;
/** Key length for the HMAC (SHA-256's block size would do; 32 bytes is the hash's strength). */
export const ISN_SECRET_LENGTH = 32;

export class IsnGenerator {
  private readonly secret: Uint8Array;

  /** `secret`: random per stack by default; inject a fixed one for reproducible tests. */
  constructor(secret?: Uint8Array) {
    if (secret !== undefined && secret.length < 16) {
      throw new InvalidArgumentError('ISN secret must be at least 16 bytes');
    }
    this.secret = secret ?? randomBytes(ISN_SECRET_LENGTH);
  }

  /** The ISN for a connection from local to remote at time `now` (ms on the stack's clock). */
  isn(now: number, local: IpAddress, localPort: number, remote: IpAddress, remotePort: number): number {
    const m = Math.floor(now * TICKS_PER_MS) % 0x1_0000_0000;
    return (m + fourTupleHash(this.secret, 'isn', local, localPort, remote, remotePort)) >>> 0;
  }
}

/**
 * A keyed 32-bit hash of a four-tuple plus extra 32-bit words, domain-separated by `label` so
 * ISNs and SYN cookies can share one secret without one revealing the other.
 */
export function fourTupleHash(
  secret: Uint8Array,
  label: string,
  local: IpAddress,
  localPort: number,
  remote: IpAddress,
  remotePort: number,
  ...extra: number[]
): number {
  const h = createHmac('sha256', secret);
  h.update(label);
  h.update(addressBytes(local));
  h.update(addressBytes(remote));
  const words = Buffer.allocUnsafe(4 + 4 * extra.length);
  words.writeUInt16BE(localPort, 0);
  words.writeUInt16BE(remotePort, 2);
  for (let i = 0; i < extra.length; i++) words.writeUInt32BE(extra[i]! >>> 0, 4 + 4 * i);
  h.update(words);
  return h.digest().readUInt32BE(0);
}
