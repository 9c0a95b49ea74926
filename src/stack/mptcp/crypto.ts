/**
 * MPTCP's crypto (RFC 8684 §3.1, §3.2, §3.4.1) with HMAC-SHA256, the only algorithm of version 1
 * (MP_CAPABLE flag H). Keys are 64-bit values hashed in network byte order.
 *
 * Checked against the Linux kernel (6.18) in a private namespace: token and IDSN equal tshark's
 * mptcp.expected_token / expected_idsn; the MP_JOIN SYN/ACK and third-ACK HMACs and the ADD_ADDR
 * HMAC (with and without port) equal what the kernel sent (see test/mptcp-crypto.test.ts).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';

/** Leftmost bits of the MP_JOIN HMAC carried in the SYN/ACK (RFC 8684 §3.2, Figure 6). */
export const JOIN_TRUNCATED_HMAC_BYTES = 8;
/** Leftmost bits of the MP_JOIN HMAC carried in the third ACK: 160 bits (§3.2, Figure 7). */
export const JOIN_ACK_HMAC_BYTES = 20;

function key8(key: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, key));
  return b;
}

function nonce4(nonce: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(nonce >>> 0);
  return b;
}

/** Token and IDSN of a key, from one SHA-256 of the key. */
export interface KeyMaterial {
  /** Most significant 32 bits of SHA-256(key) (RFC 8684 §3.2). */
  token: number;
  /** Least significant 64 bits of SHA-256(key): the initial data sequence number (§3.1). */
  idsn: bigint;
}

export function keyMaterial(key: bigint): KeyMaterial {
  const digest = createHash('sha256').update(key8(key)).digest();
  return { token: digest.readUInt32BE(0), idsn: digest.readBigUInt64BE(digest.length - 8) };
}

export function mptcpToken(key: bigint): number {
  return keyMaterial(key).token;
}

export function mptcpIdsn(key: bigint): bigint {
  return keyMaterial(key).idsn;
}

/**
 * The full HMAC of MP_JOIN (RFC 8684 §3.2) as computed by the host that sends it: key = the
 * sender's key followed by the receiver's, message = the sender's nonce followed by the
 * receiver's. (Host A, the initiator: HMAC(KeyA||KeyB, R_A||R_B); host B: HMAC(KeyB||KeyA,
 * R_B||R_A).)
 */
export function joinHmac(
  senderKey: bigint,
  receiverKey: bigint,
  senderNonce: number,
  receiverNonce: number,
): Buffer {
  return createHmac('sha256', Buffer.concat([key8(senderKey), key8(receiverKey)]))
    .update(Buffer.concat([nonce4(senderNonce), nonce4(receiverNonce)]))
    .digest();
}

/** The responder's truncated HMAC for the MP_JOIN SYN/ACK: the leftmost 64 bits. */
export function joinSynAckHmac(
  senderKey: bigint,
  receiverKey: bigint,
  senderNonce: number,
  receiverNonce: number,
): bigint {
  return joinHmac(senderKey, receiverKey, senderNonce, receiverNonce).readBigUInt64BE(0);
}

/** The initiator's HMAC for the MP_JOIN third ACK: the leftmost 160 bits. */
export function joinAckHmac(
  senderKey: bigint,
  receiverKey: bigint,
  senderNonce: number,
  receiverNonce: number,
): Uint8Array {
  return new Uint8Array(
    joinHmac(senderKey, receiverKey, senderNonce, receiverNonce).subarray(0, JOIN_ACK_HMAC_BYTES),
  );
}

/**
 * The ADD_ADDR truncated HMAC (RFC 8684 §3.4.1): key = sender's key || receiver's key, message
 * = address ID || address (4 or 16 bytes) || port (2 bytes; two zero bytes when the option has
 * no port); the option carries the RIGHTMOST 64 bits (unlike MP_JOIN's leftmost).
 */
export function addAddrHmac(
  senderKey: bigint,
  receiverKey: bigint,
  addressId: number,
  address: Uint8Array,
  port?: number,
): bigint {
  if (address.length !== 4 && address.length !== 16)
    throw new RangeError('ADD_ADDR address must be 4 or 16 bytes');
  const msg = Buffer.alloc(1 + address.length + 2);
  msg[0] = addressId & 0xff;
  msg.set(address, 1);
  msg.writeUInt16BE((port ?? 0) & 0xffff, 1 + address.length);
  const digest = createHmac('sha256', Buffer.concat([key8(senderKey), key8(receiverKey)]))
    .update(msg)
    .digest();
  return digest.readBigUInt64BE(digest.length - 8);
}

/** A fresh random 64-bit key (the token table must still check that its token is unique). */
export function randomKey(): bigint {
  return randomBytes(8).readBigUInt64BE(0);
}

/** A fresh random 32-bit MP_JOIN nonce ("random number", RFC 8684 §3.2). */
export function randomNonce(): number {
  return randomBytes(4).readUInt32BE(0);
}

/** Constant-time comparison of a received HMAC with the expected one. */
export { timingSafeEqual } from 'node:crypto';
