/**
 * An IP endpoint over a Device: parses IPv4/IPv6 + TCP, verifies checksums, demultiplexes to
 * connections and listeners, answers strays with RST (RFC 9293 §3.10.7.1), bounds half-open
 * connections per listener with a SYN backlog and SYN cookies beyond it, drives every
 * connection's timers from one Scheduler timer, and encodes and batches the output: one
 * `device.write` per flush, 64 KB super-packets when the device has offload.
 *
 * Network input never throws: every drop has a named counter (`stats()`).
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../../errors.js';
import { type Counters, counterSet } from '../counter-set.js';
import type { Scheduler, TimerHandle } from '../device/clock.js';
import type { Device, Frame, GsoInfo } from '../device/device.js';
import type { MptcpConnection } from '../mptcp/connection.js';
import type { MptcpCounters } from '../mptcp/counters.js';
import { isMptcpCongestionName, MPTCP_CONGESTION_NAMES } from '../mptcp/coupled-cc.js';
import { MptcpEndpoint } from '../mptcp/endpoint.js';
import type { Subflow } from '../mptcp/subflow.js';
import type { MptcpConfig, SubflowHandle, SubflowHost, SubflowOwner } from '../mptcp/types.js';
import {
  DEFAULT_TCP_CONFIG,
  type OutgoingSegment,
  type TcpConfig,
  TcpConnection,
  TcpEvent,
  type TcpInfo,
} from '../tcp/connection.js';
import { addTcpCounters, createTcpCounters, type TcpCounters } from '../tcp/counters.js';
import { synOptions } from '../tcp/options.js';
import { foldSum, internetChecksum, pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../wire/checksum.js';
import { encodeIpv4, parseIpv4 } from '../wire/ipv4.js';
import { encodeIpv6, IPV6_HEADER_LENGTH, parseIpv6 } from '../wire/ipv6.js';
import { MP_TCPRST_REASON } from '../wire/mptcp-options.js';
import { seqAdd } from '../wire/seqnum.js';
import {
  encodeTcp,
  findTcpOption,
  IP_PROTOCOL_TCP,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpFields,
  type TcpHeader,
  type TcpOption,
  tcpHeaderLength,
  verifyTcpChecksumV4,
  verifyTcpChecksumV6,
} from '../wire/tcp.js';
import {
  addressEqual,
  formatAddress,
  formatEndpoint,
  type IpAddress,
  parseAddress,
  parseInterfaceAddress,
  v4,
  v6,
} from './address.js';
import { ConnectionTable, type FourTuple, ListenerTable, type PacketAddresses } from './demux.js';
import { FrameArena } from './frame-arena.js';
import { fourTupleHash, IsnGenerator } from './isn.js';
import { COOKIE_SLOT_MS, SynCookies } from './syn-cookies.js';
import { TcpServer, TcpSocket, type TcpSocketHost } from './tcp-socket.js';
import { type HeapItem, TimerHeap } from './timer-heap.js';

const IPV4_HEADER = 20;
const TCP_HEADER = 20;
/** RFC 9293 §3.1: the checksum field's offset in the TCP header. */
const TCP_CHECKSUM_OFFSET = 16;
/** Largest TCP header (RFC 9293 §3.1: data offset 15). */
const TCP_MAX_HEADER = 60;
/** RFC 9293 §3.7.1: the MSS to assume when the SYN carries none (IPv4; RFC 8200 §5 gives 1220 for IPv6). */
const DEFAULT_PEER_MSS_V4 = 536;
const DEFAULT_PEER_MSS_V6 = 1220;
/** IANA ephemeral range (RFC 6335 §6) is 49152–65535; Linux uses 32768–60999. */
const DEFAULT_EPHEMERAL: readonly [number, number] = [32768, 60999];
const EMPTY = new Uint8Array(0);
const NO_IP_OPTIONS = new Uint8Array(0);

export interface StackOptions {
  device: Device;
  scheduler: Scheduler;
  /**
   * The stack's own addresses (IPv4 and/or IPv6 text), at least one, each `IP` or `IP/PREFIX`:
   * with an IPv4 prefix of /30 or shorter, segments from or to that subnet's broadcast are
   * dropped as martians.
   */
  addresses: readonly string[];
  /** Secret for ISNs, SYN cookies, timestamp offsets and port choice; random by default. */
  secret?: Uint8Array;
  /** Half-open (SYN-RECEIVED) connections per listener before SYN cookies take over. Default 256. */
  synBacklog?: number;
  /** Answer SYNs beyond the backlog with cookies (default true); false drops them. */
  synCookies?: boolean;
  /** Engine settings for every connection (mss and maxPayload are derived from the device). */
  tcp?: Partial<TcpConfig>;
  /** Local ports for connect() without localPort. Default 32768–60999 (Linux's). */
  ephemeralPorts?: readonly [number, number];
  /** IPv4 TTL / IPv6 hop limit. Default 64. */
  ttl?: number;
}

export interface ConnectOptions {
  /** Remote IP address (no name resolution here). */
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  /** Per-connection engine settings on top of the stack's. */
  tcp?: Partial<TcpConfig>;
  /** Like net.Socket: false (default) ends our side when the peer's FIN has been read. */
  allowHalfOpen?: boolean;
  /** Multipath TCP (RFC 8684): true, or settings; the socket falls back to TCP if the peer has none. */
  mptcp?: boolean | Partial<MptcpConfig>;
}

export interface ListenOptions {
  port?: number;
  /** Bind to one of the stack's addresses; all of them when absent. */
  host?: string;
  /**
   * Transparent interception: accept SYNs to any address and port (not only the stack's);
   * sockets report the original destination as localAddress/localPort.
   */
  anyDestination?: boolean;
  /** Overrides the stack's synBacklog for this listener. */
  synBacklog?: number;
  allowHalfOpen?: boolean;
  tcp?: Partial<TcpConfig>;
  /**
   * Accept Multipath TCP (RFC 8684): true, or settings (the C flag is on by default, `announce`
   * lists the unique addresses to advertise). Peers without MPTCP get plain TCP.
   */
  mptcp?: boolean | Partial<MptcpConfig>;
}

/**
 * Stack-wide counters (the engine's per-connection ones are summed separately, `stats().tcp`),
 * declared once: the list gives the type, the zeroed record and the non-zero report.
 */
