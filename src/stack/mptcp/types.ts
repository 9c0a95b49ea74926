/**
 * What the MPTCP layer shares with the layers around it: its configuration, and the narrow
 * interface through which it asks the iface for subflows (the iface implements `SubflowHost`).
 */
import type { IpAddress } from '../iface/address.js';
import type { TcpConnection } from '../tcp/connection.js';
import type { TcpConfig } from '../tcp/types.js';
import type { MptcpCongestionName } from './coupled-cc.js';
import type { SchedulerName } from './sched.js';

/** An address to announce with ADD_ADDR (RFC 8684 §3.4.1), optionally with a port. */
export interface Announcement {
  address: IpAddress;
  port?: number;
}

export interface MptcpConfig {
  /**
   * Server role: set the C flag in our MP_CAPABLE SYN-ACK ("do not open subflows to this
   * address and port", RFC 8684 §3.1): the address is load-balanced. Default true on listeners.
   */
  cFlag: boolean;
  /** Addresses announced right after the handshake: the server's unique address(es). */
  announce: readonly Announcement[];
  /** Require DSS checksums (the A flag). */
  checksum: boolean;
  /**
   * Congestion control of the subflows (coupled-cc.ts): coupled LIA (RFC 6356), OLIA or BALIA,
   * or uncoupled CUBIC / NewReno per subflow. It replaces TcpConfig.congestion for subflows.
   */
  congestion: MptcpCongestionName;
  /** Most subflows per connection, the initial one included (Linux's default limit is 2; max 8). */
  maxSubflows: number;
  /** Most ADD_ADDRs accepted per connection (Linux: add_addr_accepted). */
  maxAddAddrAccepted: number;
  /** ADD_ADDR retransmission interval (ms) and count until echoed (Linux: 2 s, original + 3). */
  addAddrTimeoutMs: number;
  addAddrRetries: number;
  /** Data-level send buffer (bytes the application may write ahead of the DATA_ACK). */
  sendBufferSize: number;
  /** Data-level receive buffer: the connection-level window (RFC 8684 §3.3.4). */
  recvBufferSize: number;
  /** Which subflow carries the next data (sched.ts); backup subflows are honoured by each. */
  scheduler: SchedulerName;
  /**
   * Our local addresses whose subflows are MP_PRIO backups (RFC 8684 §3.3.8): a join from one
   * sends the B flag in its SYN, an initial subflow from one sends MP_PRIO once established.
   */
  backupAddresses: readonly IpAddress[];
  /**
   * A subflow whose retransmission timer fires this many times in a row (no ACK between) while
   * another subflow can carry data is marked stale: out of scheduling until an ACK (Linux:
   * net.mptcp.stale_loss_cnt, 4). From its first such RTO it gets no data while another subflow
   * of its kind (regular or backup) is in good standing, and its data is reinjected there, so the
   * stall at a dead path stays one RTO whatever this is; what it decides is when a backup takes
   * over (after this many RTOs). Default 2 (docs/DESIGN-NOTES.md: the measurements).
   */
  staleAfterRtos: number;
}

export const DEFAULT_MPTCP_CONFIG: Readonly<MptcpConfig> = Object.freeze({
  cFlag: false,
  announce: [],
  checksum: false,
  congestion: 'olia',
  maxSubflows: 8,
  maxAddAddrAccepted: 8,
  addAddrTimeoutMs: 2000,
  addAddrRetries: 3,
  sendBufferSize: 4 << 20,
  recvBufferSize: 4 << 20,
  scheduler: 'lowest-rtt',
  backupAddresses: [],
  staleAfterRtos: 2,
});

/** A subflow's TCP connection as the iface placed it: its four-tuple and a way to wake it. */
export interface SubflowHandle {
  readonly conn: TcpConnection;
  readonly local: IpAddress;
  readonly localPort: number;
  readonly remote: IpAddress;
  readonly remotePort: number;
  /** The connection has something to send: dispatch it (soon, batched). */
  kick(): void;
}

/** What a subflow owner hears from the iface about its TCP connection. */
export interface SubflowOwner {
  /** TcpEvent bits, delivered before and after each dispatch. */
  onEvents(events: number): void;
  /** Runs before each dispatch of the connection: push data, run timers. */
  beforeDispatch(now: number): void;
  /** The owner's next deadline for this connection (ms), +Infinity when none. */
  pollAt(): number;
  /** The connection reached CLOSED and left the table. */
  onClosed(): void;
}

/** The iface, as MPTCP sees it. */
export interface SubflowHost {
  now(): number;
  /** The stack's own addresses (the path manager joins from each). */
  readonly addresses: readonly IpAddress[];
  /**
   * An active open of a subflow from `local` to `remote`:`remotePort`, with `owner` as its hooks,
   * send queue and event owner. Undefined when it cannot be made (no free port, say).
   */
  openSubflow(
    local: IpAddress,
    remote: IpAddress,
    remotePort: number,
    owner: import('./subflow.js').Subflow,
    tcp: Partial<TcpConfig> | undefined,
  ): SubflowHandle | undefined;
}
