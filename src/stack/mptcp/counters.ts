/**
 * The MPTCP MIB: named counters for every protocol event of the MPTCP layer, in the manner of the
 * kernel's MPTcpExt list (`nstat -az | grep MPTcp`, /proc/net/netstat). Where the kernel counts
 * the same event, the kernel's name is kept letter for letter (checked against the MPTcpExt line
 * of Linux 6.18's /proc/net/netstat and net/mptcp/mib.h), so a report reads the same as `nstat`
 * on the peer. Events the kernel does not count have lowerCamel names of our own.
 *
 * Left out on purpose, with the reason:
 * - MPJoinSynTxCreatSkErr, MPJoinSynTxBindErr, MPJoinSynTxConnectErr: failures of the kernel's
 *   in-kernel socket calls when opening a join; a userspace subflow has no such steps.
 * - RcvWndConflictUpdate, RcvWndConflict: lock-free races between subflows updating the shared
 *   receive window concurrently; one thread owns a connection here.
 * - MD5SigFallback: TCP-MD5 (RFC 2385) is not implemented.
 * RcvPruned (older kernels' "dropped on memory limit") is not in 6.18's list; the same event is
 * our `rcvBufferFullDrops`.
 *
 * One `MptcpCounters` per connection (the stack also keeps one for events before a connection
 * exists, such as a join with an unknown token); `mptcpCounterSet.add` sums them into stack-wide
 * totals, including connections that have gone away.
 */
import { type Counters, counterSet } from '../counter-set.js';

