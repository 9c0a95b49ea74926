/**
 * Named counters for every drop and recovery event of a TCP connection, in the manner of the
 * kernel's TcpExt MIB. A connection owns one `TcpCounters`; the iface sums them (`addCounters`)
 * into stack-wide totals, including those of connections that have gone away.
 */
import { type Counters, counterSet } from '../counter-set.js';

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
  // Dropped by the subflow hook (MPTCP), or the connection reset on its word.
  'dropVetoed',
  'resetByHook',
  // RST handling (RFC 9293 §3.10.7, RFC 5961 §3).
  'rstAccepted',
  'rstOutOfWindow',
  'rstSent',
  'challengeAckSent',
  'challengeAckRateLimited',
  // Unacceptable segments without data left unanswered (the invalid-ACK rate limit).
  'invalidAckRateLimited',
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

export type TcpCounters = Counters<TcpCounterName>;

export const tcpCounterSet = counterSet(TCP_COUNTER_NAMES);

export function createTcpCounters(): TcpCounters {
  return tcpCounterSet.create();
}

/** Adds every counter of `from` into `into` (stack-wide totals). */
export function addTcpCounters(into: TcpCounters, from: Readonly<TcpCounters>): void {
  tcpCounterSet.add(into, from);
}
