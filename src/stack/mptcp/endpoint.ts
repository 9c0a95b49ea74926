/**
 * The MPTCP side of one stack (Linux keeps this per network namespace): the token table, the
 * MIB counters, and the three ways a subflow comes to be: an active open of a new connection,
 * a SYN with MP_CAPABLE at an MPTCP listener, and a SYN with MP_JOIN routed here by token
 * before any state is allocated (RFC 8684 §3.2: an unknown token is answered with a reset).
 */
import { addressEqual, type IpAddress } from '../iface/address.js';
import type { TcpConfig } from '../tcp/types.js';
import type { MpCapableOption, MpJoinSynOption, MptcpOption } from '../wire/mptcp-options.js';
import type { TcpHeader } from '../wire/tcp.js';
import { MptcpConnection, type MptcpEndpointContext } from './connection.js';
import { type MptcpCounters, mptcpCounterSet } from './counters.js';
import { randomKey } from './crypto.js';
import { PathManager, type PathManagerHost } from './pm.js';
import { Subflow } from './subflow.js';
import { TokenTable } from './token.js';
import { DEFAULT_MPTCP_CONFIG, type MptcpConfig, type SubflowHost } from './types.js';

/** The token table's entry: the connection is made after its key is chosen. */
interface Registration {
  conn: MptcpConnection | undefined;
}

export type JoinRefusal = 'no-token' | 'refused';

export class MptcpEndpoint implements MptcpEndpointContext, PathManagerHost {
  readonly counters: MptcpCounters = mptcpCounterSet.create();
  private readonly tokens: TokenTable<Registration>;
  /** Per-connection engine settings joins inherit (from connect or the listener). */
  private readonly joinTcp = new WeakMap<MptcpConnection, Partial<TcpConfig> | undefined>();

  constructor(private readonly host: SubflowHost) {
    this.tokens = new TokenTable<Registration>({ counters: this.counters });
  }

  get addresses(): readonly IpAddress[] {
    return this.host.addresses;
  }

  now(): number {
    return this.host.now();
  }

  release(conn: MptcpConnection): void {
    const reg = this.tokens.lookup(conn.localToken);
    if (reg?.conn === conn) this.tokens.release(conn.localToken, reg);
  }

  /** Connections in the token table now. */
  get connectionCount(): number {
    return this.tokens.size;
  }

  /** A new connection (client or server) with a fresh, unique local key. */
  /**
   * A new connection with its initial subflow: a fresh unique local key, or `claimKey` (a SYN
   * cookie's, undefined when its token is taken). Servers set the C flag unless told not to.
   */
  private newConnection(
    role: 'client' | 'server',
    config: Partial<MptcpConfig> | undefined,
    tcp: Partial<TcpConfig> | undefined,
    claimKey?: bigint,
  ): Subflow | undefined {
    const reg: Registration = { conn: undefined };
    const key = claimKey === undefined ? this.tokens.allocate(reg) : this.tokens.claim(claimKey, reg);
    if (key === undefined) return undefined;
    const settings = { ...DEFAULT_MPTCP_CONFIG, ...(role === 'server' ? { cFlag: true } : {}), ...config };
    const conn = new MptcpConnection(this, settings, role, key);
    reg.conn = conn;
    conn.pm = new PathManager(this);
    this.joinTcp.set(conn, tcp);
    const subflow = new Subflow(conn, conn.newSubflowId(), 'initial', role === 'client');
    conn.add(subflow);
    return subflow;
  }

  /** Active open: the connection and the owner of its initial subflow (the caller opens the TCP side). */
  connect(
    config: Partial<MptcpConfig> | undefined,
    tcp: Partial<TcpConfig> | undefined,
  ): { conn: MptcpConnection; subflow: Subflow } | undefined {
    const subflow = this.newConnection('client', config, tcp);
    return subflow === undefined ? undefined : { conn: subflow.mp, subflow };
  }

  /**
   * A SYN at an MPTCP listener. Undefined: answer it as plain TCP (no MP_CAPABLE, a version or
   * flags we do not speak: RFC 8684 §3.1 lets the server fall back at once).
   */
  passive(
    syn: TcpHeader,
    config: Partial<MptcpConfig>,
    tcp: Partial<TcpConfig> | undefined,
  ): Subflow | undefined {
    const mpc = this.synMpCapable(syn);
    if (mpc === undefined) return undefined;
    const subflow = this.newConnection('server', config, tcp);
    if (subflow !== undefined && mpc.checksumRequired) subflow.mp.checksum = true;
    return subflow;
  }