export const STACK_COUNTER_NAMES = [
  // Device traffic. Super-packets are GSO frames (kernel coalesced on input, ours on output);
  // deviceBackpressure counts device.write returning false (output paused until drain).
  'framesIn',
  'bytesIn',
  'superPacketsIn',
  'framesOut',
  'bytesOut',
  'superPacketsOut',
  'deviceBackpressure',
  // Input dropped before demux. dropBadIp / dropBadTcp: header unparseable (truncated, bad
  // version, length or data offset, impossible option length; the reason is in parseErrors).
  // dropBadAddress: source or destination no TCP may use (unspecified, multicast, limited
  // broadcast, class E).
  'dropBadIp',
  'dropFragment',
  'dropNotTcp',
  'dropBadAddress',
  'dropBadTcp',
  'dropBadTcpChecksum',
  // Martians (RFC 1812 §5.3.7, RFC 6890; Linux counts them as martian sources/destinations):
  // source loopback (127.0.0.0/8, ::1); source or destination the directed broadcast of one
  // of our subnets (addresses given as IP/PREFIX); source one of our own addresses (LAND).
  'dropLoopbackSource',
  'dropBroadcastAddress',
  'dropOwnSource',
  // Segments matching no connection. dropNotForUs: its destination is not ours and there is
  // no any-destination listener. A RST is dropped, never answered (RFC 9293 §3.10.7.1);
  // dropListenBadFlags: to a listener without SYN or ACK, or with SYN+FIN; the RSTs we send for
  // strays and for ACKs to a listener that completed no handshake.
  'dropNotForUs',
  'dropRstNoConnection',
  'dropListenBadFlags',
  'rstSentNoConnection',
  'rstSentListenAck',
  // SYN backlog and cookies: SYNs that found their listener's backlog full, those dropped
  // (backlog full, cookies off), and the cookies sent and checked (kept by SynCookies).
  'synBacklogFull',
  'synDropped',
  'synCookiesSent',
  'synCookiesValid',
  'synCookiesInvalid',
  // Connections. acceptAborted: handshakes completed on a listener its owner has closed (reset).
  'activeOpens',
  'passiveOpens',
  'acceptAborted',
  'connectionsClosed',
  /** MP_JOIN SYNs answered with a reset (unknown token, or a connection that takes no more). */
  'joinSynsReset',
] as const;

export type StackCounterName = (typeof STACK_COUNTER_NAMES)[number];

export type StackCounters = Counters<StackCounterName>;

export const stackCounterSet = counterSet(STACK_COUNTER_NAMES);

export interface ConnectionStats {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  info: TcpInfo;
}

export interface StackStats {
  counters: StackCounters;
  /** Parse failures by codec reason (ipv4.truncated, tcp.bad-option-length, ...). */
  parseErrors: Record<string, number>;
  /** The engine's counters summed over all connections, past and present. */
  tcp: TcpCounters;
  /** Connections in the table now. */
  connectionCount: number;
  connections: ConnectionStats[];
  /** The MPTCP MIB (kernel MPTcpExt names), once MPTCP was used. */
  mptcp: MptcpCounters | undefined;
}

/** One connection in the table. */
class ConnEntry implements FourTuple, HeapItem {
  heapAt = Number.POSITIVE_INFINITY;
  heapIndex = -1;
  dirty = false;
  closed = false;
  socket: TcpSocket | undefined;
  /** An MPTCP subflow's owner (events go to it instead of a socket). */
  owner: SubflowOwner | undefined;
  /** Passive open not yet accepted: counted in the listener's backlog while SYN-RECEIVED. */
  listener: Listener | undefined;
  inBacklog = false;
  readonly emit: (seg: OutgoingSegment) => void;

  constructor(
    readonly stack: TcpStack,
    readonly conn: TcpConnection,
    readonly local: IpAddress,
    readonly localPort: number,
    readonly remote: IpAddress,
    readonly remotePort: number,
  ) {
    this.emit = (seg) => stack.emitSegment(this, seg);
  }
}

export class Listener {
  /** Connections of this listener in SYN-RECEIVED. */
  synBacklogCount = 0;
  /** When we last answered a SYN with a cookie (cookies are only checked for a while after). */
  lastCookieAt = Number.NEGATIVE_INFINITY;
  closed = false;

  constructor(
    readonly port: number,
    readonly host: IpAddress | undefined,
    readonly anyDestination: boolean,
    readonly synBacklog: number,
    readonly allowHalfOpen: boolean,
    readonly tcp: Partial<TcpConfig> | undefined,
    readonly server: TcpServer,
    readonly mptcp: Partial<MptcpConfig> | undefined,
  ) {}
}

/** A connection still exchanging segments: in any state but TIME-WAIT (which only waits). */
function isBusy(e: { closed: boolean; conn: { state: string } }): boolean {
  return !e.closed && e.conn.state !== 'TIME-WAIT';
}

export class TcpStack {
  readonly device: Device;
  readonly scheduler: Scheduler;
  readonly addresses: readonly IpAddress[];
  private readonly counters = stackCounterSet.create();
  private readonly parseErrors: Record<string, number> = {};
  private readonly closedTcpCounters = createTcpCounters();
  private readonly secret: Uint8Array;
  private readonly isnGen: IsnGenerator;
  private readonly cookies: SynCookies;
  private readonly synBacklog: number;
  private readonly synCookiesOn: boolean;
  private readonly tcpConfig: Partial<TcpConfig>;
  private readonly ephemeral: readonly [number, number];
  private ephemeralNext = 0;
  private readonly ttl: number;
  private readonly v4Addresses = new Set<number>();
  private readonly v6Addresses: Uint8Array[] = [];
  /** Directed broadcasts of our IPv4 subnets (from IP/PREFIX addresses). */
  private readonly v4Broadcasts = new Set<number>();
  private readonly table = new ConnectionTable<ConnEntry>();
  private readonly listeners = new ListenerTable<Listener>();
  private readonly heap = new TimerHeap<ConnEntry>();
  private readonly pkt: PacketAddresses = {
    family: 4,
    src4: 0,
    dst4: 0,
    src6: EMPTY,
    dst6: EMPTY,
  };
  private dirty: ConnEntry[] = [];
  /** Entries whose dispatch waits for the device to drain. */
  private waiting: ConnEntry[] = [];
  private flushing = false;
  private flushTimer: TimerHandle | undefined;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private blocked = false;
  private destroyed = false;
  private readonly frames: Frame[] = [];
  private readonly arena = new FrameArena();
  private ipId = 0;
  private mptcp: MptcpEndpoint | undefined;
  /** Local addresses whose link is down (setAddressState): the path managers join from none. */
  private readonly downAddresses: IpAddress[] = [];
  /** settle() calls waiting for the connections to finish (checked after each flush). */
  private settleWaiters: ((busy: string[]) => void)[] = [];

