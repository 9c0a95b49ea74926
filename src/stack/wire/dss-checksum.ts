/**
 * The DSS checksum (RFC 8684 §3.3.1): the Internet checksum over a pseudo-header of the 64-bit
 * DSN (always the full 64 bits, even when the option carried 32), the subflow sequence number
 * (relative to the subflow's ISN), the data-level length and a zero checksum field, followed by
 * the mapped payload. The same checksum appears in MP_CAPABLE with data (§3.1), whose mapping
 * is DSN = IDSN + 1, SSN = 1.
 *
 * With a DATA_FIN the data-level length counts one more than the payload holds; the caller
 * passes the length as carried in the option and only the payload bytes.
 */
import { finishChecksum, internetChecksum, onesComplementSum } from './checksum.js';

/** Partial (unfolded) ones'-complement sum of the DSS pseudo-header, checksum field zero. */
export function dssPseudoHeaderSum(dsn: bigint, ssn: number, dataLevelLength: number): number {
  const hi = Number((dsn >> 32n) & 0xffff_ffffn);
  const lo = Number(dsn & 0xffff_ffffn);
  return (
    (hi >>> 16) +
    (hi & 0xffff) +
    (lo >>> 16) +
    (lo & 0xffff) +
    (ssn >>> 16) +
    (ssn & 0xffff) +
    (dataLevelLength & 0xffff)
  );
}

/** The checksum value to send for the mapping (dsn, ssn, dataLevelLength) over payload[start, end). */
export function dssChecksum(
  dsn: bigint,
  ssn: number,
  dataLevelLength: number,
  payload: Uint8Array,
  start = 0,
  end = payload.length,
): number {
  return internetChecksum(payload, start, end, dssPseudoHeaderSum(dsn, ssn, dataLevelLength));
}

/**
 * True when `checksum` (as received) is valid for the mapping and payload: the sum including
 * the received field folds to all ones, which accepts either encoding of zero.
 */
export function verifyDssChecksum(
  checksum: number,
  dsn: bigint,
  ssn: number,
  dataLevelLength: number,
  payload: Uint8Array,
  start = 0,
  end = payload.length,
): boolean {
  const sum = onesComplementSum(
    payload,
    start,
    end,
    dssPseudoHeaderSum(dsn, ssn, dataLevelLength) + checksum,
  );
  return finishChecksum(sum) === 0;
}