  /**
   * The MP_CAPABLE of a SYN that we answer with MPTCP (counted MPCapableSYNRX), or undefined for
   * plain TCP: none, a malformed one, or flags we do not speak (no H, B set, a key in a SYN).
   */
  private synMpCapable(syn: TcpHeader): MpCapableOption | undefined {
    const mpc = findMptcp(syn, 'mp_capable') as MpCapableOption | undefined;
    if (mpc === undefined) {
      if (syn.options.some((o) => o.type === 'mptcp-invalid')) this.counters.mptcpOptionInvalid++;
      return undefined;
    }
    this.counters.MPCapableSYNRX++;
    if (!mpc.hmacSha256 || mpc.extensibility || mpc.senderKey !== undefined) {
      this.counters.MPCapableFallbackSYNACK++;
      return undefined;
    }
    return mpc;
  }

  /**
   * The MP_CAPABLE of a SYN-cookie SYN-ACK: a fresh key that is not stored (the third ACK brings it
   * back with the client's), or undefined when the SYN gets plain TCP.
   */
  cookieSynAckOption(syn: TcpHeader, config: Partial<MptcpConfig>): MpCapableOption | undefined {
    const mpc = this.synMpCapable(syn);
    if (mpc === undefined) return undefined;
    const settings = { ...DEFAULT_MPTCP_CONFIG, cFlag: true, ...config };
    return {
      subtype: 'mp_capable',
      version: 1,
      checksumRequired: settings.checksum || mpc.checksumRequired,
      extensibility: false,
      noJoinToSource: settings.cFlag,
      extensionFlags: 0,
      hmacSha256: true,
      senderKey: randomKey(),
    };
  }

  /**
   * The ACK that returns a SYN cookie, at an MPTCP listener: when it carries MP_CAPABLE with both
   * keys, the connection is made with our key from it (unless its token is taken: plain TCP then).
   */
  passiveFromCookie(ack: TcpHeader, config: Partial<MptcpConfig>, tcp: Partial<TcpConfig> | undefined) {
    const mpc = findMptcp(ack, 'mp_capable') as MpCapableOption | undefined;
    if (mpc?.receiverKey === undefined || mpc.senderKey === undefined) return undefined;
    const subflow = this.newConnection('server', config, tcp, mpc.receiverKey);
    if (subflow !== undefined && mpc.checksumRequired) subflow.mp.checksum = true;
    return subflow;
  }

  /** A SYN with MP_JOIN to one of our addresses: its subflow, or why it is refused. */
  joinSyn(syn: TcpHeader, local: IpAddress): Subflow | JoinRefusal {
    const j = findMptcp(syn, 'mp_join') as MpJoinSynOption | undefined;
    if (j === undefined || j.form !== 'syn') return 'refused';
    const conn = this.tokens.lookup(j.receiverToken)?.conn;
    if (conn === undefined || conn.state === 'closed') {
      this.counters.MPJoinNoTokenFound++;
      return 'no-token';
    }
    this.counters.MPJoinSynRx++;
    if (j.backup) this.counters.MPJoinSynBackupRx++;
    if (conn.fallback || conn.state !== 'established' || conn.subflows.length >= conn.config.maxSubflows) {
      this.counters.MPJoinRejected++;
      return 'refused';
    }
    const initial = conn.initial?.handle;
    if (conn.config.cFlag && initial !== undefined && addressEqual(initial.local, local)) {
      // The client ignored our C flag; harmless if it reached us, but worth knowing.
      this.counters.joinSynToCFlaggedAddr++;
    }
    const announced = conn.config.announce.findIndex((a) => addressEqual(a.address, local));
    const sf = new Subflow(conn, conn.newSubflowId(), 'join', false, {
      localAddressId: announced >= 0 ? announced + 1 : 0,
      remoteAddressId: j.addressId,
      remoteNonce: j.senderNonce,
      backup: j.backup,
    });
    conn.add(sf);
    return sf;
  }

  /** Engine settings the connection's subflows use. */
  tcpConfigOf(conn: MptcpConnection): Partial<TcpConfig> | undefined {
    return this.joinTcp.get(conn);
  }

  /** The path manager opens a join from `local` to `remote`:`port`. */
  openJoin(conn: MptcpConnection, local: IpAddress, remote: IpAddress, port: number): Subflow | undefined {
    const initialLocal = conn.initial?.handle?.local;
    const index = this.host.addresses.findIndex((a) => addressEqual(a, local));
    const localAddressId = initialLocal !== undefined && addressEqual(initialLocal, local) ? 0 : index + 1;
    const sf = new Subflow(conn, conn.newSubflowId(), 'join', true, { localAddressId });
    const handle = this.host.openSubflow(local, remote, port, sf, this.joinTcp.get(conn));
    if (handle === undefined) return undefined;
    conn.add(sf);
    return sf;
  }
}

function findMptcp(h: TcpHeader, subtype: MptcpOption['subtype']): MptcpOption | undefined {
  for (const o of h.options) if (o.type === 'mptcp' && o.option.subtype === subtype) return o.option;
  return undefined;
}