  constructor(options: StackOptions) {
    if (options.addresses.length === 0) throw new InvalidArgumentError('a stack needs at least one address');
    this.device = options.device;
    this.scheduler = options.scheduler;
    const configured = options.addresses.map(parseInterfaceAddress);
    this.addresses = configured.map((c) => c.address);
    for (const { address: a, broadcast } of configured) {
      if (a.family === 4) this.v4Addresses.add(a.v4);
      else this.v6Addresses.push(a.v6);
      if (broadcast !== undefined) this.v4Broadcasts.add(broadcast);
    }
    this.secret = options.secret ?? randomBytes(32);
    this.isnGen = new IsnGenerator(this.secret);
    this.cookies = new SynCookies(this.secret);
    this.synBacklog = options.synBacklog ?? 256;
    if (!(Number.isInteger(this.synBacklog) && this.synBacklog >= 0)) {
      throw new InvalidArgumentError(`synBacklog must be an integer >= 0, got ${this.synBacklog}`);
    }
    this.synCookiesOn = options.synCookies ?? true;
    this.tcpConfig = options.tcp ?? {};
    this.ephemeral = options.ephemeralPorts ?? DEFAULT_EPHEMERAL;
    const [lo, hi] = this.ephemeral;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi && hi <= 65535)) {
      throw new InvalidArgumentError(`ephemeralPorts must be a range within 1..65535, got ${lo}..${hi}`);
    }
    this.ttl = options.ttl ?? 64;
    this.device.onFrames((frames) => this.onFrames(frames));
    this.device.onDrain(() => this.onDrain());
  }

  // ---------------------------------------------------------------- public API

  /** Active open. The returned socket emits 'connect' (or 'error' with ECONNREFUSED/ETIMEDOUT). */
  connect(options: ConnectOptions): TcpSocket {
    this.checkAlive();
    const remote = parseAddress(options.host);
    checkPort(options.port, 'port', false);
    let local: IpAddress;
    if (options.localAddress !== undefined) {
      local = parseAddress(options.localAddress);
      if (!this.isOurs(local)) {
        throw new InvalidArgumentError(
          `localAddress ${options.localAddress} is not one of the stack's addresses`,
        );
      }
    } else {
      const found = this.addresses.find((a) => a.family === remote.family);
      if (found === undefined) {
        throw new InvalidArgumentError(`the stack has no IPv${remote.family} address to connect from`);
      }
      local = found;
    }
    if (local.family !== remote.family)
      throw new InvalidArgumentError('localAddress and host differ in family');
    let localPort: number;
    if (options.localPort !== undefined) {
      checkPort(options.localPort, 'localPort', false);
      localPort = options.localPort;
      if (this.table.find({ local, localPort, remote, remotePort: options.port }) !== undefined) {
        throw new InvalidArgumentError(
          `${formatAddress(local)}:${localPort} -> ${options.host}:${options.port} is already in use`,
        );
      }
    } else {
      localPort = this.pickEphemeral(local, remote, options.port);
    }
    const mptcp = mptcpSettings(options.mptcp);
    if (mptcp !== undefined) return this.connectMptcp(options, local, localPort, remote, mptcp);
    const entry = this.openActive(local, localPort, remote, options.port, options.tcp, undefined);
    entry.socket = new TcpSocket(this.socketHost(entry), { allowHalfOpen: options.allowHalfOpen ?? false });
    this.kick(entry);
    return entry.socket;
  }

  /** An MPTCP connection's initial subflow; the socket fronts the MPTCP connection. */
  private connectMptcp(
    options: ConnectOptions,
    local: IpAddress,
    localPort: number,
    remote: IpAddress,
    config: Partial<MptcpConfig>,
  ): TcpSocket {
    const made = this.mptcpEndpoint().connect(config, options.tcp);
    if (made === undefined) throw new InvalidArgumentError('no unique MPTCP token could be found');
    const entry = this.openActive(local, localPort, remote, options.port, options.tcp, made.subflow);
    const socket = new TcpSocket(this.mptcpSocketHost(made.conn, entry), {
      allowHalfOpen: options.allowHalfOpen ?? false,
    });
    made.conn.socket = socket;
    for (const d of this.downAddresses) made.conn.pm?.onLocalAddress(made.conn, d, false);
    this.kick(entry);
    return socket;
  }

  /** An active open's connection and table entry; a subflow owner gets its hooks and send queue. */
  private openActive(
    local: IpAddress,
    localPort: number,
    remote: IpAddress,
    remotePort: number,
    tcp: Partial<TcpConfig> | undefined,
    subflow: Subflow | undefined,
  ): ConnEntry {
    const now = this.scheduler.now();
    const config = this.configFor(local.family, tcp);
    const conn = TcpConnection.connect({
      isn: this.isnGen.isn(now, local, localPort, remote, remotePort),
      now,
      localPort,
      remotePort,
      tsOffset: this.tsOffset(local, localPort, remote, remotePort),
      config,
      ...(subflow === undefined
        ? {}
        : { hooks: subflow, sendQueue: subflow, congestion: subflow.congestionFactory(config) }),
    });
    const entry = new ConnEntry(this, conn, local, localPort, remote, remotePort);
    this.table.add(entry);
    this.counters.activeOpens++;
    if (subflow !== undefined) this.adopt(entry, subflow);
    return entry;
  }

  /** A subflow becomes the owner of its entry. */
  private adopt(entry: ConnEntry, subflow: Subflow): void {
    entry.owner = subflow;
    subflow.attach(this.subflowHandle(entry));
  }

  private subflowHandle(e: ConnEntry): SubflowHandle {
    return {
      conn: e.conn,
      local: e.local,
      localPort: e.localPort,
      remote: e.remote,
      remotePort: e.remotePort,
      kick: () => this.kick(e),
    };
  }

  private mptcpSocketHost(mp: MptcpConnection, e: ConnEntry): TcpSocketHost {
    return {
      conn: mp,
      localAddress: formatAddress(e.local),
      localPort: e.localPort,
      remoteAddress: formatAddress(e.remote),
      remotePort: e.remotePort,
      family: e.local.family === 4 ? 'IPv4' : 'IPv6',
      kick: () => mp.kick(),
    };
  }

  /**
   * A local address's link went down or came back (what `mptun client --path IFACE` calls when it
   * sees the interface change): the path manager of every MPTCP connection hears it (pm.ts). Down:
   * the address's subflows are reset and the peer gets REMOVE_ADDR; no join leaves from it. Up:
   * subflows from it are re-created at once. The address stays ours for input either way.
   */
  setAddressState(address: string, state: 'up' | 'down'): void {
    const a = parseAddress(address);
    if (!this.isOurs(a)) throw new InvalidArgumentError(`${address} is not one of the stack's addresses`);
    if (state !== 'up' && state !== 'down')
      throw new InvalidArgumentError(`state must be up or down, got ${state}`);
    const i = this.downAddresses.findIndex((d) => addressEqual(d, a));
    if (state === 'down' && i < 0) this.downAddresses.push(a);
    if (state === 'up' && i >= 0) this.downAddresses.splice(i, 1);
    const conns = new Set<MptcpConnection>();
    // Every owner the table holds is a Subflow (the only SubflowOwner).
    for (const e of this.table.values()) if (e.owner !== undefined) conns.add((e.owner as Subflow).mp);
    for (const mp of conns) mp.pm?.onLocalAddress(mp, a, state === 'up');
  }

  /** Local addresses marked down with setAddressState. */
  get addressesDown(): string[] {
    return this.downAddresses.map(formatAddress);
  }

  /** The stack's MPTCP endpoint (made on first use). */
  mptcpEndpoint(): MptcpEndpoint {
    this.mptcp ??= new MptcpEndpoint(this.subflowHost());
    return this.mptcp;
  }

  /** What MPTCP asks of the iface: the clock, our addresses, new subflows. */
  private subflowHost(): SubflowHost {
    return {
      now: () => this.scheduler.now(),
      addresses: this.addresses,
      openSubflow: (local, remote, remotePort, owner, tcp) => {
        if (this.destroyed) return undefined;
        let localPort: number;
        try {
          localPort = this.pickEphemeral(local, remote, remotePort);
        } catch (err) {
          if (err instanceof InvalidArgumentError) return undefined;
          throw err;
        }
        const entry = this.openActive(local, localPort, remote, remotePort, tcp, owner);
        this.kick(entry);
        return owner.handle;
      },
    };
  }

  /** Passive open: a server whose 'connection' events carry established sockets. */
  listen(options: ListenOptions, onConnection?: (socket: TcpSocket) => void): TcpServer {
    this.checkAlive();
    const anyDestination = options.anyDestination ?? false;
    const port = options.port ?? 0;
    checkPort(port, 'port', anyDestination);
    let host: IpAddress | undefined;
    if (options.host !== undefined) {
      host = parseAddress(options.host);
      if (!this.isOurs(host))
        throw new InvalidArgumentError(`${options.host} is not one of the stack's addresses`);
    }
    const synBacklog = options.synBacklog ?? this.synBacklog;
    const server = new TcpServer((s) => this.closeListener(s));
    const listener = new Listener(
      port,
      host,
      anyDestination,
      synBacklog,
      options.allowHalfOpen ?? false,
      options.tcp,
      server,
      mptcpSettings(options.mptcp),
    );
    // From now on MP_JOIN SYNs are MPTCP's to route (by token), whatever port they go to.
    if (listener.mptcp !== undefined) this.mptcpEndpoint();
    if (this.listeners.conflicts(listener)) {
      throw new InvalidArgumentError(
        anyDestination ? 'an any-destination listener exists already' : `port ${port} is already listened on`,
      );
    }
    this.listeners.add(listener);
    server.bind(listener, host === undefined ? undefined : formatAddress(host), port);
    if (onConnection !== undefined) server.on('connection', onConnection);
    return server;
  }

  stats(): StackStats {
    const tcp = createTcpCounters();
    addTcpCounters(tcp, this.closedTcpCounters);
    const connections: ConnectionStats[] = [];
    for (const e of this.table.values()) {
      addTcpCounters(tcp, e.conn.counters);
      connections.push({
        local: formatAddress(e.local),
        localPort: e.localPort,
        remote: formatAddress(e.remote),
        remotePort: e.remotePort,
        info: e.conn.info(),
      });
    }
    return {
      counters: { ...this.counters, ...this.cookies.counters },
      parseErrors: { ...this.parseErrors },
      tcp,
      connectionCount: this.table.size,
      connections,
      mptcp: this.mptcp === undefined ? undefined : { ...this.mptcp.counters },
    };
  }

  /** Number of connections in the table (any state, TIME-WAIT included). */
  get connectionCount(): number {
    return this.table.size;
  }

  /**
   * Resolves once no connection has anything left to exchange (none is left, or only TIME-WAIT
   * ones, which just wait), or after `timeoutMs`, with the ones still busy (`local > remote
   * STATE`; none when all settled). A graceful stop waits for this before destroy(): connections
   * that ended still need their last bytes, FINs and DATA_FINs acknowledged, which destroy()
   * would cut with a reset.
   */
  settle(timeoutMs: number): Promise<string[]> {
    if (!this.anyBusy() || this.destroyed) return Promise.resolve([]);
    return new Promise((resolve) => {
      const waiter = (busy: string[]) => {
        this.scheduler.cancel(timer);
        this.settleWaiters = this.settleWaiters.filter((w) => w !== waiter);
        resolve(busy);
      };
      const timer = this.scheduler.setTimer(this.scheduler.now() + timeoutMs, () =>
        waiter(this.busyConnections()),
      );
      this.settleWaiters.push(waiter);
    });
  }

  /** The busy connections, as `local > remote STATE`. */
  private busyConnections(): string[] {
    const busy: string[] = [];
    for (const e of this.table.values())
      if (isBusy(e))
        busy.push(
          `${formatEndpoint(e.local, e.localPort)} > ${formatEndpoint(e.remote, e.remotePort)} ${e.conn.state}`,
        );
    return busy;
  }

  /** Whether some connection is busy: the check after each flush, without building the list. */
  private anyBusy(): boolean {
    for (const e of this.table.values()) if (isBusy(e)) return true;
    return false;
  }

  /** Resets every connection, stops timers and input. The device stays open (it is the caller's). */
  destroy(): void {
    if (this.destroyed) return;
    for (const w of [...this.settleWaiters]) w(this.busyConnections());
    for (const e of [...this.table.values()]) {
      e.conn.abort();
      this.markDirty(e);
    }
    this.flush();
    this.destroyed = true;
    for (const e of [...this.table.values()]) this.forget(e);
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    if (this.flushTimer !== undefined) this.scheduler.cancel(this.flushTimer);
    this.timer = undefined;
    this.flushTimer = undefined;
    this.device.onFrames(() => undefined);
  }

  // ---------------------------------------------------------------- input

  private onFrames(frames: readonly Frame[]): void {
    if (this.destroyed) return;
    const now = this.scheduler.now();
    for (const frame of frames) this.input(frame, now);
    this.flush();
  }

  private drop(reason: string): void {
    this.parseErrors[reason] = (this.parseErrors[reason] ?? 0) + 1;
  }

  private input(frame: Frame, now: number): void {
    const data = frame.data;
    const c = this.counters;
    c.framesIn++;
    c.bytesIn += data.length;
    const gso = frame.gso;
    if (gso !== undefined && gso.gsoType !== 'none') c.superPacketsIn++;
    if (data.length === 0) {
      c.dropBadIp++;
      this.drop('ip.empty');
      return;
    }
    const p = this.pkt;
    let tcpStart: number;
    let tcpEnd: number;
    let ours: boolean;
    const version = data[0]! >>> 4;
    if (version === 4) {
      const r = parseIpv4(data, 0, true);
      if (!r.ok) {
        c.dropBadIp++;
        this.drop(r.reason);
        return;
      }
      const ip = r.value;
      if (ip.moreFragments || ip.fragmentOffset !== 0) {
        c.dropFragment++;
        return;
      }
      if (ip.protocol !== IP_PROTOCOL_TCP) {
        c.dropNotTcp++;
        return;
      }
      p.family = 4;
      p.src4 = ip.src;
      p.dst4 = ip.dst;
      if (badV4(ip.src) || badV4(ip.dst)) {
        c.dropBadAddress++;
        return;
      }
      if (this.martianV4(ip.src, ip.dst)) return;
      tcpStart = ip.headerLength;
      tcpEnd = ip.totalLength;
      ours = this.v4Addresses.has(ip.dst);
    } else if (version === 6) {
      const r = parseIpv6(data, 0);
      if (!r.ok) {
        c.dropBadIp++;
        this.drop(r.reason);
        return;
      }
      const ip = r.value;
      if (ip.fragment !== null) {
        c.dropFragment++;
        return;
      }
      if (ip.protocol !== IP_PROTOCOL_TCP) {
        c.dropNotTcp++;
        return;
      }
      p.family = 6;
      p.src6 = ip.src;
      p.dst6 = ip.dst;
      if (badV6(ip.src) || badV6(ip.dst)) {
        c.dropBadAddress++;
        return;
      }
      if (this.martianV6(ip.src)) return;
      tcpStart = ip.payloadOffset;
      tcpEnd = ip.totalLength;
      ours = this.isOurV6(ip.dst);
    } else {
      c.dropBadIp++;
      this.drop('ip.bad-version');
      return;
    }
    // The kernel vouches for DATA_VALID; NEEDS_CSUM frames come from its own stack (partial sum).
    const trusted = gso !== undefined && (gso.dataValid || gso.needsCsum);
    if (!trusted) {
      const valid =
        p.family === 4
          ? tcpEnd - tcpStart >= TCP_HEADER && verifyTcpChecksumV4(data, tcpStart, tcpEnd, p.src4, p.dst4)
          : tcpEnd - tcpStart >= TCP_HEADER && verifyTcpChecksumV6(data, tcpStart, tcpEnd, p.src6, p.dst6);
      if (!valid) {
        if (tcpEnd - tcpStart < TCP_HEADER) {
          c.dropBadTcp++;
          this.drop('tcp.truncated');
        } else {
          c.dropBadTcpChecksum++;
        }
        return;
      }
    }
    const r = parseTcp(data, tcpStart, tcpEnd);
    if (!r.ok) {
      c.dropBadTcp++;
      this.drop(r.reason);
      return;
    }
    const h = r.value;
    const payload = data.subarray(tcpStart + h.headerLength, tcpEnd);
    const entry = this.table.lookup(p, h.dstPort, h.srcPort);
    if (entry !== undefined) {
      // RFC 6191 / RFC 9293 §3.10.7.4: a new SYN may take over a four-tuple in TIME-WAIT.
      if (entry.conn.state === 'TIME-WAIT' && entry.conn.canReopen(h)) {
        entry.conn.counters.timeWaitReopen++;
        this.forget(entry);
        entry.socket?._onClosed(undefined);
        entry.owner?.onClosed();
        this.noConnection(h, payload, ours, now);
        return;
      }
      entry.conn.process(h, payload, now);
      this.markDirty(entry);
      return;
    }
    this.noConnection(h, payload, ours, now);
  }

  /**
   * Martian IPv4 input, counted and dropped (never answered: a reply would go to loopback, to
   * a whole subnet or to ourselves). True when dropped.
   */
  private martianV4(src: number, dst: number): boolean {
    const c = this.counters;
    if (src >>> 24 === 127) {
      c.dropLoopbackSource++;
      return true;
    }
    if (this.v4Broadcasts.size > 0 && (this.v4Broadcasts.has(src) || this.v4Broadcasts.has(dst))) {
      c.dropBroadcastAddress++;
      return true;
    }
    if (this.v4Addresses.has(src)) {
      c.dropOwnSource++;
      return true;
    }
    return false;
  }

  /** The same for IPv6 (no broadcast there; multicast is dropBadAddress). True when dropped. */
  private martianV6(src: Uint8Array): boolean {
    if (isV6Loopback(src)) {
      this.counters.dropLoopbackSource++;
      return true;
    }
    if (this.isOurV6(src)) {
      this.counters.dropOwnSource++;
      return true;
    }
    return false;
  }

  /** A segment that matches no connection: a listener's, or a stray. */
  private noConnection(h: TcpHeader, payload: Uint8Array, ours: boolean, now: number): void {
    const c = this.counters;
    // Checked here, after the lookup, not on input: an intercepted connection (accepted by an
    // any-destination listener) keeps its foreign local address after that listener closes,
    // and must still hear its peer's last ACKs, FINs and RSTs while it finishes.
    if (!ours && !this.listeners.hasAnyDestination) {
      c.dropNotForUs++;
      return;
    }
    if ((h.flags & TCP_RST) !== 0) {
      // RFC 9293 §3.10.7.1: an incoming RST is discarded, never answered.
      c.dropRstNoConnection++;
      return;
    }
    if (
      ours &&
      (h.flags & (TCP_SYN | TCP_ACK | TCP_FIN)) === TCP_SYN &&
      this.mptcp !== undefined &&
      hasMpJoin(h)
    ) {
      this.onJoinSyn(h, now);
      return;
    }
    const listener = this.listeners.lookup(this.pkt, h.dstPort, ours);
    if (listener === undefined || listener.closed) {
      c.rstSentNoConnection++;
      this.sendReset(h, payload.length);
      return;
    }
    const synAck = h.flags & (TCP_SYN | TCP_ACK);
    if (synAck === TCP_SYN && (h.flags & TCP_FIN) === 0) {
      this.onSyn(listener, h, now);
    } else if ((h.flags & TCP_ACK) !== 0) {
      // RFC 9293 §3.10.7.2 (LISTEN): any ACK is bad, unless it returns one of our cookies.
      if ((h.flags & TCP_SYN) === 0 && this.tryCookie(listener, h, payload, now)) return;
      c.rstSentListenAck++;
      this.sendReset(h, payload.length);
    } else {
      c.dropListenBadFlags++;
    }
  }

  private onSyn(listener: Listener, h: TcpHeader, now: number): void {
    const local = this.localOf();
    const remote = this.remoteOf();
    if (listener.synBacklogCount >= listener.synBacklog) {
      this.counters.synBacklogFull++;
      if (!this.synCookiesOn) {
        this.counters.synDropped++;
        return;
      }
      this.sendCookieSynAck(listener, local, remote, h, now);
      return;
    }
    const subflow =
      listener.mptcp === undefined
        ? undefined
        : this.mptcpEndpoint().passive(h, listener.mptcp, listener.tcp);
    const entry = this.openPassive(h, local, remote, listener.tcp, subflow, now);
    entry.listener = listener;
    entry.inBacklog = true;
    listener.synBacklogCount++;
    if (subflow !== undefined) this.acceptWhenReady(subflow.mp, listener, entry);
  }

  /** A passive MPTCP connection's socket is made and accepted once the handshake completes. */
  private acceptWhenReady(mp: MptcpConnection, listener: Listener, entry: ConnEntry): void {
    mp.onReady = () => {
      if (listener.closed) {
        this.counters.acceptAborted++;
        mp.abort();
        return;
      }
      const socket = new TcpSocket(this.mptcpSocketHost(mp, entry), {
        allowHalfOpen: listener.allowHalfOpen,
      });
      mp.socket = socket;
      socket._onConnected();
      listener.server._accept(socket);
    };
  }

  /** A passive open's connection and table entry (a subflow owner gets hooks and send queue). */
  private openPassive(
    h: TcpHeader,
    local: IpAddress,
    remote: IpAddress,
    tcp: Partial<TcpConfig> | undefined,
    subflow: Subflow | undefined,
    now: number,
  ): ConnEntry {
    const config = this.configFor(local.family, tcp);
    const conn = TcpConnection.accept(h, {
      isn: this.isnGen.isn(now, local, h.dstPort, remote, h.srcPort),
      now,
      localPort: h.dstPort,
      remotePort: h.srcPort,
      tsOffset: this.tsOffset(local, h.dstPort, remote, h.srcPort),
      config,
      ...(subflow === undefined
        ? {}
        : { hooks: subflow, sendQueue: subflow, congestion: subflow.congestionFactory(config) }),
    });
    const entry = new ConnEntry(this, conn, local, h.dstPort, remote, h.srcPort);
    this.table.add(entry);
    this.counters.passiveOpens++;
    if (subflow !== undefined) this.adopt(entry, subflow);
    this.markDirty(entry);
    return entry;
  }

  /**
   * A SYN with MP_JOIN (RFC 8684 §3.2) is routed by its token, before any listener and before
   * anything is allocated: an unknown token (a join that a load balancer sent to the wrong
   * server, or a forgery) is answered with a reset carrying MP_TCPRST, statelessly.
   */
  private onJoinSyn(h: TcpHeader, now: number): void {
    const local = this.localOf();
    const remote = this.remoteOf();
    const r = this.mptcpEndpoint().joinSyn(h, local);
    if (typeof r === 'string') {
      this.counters.joinSynsReset++;
      this.sendReset(h, 0, [
        {
          type: 'mptcp',
          option: {
            subtype: 'mp_tcprst',
            flagU: false,
            flagV: false,
            flagW: false,
            transient: r === 'refused',
            reason: r === 'refused' ? MP_TCPRST_REASON.lackOfResources : MP_TCPRST_REASON.mptcpSpecific,
          },
        },
      ]);
      return;
    }
    this.openPassive(h, local, remote, this.mptcpEndpoint().tcpConfigOf(r.mp), r, now);
  }

  /** The effective engine config a listener's connections get (the cookie SYN-ACK must agree). */
  private effectiveConfig(family: 4 | 6, extra: Partial<TcpConfig> | undefined): TcpConfig {
    return { ...DEFAULT_TCP_CONFIG, ...this.configFor(family, extra) };
  }

  private sendCookieSynAck(
    listener: Listener,
    local: IpAddress,
    remote: IpAddress,
    h: TcpHeader,
    now: number,
  ): void {
    const cfg = this.effectiveConfig(local.family, listener.tcp);
    const mssOpt = findTcpOption(h.options, 'mss');
    const ws = findTcpOption(h.options, 'window-scale');
    const ts = findTcpOption(h.options, 'timestamps');
    const useTs = ts !== undefined && cfg.timestamps;
    const peerWindowScale = useTs && cfg.windowScale && ws !== undefined ? ws.shift : undefined;
    const sack = useTs && cfg.sack && findTcpOption(h.options, 'sack-permitted') !== undefined;
    const tsOffset = this.tsOffset(local, h.dstPort, remote, h.srcPort);
    const cookie = this.cookies.encode(
      now,
      local,
      h.dstPort,
      remote,
      h.srcPort,
      {
        peerIsn: h.seqNumber,
        peerMss: Math.min(
          mssOpt?.mss ?? (local.family === 4 ? DEFAULT_PEER_MSS_V4 : DEFAULT_PEER_MSS_V6),
          cfg.mssClamp,
        ),
        peerWindowScale,
        sackPermitted: sack,
        timestamps: useTs,
      },
      (Math.floor(now) + tsOffset) >>> 0,
    );
    listener.lastCookieAt = now;
    // The engine's own SYN-ACK layout, so a cookie connection looks like any other.
    const options = synOptions(cfg, cookie.tsVal ?? 0, ts?.tsVal ?? 0, {
      windowScale: peerWindowScale !== undefined,
      sackPermitted: sack,
      timestamps: useTs,
    });
    // MPTCP under SYN cookies: a fresh key nobody stores; the third ACK echoes it (RFC 8684 §3.1).
    const mpc =
      listener.mptcp === undefined ? undefined : this.mptcpEndpoint().cookieSynAckOption(h, listener.mptcp);
    if (mpc !== undefined) options.push({ type: 'mptcp', option: mpc });
    this.emitRaw(local, remote, {
      srcPort: h.dstPort,
      dstPort: h.srcPort,
      seqNumber: cookie.iss,
      ackNumber: seqAdd(h.seqNumber, 1),
      flags: TCP_SYN | TCP_ACK,
      window: Math.min(cfg.recvBufferSize, 0xffff),
      options,
    });
  }

  /** Checks an ACK to a listener against our cookies; builds the connection when it is one. */
  private tryCookie(listener: Listener, h: TcpHeader, payload: Uint8Array, now: number): boolean {
    if (!this.synCookiesOn || now - listener.lastCookieAt > 2 * COOKIE_SLOT_MS) return false;
    const local = this.localOf();
    const remote = this.remoteOf();
    const ts = findTcpOption(h.options, 'timestamps');
    const info = this.cookies.decode(
      now,
      local,
      h.dstPort,
      remote,
      h.srcPort,
      h.seqNumber,
      h.ackNumber,
      ts?.tsEcr,
    );
    if (info === undefined) return false;
    // The ACK's MP_CAPABLE carries both keys: the connection is rebuilt from it, as the SYN's.
    const subflow =
      listener.mptcp === undefined
        ? undefined
        : this.mptcpEndpoint().passiveFromCookie(h, listener.mptcp, listener.tcp);
    const conn = TcpConnection.fromCookie(
      h,
      payload,
      {
        mss: info.mss,
        peerWindowScale: info.peerWindowScale,
        sackPermitted: info.sackPermitted,
        timestamps: info.timestamps,
      },
      {
        isn: info.iss,
        now,
        localPort: h.dstPort,
        remotePort: h.srcPort,
        tsOffset: this.tsOffset(local, h.dstPort, remote, h.srcPort),
        config: this.configFor(local.family, listener.tcp),
        ...(subflow === undefined ? {} : { hooks: subflow, sendQueue: subflow }),
      },
    );
    const entry = new ConnEntry(this, conn, local, h.dstPort, remote, h.srcPort);
    entry.listener = listener;
    this.table.add(entry);
    this.counters.passiveOpens++;
    if (subflow !== undefined) {
      this.adopt(entry, subflow);
      this.acceptWhenReady(subflow.mp, listener, entry);
    }
    this.markDirty(entry);
    return true;
  }

  /**
   * RFC 9293 §3.10.7.1: if the segment has ACK, <SEQ=SEG.ACK><CTL=RST>; otherwise
   * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (SYN and FIN each count one).
   */
  private sendReset(h: TcpHeader, payloadLength: number, options: TcpOption[] = []): void {
    const local = this.localOf();
    const remote = this.remoteOf();
    if ((h.flags & TCP_ACK) !== 0) {
      this.emitRaw(local, remote, {
        srcPort: h.dstPort,
        dstPort: h.srcPort,
        seqNumber: h.ackNumber,
        ackNumber: 0,
        flags: TCP_RST,
        window: 0,
        options,
      });
      return;
    }
    const segLen = payloadLength + ((h.flags & TCP_SYN) !== 0 ? 1 : 0) + ((h.flags & TCP_FIN) !== 0 ? 1 : 0);
    this.emitRaw(local, remote, {
      srcPort: h.dstPort,
      dstPort: h.srcPort,
      seqNumber: 0,
      ackNumber: seqAdd(h.seqNumber, segLen),
      flags: TCP_RST | TCP_ACK,
      window: 0,
      options,
    });
  }

  /** The current packet's destination (our side), copied. */
  private localOf(): IpAddress {
    const p = this.pkt;
    return p.family === 4 ? v4(p.dst4) : v6(p.dst6);
  }

  private remoteOf(): IpAddress {
    const p = this.pkt;
    return p.family === 4 ? v4(p.src4) : v6(p.src6);
  }

  // ---------------------------------------------------------------- output and timers

  /** Called by sockets (and internally) when a connection has something to do. */
  kick(entry: ConnEntry): void {
    this.markDirty(entry);
    this.scheduleFlush();
  }

  private markDirty(entry: ConnEntry): void {
    if (entry.dirty || entry.closed) return;
    entry.dirty = true;
    this.dirty.push(entry);
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushTimer !== undefined || this.destroyed) return;
    this.flushTimer = this.scheduler.setTimer(this.scheduler.now(), () => {
      this.flushTimer = undefined;
      this.flush();
    });
  }

  /** Dispatches every dirty connection, delivers events, writes all frames in one call. */
  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const now = this.scheduler.now();
      // Sockets may make more connections dirty while we deliver events; bounded rounds.
      for (let round = 0; this.dirty.length > 0 && round < 64; round++) {
        const list = this.dirty;
        this.dirty = [];
        for (const e of list) {
          e.dirty = false;
          if (!e.closed) this.service(e, now);
        }
      }
      this.writeOut();
    } finally {
      this.flushing = false;
    }
    if (this.dirty.length > 0) this.scheduleFlush();
    this.armTimer();
    if (this.settleWaiters.length > 0 && !this.anyBusy()) for (const w of [...this.settleWaiters]) w([]);
  }

  private service(e: ConnEntry, now: number): void {
    // Events from input first: a socket that reads now opens the window before dispatch, so
    // the one ACK of this flush carries the update (instead of a second, window-only ACK).
    // Marked dirty meanwhile, so what the socket does needs no extra round.
    const before = e.conn.takeEvents();
    if (before !== 0) {
      e.dirty = true;
      this.onEvents(e, before);
      e.dirty = false;
    }
    let dispatched = false;
    if (this.blocked) {
      this.waiting.push(e);
    } else {
      e.owner?.beforeDispatch(now);
      e.conn.dispatch(now, e.emit);
      dispatched = true;
    }
    const events = e.conn.takeEvents();
    if (events !== 0) this.onEvents(e, events);
    // Forget a closed connection only once its last segment (a RST, say) has been dispatched and
    // nothing made it dirty again (a socket reacting to an event).
    if (e.conn.state === 'CLOSED') {
      if (dispatched && !e.dirty) {
        this.forget(e);
        e.socket?._onClosed(e.conn.error);
        e.owner?.onClosed();
      }
      return;
    }
    const at = e.conn.pollAt();
    this.heap.set(e, e.owner === undefined ? at : Math.min(at, e.owner.pollAt()));
  }

  private onEvents(e: ConnEntry, events: number): void {
    if (e.owner !== undefined) {
      if ((events & TcpEvent.CONNECTED) !== 0) this.leaveBacklog(e);
      e.owner.onEvents(events);
      return;
    }
    if ((events & TcpEvent.CONNECTED) !== 0 || (e.socket === undefined && e.conn.state === 'ESTABLISHED')) {
      if (e.socket !== undefined) e.socket._onConnected();
      else if (e.listener !== undefined) this.accept(e);
    }
    const s = e.socket;
    if (s !== undefined) {
      if ((events & (TcpEvent.READABLE | TcpEvent.PEER_FIN)) !== 0)
        s._onReadable((events & TcpEvent.PEER_FIN) !== 0);
      if ((events & TcpEvent.WRITABLE) !== 0) s._onWritable();
    }
  }

  private accept(e: ConnEntry): void {
    const listener = e.listener!;
    this.leaveBacklog(e);
    if (listener.closed) {
      this.counters.acceptAborted++;
      e.conn.abort();
      this.markDirty(e);
      return;
    }
    e.socket = new TcpSocket(this.socketHost(e), { allowHalfOpen: listener.allowHalfOpen });
    e.socket._onConnected();
    listener.server._accept(e.socket);
  }

  private leaveBacklog(e: ConnEntry): void {
    if (!e.inBacklog) return;
    e.inBacklog = false;
    e.listener!.synBacklogCount--;
  }

  private forget(e: ConnEntry): void {
    if (e.closed) return;
    e.closed = true;
    this.leaveBacklog(e);
    this.table.remove(e);
    this.heap.remove(e);
    addTcpCounters(this.closedTcpCounters, e.conn.counters);
    this.counters.connectionsClosed++;
  }

  private armTimer(): void {
    if (this.destroyed) return;
    const at = this.heap.peek()?.heapAt ?? Number.POSITIVE_INFINITY;
    if (at === this.timerAt) return;
    // An earlier timer will fire and re-arm; a later or absent one is replaced.
    if (this.timer !== undefined && this.timerAt < at && at !== Number.POSITIVE_INFINITY) return;
    if (this.timer !== undefined) this.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at !== Number.POSITIVE_INFINITY) this.timer = this.scheduler.setTimer(at, () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.scheduler.now();
    for (let e = this.heap.popDue(now); e !== undefined; e = this.heap.popDue(now)) this.markDirty(e);
    this.flush();
  }

  private onDrain(): void {
    if (this.destroyed) return;
    this.blocked = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const e of waiting) this.markDirty(e);
    this.flush();
  }

  private writeOut(): void {
    if (this.frames.length === 0) return;
    const ok = this.device.write(this.frames);
    this.frames.length = 0;
    this.arena.reset();
    if (!ok) {
      this.blocked = true;
      this.counters.deviceBackpressure++;
    }
  }

  /** The engine's emit callback for one connection. */
  emitSegment(e: ConnEntry, seg: OutgoingSegment): void {
    const h = seg.header;
    h.srcPort = e.localPort;
    h.dstPort = e.remotePort;
    const payload = seg.payload;
    const gsoSize = seg.gsoSize;
    if (gsoSize > 0 && payload.length > gsoSize && !this.device.offload) {
      this.segmentInSoftware(e.local, e.remote, h, payload, gsoSize);
      return;
    }
    this.buildFrame(e.local, e.remote, h, payload, gsoSize > 0 && payload.length > gsoSize ? gsoSize : 0);
  }

  /** A super-segment on a device without offload: cut it here, as the kernel would. */
  private segmentInSoftware(
    local: IpAddress,
    remote: IpAddress,
    h: TcpFields,
    payload: Uint8Array,
    mss: number,
  ): void {
    const lastFlags = h.flags;
    const seq = h.seqNumber;
    for (let off = 0; off < payload.length; off += mss) {
      const end = Math.min(payload.length, off + mss);
      const last = end === payload.length;
      const part: TcpFields = {
        ...h,
        seqNumber: seqAdd(seq, off),
        flags: last ? lastFlags : lastFlags & ~(TCP_FIN | TCP_PSH),
      };
      this.buildFrame(local, remote, part, payload.subarray(off, end), 0);
    }
  }

  private emitRaw(local: IpAddress, remote: IpAddress, h: TcpFields): void {
    this.buildFrame(local, remote, h, EMPTY, 0);
    this.scheduleFlush();
  }

  private buildFrame(
    local: IpAddress,
    remote: IpAddress,
    h: TcpFields,
    payload: Uint8Array,
    gsoSize: number,
  ): void {
    const ipLen = local.family === 4 ? IPV4_HEADER : IPV6_HEADER_LENGTH;
    const tcpHdrLen = tcpHeaderLength(h);
    const tcpLen = tcpHdrLen + payload.length;
    const total = ipLen + tcpLen;
    const buf = this.arena.alloc(total);
    let pseudo: number;
    if (local.family === 4 && remote.family === 4) {
      encodeIpv4(
        {
          tos: 0,
          totalLength: total,
          identification: this.ipId,
          dontFragment: true,
          moreFragments: false,
          fragmentOffset: 0,
          ttl: this.ttl,
          protocol: IP_PROTOCOL_TCP,
          src: local.v4,
          dst: remote.v4,
          options: NO_IP_OPTIONS,
        },
        buf,
        0,
      );
      // The kernel's TSO numbers the segments it cuts from a super-packet consecutively.
      this.ipId = (this.ipId + (gsoSize > 0 ? Math.ceil(payload.length / gsoSize) : 1)) & 0xffff;
      pseudo = pseudoHeaderSumV4(local.v4, remote.v4, IP_PROTOCOL_TCP, tcpLen);
    } else if (local.family === 6 && remote.family === 6) {
      encodeIpv6(
        {
          trafficClass: 0,
          flowLabel: 0,
          payloadLength: tcpLen,
          nextHeader: IP_PROTOCOL_TCP,
          hopLimit: this.ttl,
          src: local.v6,
          dst: remote.v6,
        },
        buf,
        0,
      );
      pseudo = pseudoHeaderSumV6(local.v6, remote.v6, IP_PROTOCOL_TCP, tcpLen);
    } else {
      throw new InvalidArgumentError('local and remote address families differ');
    }
    encodeTcp(h, buf, ipLen);
    // Whatever checksum the fields carried, the sum is taken over a zero field.
    buf[ipLen + TCP_CHECKSUM_OFFSET] = 0;
    buf[ipLen + TCP_CHECKSUM_OFFSET + 1] = 0;
    buf.set(payload, ipLen + tcpHdrLen);
    let gso: GsoInfo | undefined;
    // With offload the field holds the folded pseudo-header sum and the kernel finishes it.
    const checksum = this.device.offload ? foldSum(pseudo) : internetChecksum(buf, ipLen, total, pseudo);
    buf[ipLen + TCP_CHECKSUM_OFFSET] = checksum >>> 8;
    buf[ipLen + TCP_CHECKSUM_OFFSET + 1] = checksum & 0xff;
    if (this.device.offload) {
      gso = {
        needsCsum: true,
        dataValid: false,
        gsoType: gsoSize > 0 ? (local.family === 4 ? 'tcpv4' : 'tcpv6') : 'none',
        hdrLen: ipLen + tcpHdrLen,
        gsoSize,
        csumStart: ipLen,
        csumOffset: TCP_CHECKSUM_OFFSET,
      };
    }
    this.frames.push(gso === undefined ? { data: buf } : { data: buf, gso });
    const c = this.counters;
    c.framesOut++;
    c.bytesOut += total;
    if (gsoSize > 0) c.superPacketsOut++;
  }

  // ---------------------------------------------------------------- helpers

  private socketHost(e: ConnEntry): TcpSocketHost {
    return {
      conn: e.conn,
      localAddress: formatAddress(e.local),
      localPort: e.localPort,
      remoteAddress: formatAddress(e.remote),
      remotePort: e.remotePort,
      family: e.local.family === 4 ? 'IPv4' : 'IPv6',
      kick: () => this.kick(e),
    };
  }

  private closeListener(server: TcpServer): void {
    const l = server._listener;
    if (l === undefined || l.closed) return;
    l.closed = true;
    this.listeners.remove(l);
    // Half-open connections of a closed listener have nobody to accept them.
    for (const e of [...this.table.values()]) {
      if (e.listener === l && e.conn.state === 'SYN-RECEIVED') {
        e.conn.abort();
        this.markDirty(e);
      }
    }
    this.scheduleFlush();
  }

  private configFor(family: 4 | 6, extra: Partial<TcpConfig> | undefined): Partial<TcpConfig> {
    const ipLen = family === 4 ? IPV4_HEADER : IPV6_HEADER_LENGTH;
    const mss = this.device.mtu - ipLen - TCP_HEADER;
    // With offload, ask the engine for super-segments up to what one IP packet can carry.
    const maxPayload = this.device.offload ? 0xffff - (family === 4 ? ipLen : 0) - TCP_MAX_HEADER : 0;
    return { mss, maxPayload, ...this.tcpConfig, ...extra };
  }

  /** RFC 7323 §7.1: a per-connection TSval offset; keyed on the four-tuple so cookies can rebuild it. */
  private tsOffset(local: IpAddress, localPort: number, remote: IpAddress, remotePort: number): number {
    return fourTupleHash(this.secret, 'ts-offset', local, localPort, remote, remotePort);
  }

  /** RFC 6056 §3.3.3 (algorithm 3): a keyed offset per destination plus a global counter. */
  private pickEphemeral(local: IpAddress, remote: IpAddress, remotePort: number): number {
    const [lo, hi] = this.ephemeral;
    const count = hi - lo + 1;
    const offset = fourTupleHash(this.secret, 'port', local, 0, remote, remotePort);
    for (let i = 0; i < count; i++) {
      const port = lo + ((offset + this.ephemeralNext + i) % count);
      if (this.listeners.hasPort(port)) continue;
      if (this.table.find({ local, localPort: port, remote, remotePort }) !== undefined) continue;
      this.ephemeralNext += i + 1;
      return port;
    }
    throw new InvalidArgumentError(`no free local port towards ${formatAddress(remote)}:${remotePort}`);
  }

  private isOurs(a: IpAddress): boolean {
    return this.addresses.some((o) => addressEqual(o, a));
  }

  private isOurV6(dst: Uint8Array): boolean {
    for (const a of this.v6Addresses) {
      let same = true;
      for (let i = 0; i < 16; i++) {
        if (a[i] !== dst[i]) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
    return false;
  }

  private checkAlive(): void {
    if (this.destroyed) throw new InvalidArgumentError('the stack has been destroyed');
  }
}

function checkPort(port: number, name: string, zeroOk: boolean): void {
  if (!Number.isInteger(port) || port < (zeroOk ? 0 : 1) || port > 65535) {
    throw new InvalidArgumentError(`${name} must be an integer in ${zeroOk ? 0 : 1}..65535, got ${port}`);
  }
}

/** 0.0.0.0/8, multicast 224/4 and above (class E, broadcast): no TCP connection uses them. */
function badV4(a: number): boolean {
  return a >>> 24 === 0 || a >>> 28 >= 0xe;
}

/** ::1 (RFC 4291 §2.5.3). */
function isV6Loopback(a: Uint8Array): boolean {
  for (let i = 0; i < 15; i++) if (a[i] !== 0) return false;
  return a[15] === 1;
}

/** Unspecified (::) and multicast (ff00::/8). */
function badV6(a: Uint8Array): boolean {
  if (a[0] === 0xff) return true;
  for (let i = 0; i < 16; i++) if (a[i] !== 0) return false;
  return true;
}

/** ListenOptions/ConnectOptions `mptcp` as settings, or undefined when off. */
function mptcpSettings(option: boolean | Partial<MptcpConfig> | undefined): Partial<MptcpConfig> | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return {};
  if (option.congestion !== undefined && !isMptcpCongestionName(option.congestion)) {
    throw new InvalidArgumentError(
      `mptcp.congestion: unknown ${String(option.congestion)} (one of ${MPTCP_CONGESTION_NAMES.join(', ')})`,
    );
  }
  const stale = option.staleAfterRtos;
  if (stale !== undefined && !(Number.isInteger(stale) && stale >= 1)) {
    throw new InvalidArgumentError(`mptcp.staleAfterRtos: ${String(stale)} is not an integer >= 1`);
  }
  return option;
}

function hasMpJoin(h: TcpHeader): boolean {
  for (const o of h.options) if (o.type === 'mptcp' && o.option.subtype === 'mp_join') return true;
  return false;
}
