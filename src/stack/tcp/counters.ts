/**
 * Named counters for every drop and recovery event of a TCP connection, in the manner of the
 * kernel's TcpExt MIB. A connection owns one `TcpCounters`; the iface sums them (`addCounters`)
 * into stack-wide totals, including those of connections that have gone away.
 */
export const TCP_COUNTER_NAMES = [
  // Segments dropped on input (none of them ever throws).
  'segmentsIn',
  'segmentsOut',
  'dropOutOfWindow',
  'dropPawsReject',
  'dropBadAck',
  'dropAckUnsent',
  'dropOldAck',
  'dropBadOptions',
  'dropNoAckFlag',
  'dropSyn',
  'dropBadFlags',
  'dropAfterClose',
  'dropRecvBufferFull',
  // RST handling (RFC 9293 §3.10.7, RFC 5961 §3).
  'rstAccepted',
  'rstOutOfWindow',
  'rstSent',
  'challengeAckSent',
  'challengeAckRateLimited',
  // Loss detection and recovery.
  'rtoExpired',
  'synRetransmits',
  'retransmitSegments',
  'retransmitBytes',
  'fastRetransmits',
  'sackRecoveries',
  'newRenoRecoveries',
  'newRenoPartialAcks',
  'spuriousRetransmits',
  'lostRetransmits',
  'dupAcksIn',
  'sackBlocksIn',
  'dsackIn',
  'sackBlocksInvalid',
  // Out-of-order and SACK receive side.
  'outOfOrderSegments',
  'outOfOrderBytes',
  'duplicateSegments',
  'sackBlocksSent',
  // Timers and probes.
  'delayedAcks',
  'zeroWindowProbes',
  'swsOverrides',
  'keepalivesSent',
  'keepaliveTimeouts',
  'connectionTimeouts',
  'timeWaitExpired',
  'finWait2Timeouts',
  'timeWaitReopen',
  'windowGrowths',
] as const;

export type TcpCounterName = (typeof TCP_COUNTER_NAMES)[number];

export type TcpCounters = Record<TcpCounterName, number>;

export function createTcpCounters(): TcpCounters {
  const counters = {} as TcpCounters;
  for (const name of TCP_COUNTER_NAMES) counters[name] = 0;
  return counters;
}

/** Adds every counter of `from` into `into` (stack-wide totals). */
export function addTcpCounters(into: TcpCounters, from: Readonly<TcpCounters>): void {
  for (const name of TCP_COUNTER_NAMES) into[name] += from[name];
}