export const MPTCP_COUNTER_NAMES = [
  // MP_CAPABLE handshake and fallback to plain TCP during it (RFC 8684 §3.1, §3.7).
  /** SYN with MP_CAPABLE received. */
  'MPCapableSYNRX',
  /** SYN with MP_CAPABLE sent. */
  'MPCapableSYNTX',
  /** SYN/ACK with MP_CAPABLE received. */
  'MPCapableSYNACKRX',
  /** Third ACK with MP_CAPABLE received (the passive side's connection is MPTCP). */
  'MPCapableACKRX',
  /** Passive side fell back: the ACK after our MP_CAPABLE SYN/ACK carried none. */
  'MPCapableFallbackACK',
  /** Active side fell back: the SYN/ACK to our MP_CAPABLE SYN carried none. */
  'MPCapableFallbackSYNACK',
  /** Active side dropped MP_CAPABLE from a retransmitted SYN (MPC SYNs went unanswered). */
  'MPCapableSYNTXDrop',
  /** Active side sent a plain SYN because MPTCP is disabled for a while after a blackhole. */
  'MPCapableSYNTXDisabled',
  /** SYN with MP_CAPABLE to a port announced only for MP_JOIN: refused. */
  'MPCapableEndpAttempt',
  /** Fallback: the first data after the handshake had no DSS (nor MP_CAPABLE with data). */
  'MPCapableDataFallback',
  /** No unique token could be allocated for a new connection: it fell back to TCP. */
  'MPFallbackTokenInit',
  /** MPTCP-level fallback because of a simultaneous open. */
  'SimultConnectFallback',
  /** A fallback was needed but no longer possible (e.g. several subflows): reset instead. */
  'FallbackFailed',
  /** A middlebox dropping MPTCP options was detected (MPC SYNs lost, plain SYN answered). */
  'Blackhole',
  /** Connections currently established: +1 on establishment, -1 when closed (a gauge). */
  'MPCurrEstab',

  // MP_JOIN handshake (RFC 8684 §3.2).
  /** SYN with MP_JOIN whose token matches no connection. */
  'MPJoinNoTokenFound',
  /** SYN with MP_JOIN received. */
  'MPJoinSynRx',
  /** SYN with MP_JOIN and the backup flag received. */
  'MPJoinSynBackupRx',
  /** SYN/ACK with MP_JOIN received. */
  'MPJoinSynAckRx',
  /** SYN/ACK with MP_JOIN and the backup flag received. */
  'MPJoinSynAckBackupRx',
  /** SYN/ACK with MP_JOIN whose truncated HMAC was wrong. */
  'MPJoinSynAckHMacFailure',
  /** Third ACK with MP_JOIN received. */
  'MPJoinAckRx',
  /**
   * Third ACK of a join without a right MP_JOIN: its HMAC was wrong or the option missing (as
   * Linux counts it; Linux's client sends a DATA_FIN's DSS instead when it closes at once).
   */
  'MPJoinAckHMacFailure',
  /** MP_JOIN refused by the path manager (subflow limit, address not allowed). */
  'MPJoinRejected',
  /** SYN with MP_JOIN sent. */
  'MPJoinSynTx',
  /** SYN with MP_JOIN received on a port other than the connection's own. */
  'MPJoinPortSynRx',
  /** SYN/ACK with MP_JOIN received from a port other than the connection's own. */
  'MPJoinPortSynAckRx',
  /** Third ACK with MP_JOIN received on a port other than the connection's own. */
  'MPJoinPortAckRx',
  /** SYN with MP_JOIN on a port that does not match the one announced for its address. */
  'MismatchPortSynRx',
  /** Third ACK with MP_JOIN on a port that does not match the one announced for its address. */
  'MismatchPortAckRx',

  // Data sequence mappings and the DSS (RFC 8684 §3.3).
  /** Segments sent again at the MPTCP level (reinjected on another subflow). */
  'MPTCPRetrans',
  /** A new mapping overlapped a held one it does not match. */
  'DSSNotMatching',
  /** Subflow bytes that no mapping covers, or a mapping that does not fit the subflow's bytes. */
  'DSSNoMatchTCP',
  /** Data-level inconsistency (DSS corruption) handled by falling back to TCP. */
  'DSSCorruptionFallback',
  /** Data-level inconsistency (DSS corruption) handled by resetting a joined subflow. */
  'DSSCorruptionReset',
  /** Fallback because of a bad or missing DSS. */
  'DssFallback',
  /** Infinite mapping sent (RFC 8684 §3.7). */
  'InfiniteMapTx',
  /** Infinite mapping received. */
  'InfiniteMapRx',
  /** DSS checksum did not verify (RFC 8684 §3.3.1). */
  'DataCsumErr',

  // Data-level receive side: reassembly and the shared windows (RFC 8684 §3.3.4, §3.3.5).
  /** Out-of-order data appended at the tail of the data-level out-of-order queue. */
  'OFOQueueTail',
  /** Out-of-order data inserted into the data-level out-of-order queue. */
  'OFOQueue',
  /** Out-of-order data merged with a neighbour in the data-level out-of-order queue. */
  'OFOMerge',
  /** Data outside the data-level receive window, dropped. */
  'NoDSSInWindow',
  /** Data already received at the data level (e.g. on another subflow), dropped. */
  'DuplicateData',
  /** A subflow's send window was taken from the connection's (shared) window. */
  'SndWndShared',
  /** A subflow's advertised receive window was raised to the connection's. */
  'RcvWndShared',
  /** MPTCP-level zero-window probe sent. */
  'WinProbe',

  // Address signalling (RFC 8684 §3.4).
  /** ADD_ADDR (echo flag 0) received. */
  'AddAddr',
  /** ADD_ADDR (echo flag 0) sent, retransmissions included. */
  'AddAddrTx',
  /** ADD_ADDR that could not be sent (no option space, nothing to carry it). */
  'AddAddrTxDrop',
  /** ADD_ADDR echo (echo flag 1) received. */
  'EchoAdd',
  /** ADD_ADDR echo sent. */
  'EchoAddTx',
  /** ADD_ADDR echo that could not be sent. */
  'EchoAddTxDrop',
  /** ADD_ADDR carrying a port received. */
  'PortAdd',
  /** Received ADD_ADDR dropped (limits, bad HMAC, unusable address). */
  'AddAddrDrop',
  /** REMOVE_ADDR received. */
  'RmAddr',
  /** Received REMOVE_ADDR dropped (unknown address ID, limits). */
  'RmAddrDrop',
  /** REMOVE_ADDR sent. */
  'RmAddrTx',
  /** REMOVE_ADDR that could not be sent. */
  'RmAddrTxDrop',
  /** Subflow removed (closed after REMOVE_ADDR or by the path manager). */
  'RmSubflow',

  // Subflow and connection control (RFC 8684 §3.3.8, §3.5, §3.6, §3.7).
  /** MP_PRIO sent. */
  'MPPrioTx',
  /** MP_PRIO received. */
  'MPPrioRx',
  /** MP_FAIL sent. */
  'MPFailTx',
  /** MP_FAIL received. */
  'MPFailRx',
  /** MP_FASTCLOSE sent. */
  'MPFastcloseTx',
  /** MP_FASTCLOSE received. */
  'MPFastcloseRx',
  /** MP_TCPRST sent (a subflow reset with a reason). */
  'MPRstTx',
  /** MP_TCPRST received. */
  'MPRstRx',
  /** A subflow was marked stale (no progress while data was outstanding). */
  'SubflowStale',
  /** A stale subflow became active again. */
  'SubflowRecover',
  /**
   * A subflow's RTO fired while another could carry data and its unacknowledged data was
   * reinjected there (at the RTO that marks it stale, and at the ones before it).
   */
  'subflowRtoReinjections',

  // Our own: events the kernel does not count separately.
  /** A fresh key's token was already in use: another key was drawn. */
  'tokenCollisions',
  /** A key chosen elsewhere (SYN-cookie rebuild) was refused: its token was already in use. */
  'tokenClaimTaken',
  /** ADD_ADDR with a wrong HMAC (the kernel counts these only as AddAddrDrop). */
  'addAddrBadHmac',
  /** SYN with MP_JOIN to the initial address and port after we sent the C flag: refused. */
  'joinSynToCFlaggedAddr',
  /** A mapping refused because the subflow's table of pending mappings was full. */
  'mappingTableFull',
  /** A mapping with a zero or impossible length, or beyond any window: ignored. */
  'mappingInvalid',
  /** A malformed MPTCP option (the codec's `mptcp-invalid`). */
  'mptcpOptionInvalid',
  /** Data dropped because the connection's receive buffer was full (older kernels' RcvPruned). */
  'rcvBufferFullDrops',
  /** Bytes sent again at the MPTCP level (the byte count beside MPTCPRetrans). */
  'reinjectedBytes',
  /** A DATA_ACK for data never sent (or far too old): ignored. */
  'dataAckInvalid',
  /** Subflows we opened toward an announced address, and those the C flag kept us from. */
  'joinsOpened',
  'joinsSkippedCFlag',
  /**
   * Path manager healing: join attempts re-creating a lost subflow (each one opened), those that
   * became fully established, and stale subflows given up to be replaced.
   */
  'joinRetries',
  'subflowsRecreated',
  'staleSubflowsReplaced',
  /** The DATA_ACK stalled for a data-level RTO: the oldest data was reinjected. */
  'dataRtoFired',
  /**
   * Opportunistic retransmission (head-of-line blocking): the peer's data-level window was full,
   * its oldest byte held by a slower subflow, and that data went again on a faster subflow with
   * room (mappings, and their bytes; the bytes are in reinjectedBytes too).
   */
  'opportunisticRetrans',
  'opportunisticRetransBytes',
  /** That slower subflow's congestion window was cut for it (at most once per its RTT). */
  'holPenalties',
  /** Redundant scheduler: copies given to a further subflow (mappings), and their bytes. */
  'redundantCopies',
  'redundantBytes',
  /** No regular subflow was usable any more: data went to backup subflows (MP_PRIO). */
  'backupTakeover',
] as const;

export type MptcpCounterName = (typeof MPTCP_COUNTER_NAMES)[number];

export type MptcpCounters = Counters<MptcpCounterName>;

export const mptcpCounterSet = counterSet(MPTCP_COUNTER_NAMES);
