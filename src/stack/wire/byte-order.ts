/**
 * Big-endian (network order) reads and writes on a Uint8Array, by direct byte access: no
 * DataView to create per buffer, no allocation. Callers check bounds first.
 */

export function readU16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

export function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

export function writeU16(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 8;
  out[at + 1] = value & 0xff;
}

export function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

/**
 * Width checks for encoders: true for an integer in [0, mask] where mask is 2^n - 1 (n <= 31),
 * false for negatives, fractions, NaN. One bitwise op, so cheap enough for every field.
 */
export function fitsMask(value: number, mask: number): boolean {
  return (value & mask) === value;
}

/** An integer in [0, 2^32). */
export function isU32(value: number): boolean {
  return value >>> 0 === value;
}

/** An integer in [0, 2^bits), for any width up to 53 bits. */
export function isUint(value: number, bits: number): boolean {
  if (bits < 31) return (value & ((1 << bits) - 1)) === value;
  if (bits === 32) return value >>> 0 === value;
  return Number.isInteger(value) && value >= 0 && value < 2 ** bits;
}
