/**
 * Codecs never throw on untrusted bytes: they return either the parsed value or a failure with
 * a short, stable reason (used as a drop counter name and in logs).
 */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export function ok<T>(value: T): ParseResult<T> {
  return { ok: true, value };
}

export function fail<T = never>(reason: string): ParseResult<T> {
  return { ok: false, reason };
}
