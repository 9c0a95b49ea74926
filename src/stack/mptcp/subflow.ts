/**
 * One MPTCP subflow (RFC 8684 §3.1-3.3): the TCP engine's hooks (which MPTCP options each
 * segment carries, what received options mean), its send queue (DSS mappings into the
 * connection's send buffer, never copied) and its event owner (reading its in-order bytes into
 * the connection's data-level reassembly). Linux's net/mptcp/subflow.c plus the per-subflow half
 * of options.c. The connection-level logic is connection.ts's; this file never decides policy.
 */
import type { CongestionControl } from '../tcp/congestion.js';
import type { TcpConnection } from '../tcp/connection.js';
import {
  DEFAULT_TCP_CONFIG,
  type HookVerdict,
  type ReceivedKind,
  type SendQueue,
  type SubflowHooks,
  type TcpConfig,
  TcpEvent,
} from '../tcp/types.js';
import { dssChecksum } from '../wire/dss-checksum.js';
import { MP_TCPRST_REASON, type MptcpOption } from '../wire/mptcp-options.js';
import { mptcpOptionSpace } from '../wire/option-space.js';
import { dsnAdd, seqAdd, seqDiff } from '../wire/seqnum.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpFields, type TcpHeader } from '../wire/tcp.js';
import type { MptcpConnection } from './connection.js';
import { connectionCongestion } from './coupled-cc.js';
import { joinAckHmac, joinHmac, randomNonce, timingSafeEqual } from './crypto.js';
import { RxMappings } from './rx-mappings.js';
import { TxMappings } from './tx-mappings.js';
import type { SubflowHandle, SubflowOwner } from './types.js';

/**
 * The DSS mapping on a mapping's first segment: 32-bit DSN, SSN, length, checksum: 4+4+4+2+2 =
 * 16. The DSN goes in its 32-bit form (RFC 8684 §3.3: either is valid; the receiver expands it
 * near its DATA_ACK, which no window can outrun), where Linux sends 64 bits. The mapping's later
 * segments go without it (RFC 8684 §3.3.1: a segment needs no mapping when one the receiver
 * already has covers it), so they carry 16 payload bytes more.
 */
const DSS_MAPPING_SPACE = 16;
/**
 * A DATA_ACK beside the mapping: 4 more. It rides on data segments only while it tells the peer
 * something: until a segment carrying its current value (and window edge) is acknowledged.
 */
const DATA_ACK_SPACE = 4;
/** A DSS with only the DATA_ACK, on a data segment inside a mapping: 4 + 4. */
const DSS_ACK_ONLY_SPACE = 8;
/** The client's first data segment carries MP_CAPABLE with both keys and the data length: 24. */
const MPC_DATA_OPTION_SPACE = 24;
/** RFC 8684 §3.2: the initiator retransmits the third ACK until the fourth arrives (ms, doubling). */
const JOIN_ACK_RETRANSMIT_MS = 500;
const JOIN_ACK_RETRIES = 5;
/** SYNs with MP_CAPABLE before the rest go without it (Linux: the original and 2 retries). */
const SYN_TRIES_WITH_MPTCP = 3;
const NEVER = Number.POSITIVE_INFINITY;
/** The 32-bit form of a DSN on the wire; checksums still cover all 64 bits (RFC 8684 §3.3.1). */
const DSN32_MASK = 0xffff_ffffn;
const NO_DATA = new Uint8Array(0);

export type SubflowRole = 'initial' | 'join';

/** Where an MP_JOIN subflow stands (RFC 8684 §3.2). */
interface JoinState {
  localNonce: number;
  remoteNonce: number;
  /** Our address ID for this subflow's local address, and the peer's for its remote one. */
  localAddressId: number;
  remoteAddressId: number;
  /** Initiator: the 160-bit HMAC of our third ACK, sent until the fourth ACK arrives. */
  ackHmac: Uint8Array | undefined;
  ackRetries: number;
  ackAt: number;
}

export class Subflow implements SubflowHooks, SendQueue, SubflowOwner {
  handle: SubflowHandle | undefined;
  /** MP_PRIO backup (ours) / the peer's. */
  backup = false;
  peerBackup = false;
  /**
   * Fully established (RFC 8684 §3.1/§3.2): an initial subflow once the peer spoke MPTCP after
   * the handshake (a DSS, or the third ACK for a server); a join once the fourth ACK arrived.
   * Join subflows carry no data before it.
   */
  fullyEstablished = false;
  /** The TCP connection reached CLOSED. */
  closed = false;
  /**
   * Its retransmission timer fired while another subflow could carry data: its data went there
   * and it gets no new data until it carries an ACK again (Linux's stale subflow).
   */
  stale = false;
  /** Retransmission timeouts since its last ACK (MptcpConfig.staleAfterRtos). */
  rtosInARow = 0;
  /** MP_TCPRST reason on our next RST (RFC 8684 §3.6). */
  rstReason: number | undefined;
  readonly join: JoinState | undefined;

  private tx: TxMappings | undefined;
  /** First subflow byte still held (the engine's send-queue offset 0). */
  private txBase = 0;
  private readonly rx = new RxMappings();
  /** Relative SSN of the next in-order subflow byte to place. */
  private rxSsn = 1;
  /** An ACK must go out on the next dispatch (the fourth ACK of a join, an echo, ...). */
  private ackWanted = false;
  /** Signalling options to send on a pure ACK of their own (ADD_ADDR and its echo, ...). */
  private readonly signals: MptcpOption[] = [];
  /** Pieces of a mapping whose checksum is not yet complete (delivered once it is good). */
  private readonly unchecked: { dsn: bigint; data: Uint8Array; dataFin: boolean }[] = [];
  /** MP_FAIL's DSN after a checksum failure: on our RST, or on an ACK when we fall back. */
  private failDsn: bigint | undefined;
  /** The peer sent MP_FAIL: our next data segment carries the infinite mapping. */
  private sendInfiniteMap = false;
  /** SYNs sent with MP_CAPABLE (the initial subflow of an active open). */
  private synsSent = 0;
  /** DSS checksums of the mappings we sent, by mapping start SSN (absolute). */
  private readonly txChecksums = new Map<number, number>();
  /** Takes this subflow's controller out of its connection's coupled group (coupled-cc.ts). */
  private releaseCongestion: (() => void) | undefined;
  /** The DATA_ACK (data offset), right edge and segment end of the last data segment carrying one. */
  private dataAckCarried: { ack: number; edge: number; seqEnd: number } | undefined;
  /** Its TCP connection's congestion controller (the connection cuts it for head-of-line blocking). */
  congestion: CongestionControl | undefined;
  /** When the connection last cut its window for head-of-line blocking (ms). */
  holPenalizedAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly mp: MptcpConnection,
    readonly id: number,
    readonly role: SubflowRole,
    /** We opened it (SYN sender). */
    readonly active: boolean,
    join?: { localAddressId: number; remoteAddressId?: number; remoteNonce?: number; backup?: boolean },
  ) {
    if (join !== undefined) {
      this.join = {
        localNonce: randomNonce(),
        remoteNonce: join.remoteNonce ?? 0,
        localAddressId: join.localAddressId,
        remoteAddressId: join.remoteAddressId ?? 0,
        ackHmac: undefined,
        ackRetries: 0,
        ackAt: NEVER,
      };
      this.peerBackup = join.backup ?? false;
    }
  }

  get conn(): TcpConnection {
    return this.handle!.conn;
  }

  /**
   * Nothing is reserved on every data segment: only a mapping's first segment carries the
   * mapping, and `segmentLimit` makes that one shorter by what it takes.
   */
  readonly dataOptionSpace = 0;

  /**
   * What every data segment sized now needs: MP_CAPABLE's room while the client repeats it (its
   * first segment carries it with the data length; every segment then carries its mapping), the
   * infinite mapping's before it goes, else the DATA_ACK's while due.
   */
  extraDataOptionSpace(): number {
    if (this.mp.fallback) return this.sendInfiniteMap ? DSS_MAPPING_SPACE + DATA_ACK_SPACE : 0;
    if (this.sendsMpcData()) return MPC_DATA_OPTION_SPACE;
    return this.dataAckDue() ? DSS_ACK_ONLY_SPACE : 0;
  }

  /**
   * What a mapping's first segment needs beyond the others: the mapping, and the DATA_ACK's
   * place inside it where the others carry a DSS of their own for it. 0 while every segment is
   * sized for its mapping anyway (MP_CAPABLE repeated) or none carries one (fallback).
   */
  private mappingHeadSpace(): number {
    if (this.mp.fallback || this.sendsMpcData()) return 0;
    return this.dataAckDue() ? DSS_MAPPING_SPACE + DATA_ACK_SPACE - DSS_ACK_ONLY_SPACE : DSS_MAPPING_SPACE;
  }

  /** Payload bytes of a mapping's first segment sized now (the others carry `conn.mss`). */
  headPayload(): number {
    return Math.max(1, this.conn.mss - this.mappingHeadSpace());
  }

  /**
   * Whether data segments carry the DATA_ACK: its value or the window's right edge moved since
   * the last one that did, or that one is not acknowledged yet (else it may have been lost).
   * Pure ACKs always carry it.
   */
  private dataAckDue(): boolean {
    const c = this.dataAckCarried;
    const ack = this.mp.receivedUpTo;
    if (c === undefined || c.ack !== ack || c.edge !== ack + this.mp.receiveSpace()) return true;
    return seqDiff(this.txBase, c.seqEnd) < 0;
  }

  /** RFC 8684 §3.3.4: a subflow advertises the connection-level receive window. */
  receiveSpace(): number {
    return this.mp.receiveSpace();
  }

  /**
   * The congestion controller factory of this subflow's TCP connection (MptcpConfig.congestion:
   * coupled over the connection's subflows, or uncoupled), given the engine settings it opens with.
   */
  congestionFactory(tcp: Partial<TcpConfig>): (mss: number) => CongestionControl {
    const { factory, release } = connectionCongestion(this.mp).forSubflow(
      { initialCwndSegments: tcp.initialCwndSegments ?? DEFAULT_TCP_CONFIG.initialCwndSegments },
      () => !this.closed && !this.stale && this.canCarryData(),
    );
    this.releaseCongestion = release;
    return (mss) => {
      this.congestion = factory(mss);
      return this.congestion;
    };
  }

  /** The iface placed the subflow's TCP connection. */
  attach(handle: SubflowHandle): void {
    this.handle = handle;
    this.txBase = seqAdd(handle.conn.initialSendSeq, 1);
    this.tx = new TxMappings(this.txBase);
  }

  // ------------------------------------------------------------ what the scheduler sees

  get srtt(): number | undefined {
    return this.handle?.conn.srtt;
  }

  /** A backup subflow (RFC 8684 §3.3.8), by our own choice or at the peer's request. */
  get isBackup(): boolean {
    return this.backup || this.peerBackup;
  }

  /** Room for new data: 0 unless the subflow may carry data now. */
  get sendRoom(): number {
    if (this.closed || this.stale || this.handle === undefined || !this.canCarryData()) return 0;
    // An RTO since its last ACK, not yet stale: no data (new or reinjected, which would only
    // wait for its next RTO there) while a subflow of its kind is in good standing.
    if (this.rtosInARow > 0 && this.peerInGoodStanding()) return 0;
    return this.handle.conn.sendRoom;
  }

  /** Another subflow, regular or backup as this one, usable and without an RTO since its ACK. */
  peerInGoodStanding(): boolean {
    for (const s of this.mp.subflows) {
      if (s !== this && !s.stale && s.rtosInARow === 0 && s.isBackup === this.isBackup && s.canCarryData())
        return true;
    }
    return false;
  }

  canCarryData(): boolean {
    if (this.closed || this.rstReason !== undefined) return false;
    return this.role === 'initial' || this.fullyEstablished;
  }

  // ------------------------------------------------------------ send queue (engine side)

  get length(): number {
    return this.tx === undefined ? 0 : seqDiff(this.tx.end, this.txBase);
  }

  get free(): number {
    return 0;
  }

  /** The application never writes to a subflow; the connection assigns data with `assign`. */
  write(): number {
    return 0;
  }

  ack(n: number): void {
    if (this.tx === undefined || n <= 0) return;
    this.txBase = seqAdd(this.txBase, n);
    this.tx.ack(this.txBase);
    for (const ssn of this.txChecksums.keys()) {
      const m = this.tx.at(ssn);
      if (m === undefined || m.ssn !== ssn) this.txChecksums.delete(ssn);
    }
    this.mp.onSubflowAcked(this, n);
  }

  view(offset: number, n: number): Uint8Array {
    const ssn = seqAdd(this.txBase, offset);
    const m = this.tx?.at(ssn);
    if (m === undefined) return NO_DATA;
    return this.mp.sendView(m.dsn + seqDiff(ssn, m.ssn), n);
  }

  /** To its mapping's end; a segment that starts a mapping also leaves room for the mapping. */
  segmentLimit(offset: number): number {
    const tx = this.tx;
    if (tx === undefined) return 0;
    const ssn = seqAdd(this.txBase, offset);
    const m = tx.at(ssn);
    if (m === undefined) return 0;
    const left = m.length - seqDiff(ssn, m.ssn);
    return m.ssn === ssn ? Math.min(left, this.headPayload()) : left;
  }

  /** RFC 8684 §3.1: the client repeats MP_CAPABLE until the server speaks MPTCP. */
  private sendsMpcData(): boolean {
    return this.join === undefined && this.active && !this.fullyEstablished && !this.mp.fallback;
  }

  /** The connection gives this subflow data-level bytes [dsn, dsn + length). */
  assign(dsn: number, length: number): void {
    this.tx!.push(dsn, length);
    this.handle!.kick();
  }

  /** Data-level ranges this subflow still holds unacknowledged (reinjected when it dies). */
  unacked(): { dsn: number; length: number }[] {
    return this.tx?.unacked(this.txBase) ?? [];
  }

  /** The lowest data-level byte this subflow may still have to (re)send. */
  lowestDsn(): number | undefined {
    return this.tx?.lowestDsn();
  }

  // ------------------------------------------------------------ outgoing options

  onSend(h: TcpFields, payloadLength: number, spaceLeft: number): void {
    const mp = this.mp;
    const flags = h.flags;
    const push = (option: MptcpOption) => h.options.push({ type: 'mptcp', option });
    if ((flags & TCP_RST) !== 0) {
      if (mp.fastclosing) {
        push({ subtype: 'mp_fastclose', receiverKey: mp.remoteKey });
        mp.counters.MPFastcloseTx++;
      }
      if (this.failDsn !== undefined) {
        push({ subtype: 'mp_fail', dsn: this.failDsn });
        mp.counters.MPFailTx++;
      }
      if (this.rstReason !== undefined) {
        push({
          subtype: 'mp_tcprst',
          flagU: false,
          flagV: false,
          flagW: false,
          transient: false,
          reason: this.rstReason,
        });
        mp.counters.MPRstTx++;
      }
      return;
    }
    if ((flags & TCP_SYN) !== 0) {
      this.synOptions((flags & TCP_ACK) !== 0, push);
      return;
    }
    if (this.failDsn !== undefined && mp.fallback && payloadLength === 0) {
      // Our checksum failure on the only subflow: MP_FAIL on an ACK, once (RFC 8684 §3.7).
      push({ subtype: 'mp_fail', dsn: this.failDsn });
      mp.counters.MPFailTx++;
      this.failDsn = undefined;
      return;
    }
    if (this.sendInfiniteMap && payloadLength > 0) {
      push(this.infiniteMapping(h.seqNumber));
      return;
    }
    if (mp.fallback) return;
    this.shareWindow(h);
    const j = this.join;
    if (j !== undefined) {
      // The initiator's third ACK rides on every segment until the fourth ACK arrives.
      if (j.ackHmac !== undefined) {
        push({ subtype: 'mp_join', form: 'ack', senderHmac: j.ackHmac });
        return;
      }
    } else if (this.active && !this.fullyEstablished) {
      // RFC 8684 §3.1: the client repeats MP_CAPABLE (both keys) until the server speaks MPTCP;
      // its first data segment carries the first mapping in it (DSN IDSN+1, SSN 1).
      if (payloadLength === 0 || seqDiff(h.seqNumber, this.conn.initialSendSeq) === 1) {
        const m = payloadLength > 0 ? this.tx?.at(h.seqNumber) : undefined;
        push({
          subtype: 'mp_capable',
          version: 1,
          checksumRequired: mp.checksum,
          extensibility: false,
          noJoinToSource: false,
          extensionFlags: 0,
          hmacSha256: true,
          senderKey: mp.localKey,
          receiverKey: mp.remoteKey,
          ...(m === undefined
            ? {}
            : mp.checksum
              ? { dataLevelLength: m.length, checksum: this.mappingChecksum(m.ssn, m.dsn, m.length) }
              : { dataLevelLength: m.length }),
        });
        return;
      }
    }
    if (payloadLength > 0) {
      const dss = this.dataDss(h.seqNumber, payloadLength);
      if (dss !== undefined) push(dss);
      // A data segment took the ACK a pending signal waits for: ask for another dispatch,
      // whose pure ACK carries it once the window is full (else a bulk sender never sends it).
      if (this.signals.length > 0) {
        this.ackWanted = true;
        this.handle?.kick();
      }
      // The DATA_FIN goes on pure ACKs: right behind this subflow's last queued byte, one more
      // (else, when every subflow still had data queued as it became due, it waited for its
      // retransmission timer, 1 s).
      const end = seqAdd(h.seqNumber, payloadLength);
      if (mp.dataFinDue && this.tx !== undefined && seqDiff(this.tx.end, end) <= 0) {
        this.ackWanted = true;
        this.handle?.kick();
      }
      return;
    }
    // A pure ACK: a pending signal goes alone (as Linux sends ADD_ADDR), else DATA_ACK (+ DATA_FIN).
    const signal = this.signals.shift();
    if (signal !== undefined && spaceLeft >= mptcpOptionSpace(signal)) {
      push(signal);
      if (this.signals.length > 0) this.ackWanted = true;
      return;
    }
    if (signal !== undefined) mp.counters.AddAddrTxDrop++;
    push(mp.ackDss());
  }

  /**
   * RFC 8684 §3.3.4: the window is the connection's, relative to the DATA_ACK every segment
   * carries. TCP never shrinks a subflow's own right edge, but data arriving on other subflows
   * moves the DATA_ACK on, so the window TCP chose may reach past the connection's free space;
   * then the field says the connection's (as Linux's mptcp_set_rwin, counted RcvWndShared).
   */
  private shareWindow(h: TcpFields): void {
    const field = Math.floor(this.mp.receiveSpace() / 2 ** this.conn.windowShift);
    if (field < h.window) {
      h.window = field;
      this.mp.counters.RcvWndShared++;
    }
  }

  private synOptions(synAck: boolean, push: (o: MptcpOption) => void): void {
    const mp = this.mp;
    const j = this.join;
    if (j === undefined) {
      if (mp.fallback) return;
      if (!synAck && ++this.synsSent > SYN_TRIES_WITH_MPTCP) {
        // A middlebox may drop SYNs with unknown options: retry as plain TCP (RFC 8684 §3.1).
        mp.counters.MPCapableSYNTXDrop++;
        mp.fallBack();
        return;
      }
      push({
        subtype: 'mp_capable',
        version: 1,
        checksumRequired: mp.checksum,
        extensibility: false,
        noJoinToSource: synAck && mp.config.cFlag,
        extensionFlags: 0,
        hmacSha256: true,
        ...(synAck ? { senderKey: mp.localKey } : {}),
      });
      if (!synAck) mp.counters.MPCapableSYNTX++;
      return;
    }
    if (!synAck) {
      push({
        subtype: 'mp_join',
        form: 'syn',
        backup: this.backup,
        addressId: j.localAddressId,
        receiverToken: mp.remoteToken,
        senderNonce: j.localNonce,
      });
      mp.counters.MPJoinSynTx++;
      return;
    }
    const hmac = joinHmac(mp.localKey, mp.remoteKey, j.localNonce, j.remoteNonce);
    push({
      subtype: 'mp_join',
      form: 'syn_ack',
      backup: this.backup,
      addressId: j.localAddressId,
      senderTruncatedHmac: hmac.readBigUInt64BE(0),
      senderNonce: j.localNonce,
    });
  }

  /** The infinite mapping (data-level length 0) of the first data segment after MP_FAIL. */
  private infiniteMapping(seq: number): MptcpOption {
    const mp = this.mp;
    this.sendInfiniteMap = false;
    mp.counters.InfiniteMapTx++;
    const dss = mp.ackDss(false);
    const m = this.tx?.at(seq);
    const dsn = m === undefined ? 0 : m.dsn + seqDiff(seq, m.ssn);
    dss.mapping = {
      dsn: mp.wireDsn(dsn) & DSN32_MASK,
      ssn: seqDiff(seq, this.conn.initialSendSeq) >>> 0,
      dataLevelLength: 0,
      ...(mp.checksum ? { checksum: 0 } : {}),
    };
    return dss;
  }

  /** The data offset of the oldest byte this subflow still holds (where its TCP ACK points). */
  ackedDsn(): number | undefined {
    const m = this.tx?.at(this.txBase);
    return m === undefined ? undefined : m.dsn + seqDiff(this.txBase, m.ssn);
  }

  /**
   * DSS for a data segment [seq, seq + length): the mapping on a mapping's first segment (on
   * every segment while MP_CAPABLE repeats), and the DATA_ACK while due. Undefined: none needed.
   */
  private dataDss(seq: number, length: number): MptcpOption | undefined {
    const mp = this.mp;
    let m = this.tx?.at(seq);
    if (m !== undefined && m.ssn !== seq && this.mappingHeadSpace() > 0) m = undefined;
    const dss = mp.ackDss(false);
    if (this.dataAckDue()) {
      const ack = mp.receivedUpTo;
      this.dataAckCarried = { ack, edge: ack + mp.receiveSpace(), seqEnd: seqAdd(seq, length) };
    } else if (m !== undefined) {
      delete dss.dataAck;
    } else {
      return undefined;
    }
    if (m === undefined) return dss;
    const rel = seqDiff(m.ssn, this.conn.initialSendSeq) >>> 0;
    const dsn = mp.wireDsn(m.dsn) & DSN32_MASK;
    dss.mapping = mp.checksum
      ? { dsn, ssn: rel, dataLevelLength: m.length, checksum: this.mappingChecksum(m.ssn, m.dsn, m.length) }
      : { dsn, ssn: rel, dataLevelLength: m.length };
    return dss;
  }

  /** The DSS checksum of one of our mappings (RFC 8684 §3.3.1), computed once per mapping. */
  private mappingChecksum(ssn: number, dsn: number, length: number): number {
    let sum = this.txChecksums.get(ssn);
    if (sum === undefined) {
      const rel = seqDiff(ssn, this.conn.initialSendSeq) >>> 0;
      const data = this.mp.sendView(dsn, length);
      sum = dssChecksum(this.mp.wireDsn(dsn), rel, length, data, 0, data.length);
      this.txChecksums.set(ssn, sum);
    }
    return sum;
  }

  /** Queue a signalling option (ADD_ADDR, its echo, MP_PRIO, REMOVE_ADDR) for a pure ACK. */
  signal(option: MptcpOption): void {
    this.signals.push(option);
    this.ackWanted = true;
    this.handle?.kick();
  }

  /** Ask for an ACK on the next dispatch (a DATA_ACK or DATA_FIN to carry). */
  wantAck(): void {
    this.ackWanted = true;
    this.handle?.kick();
  }

  // ------------------------------------------------------------ incoming options

  onReceive(h: TcpHeader, payloadLength: number, kind: ReceivedKind): HookVerdict {
    const mp = this.mp;
    const c = mp.counters;
    let mpc: Extract<MptcpOption, { subtype: 'mp_capable' }> | undefined;
    let join: Extract<MptcpOption, { subtype: 'mp_join' }> | undefined;
    let dss: Extract<MptcpOption, { subtype: 'dss' }> | undefined;
    for (const o of h.options) {
      if (o.type === 'mptcp-invalid') {
        c.mptcpOptionInvalid++;
        continue;
      }
      if (o.type !== 'mptcp') continue;
      const opt = o.option;
      switch (opt.subtype) {
        case 'mp_capable':
          mpc = opt;
          break;
        case 'mp_join':
          join = opt;
          break;
        case 'dss':
          dss = opt;
          break;
        case 'add_addr':
          if (kind === 'segment' || kind === 'third-ack') {
            // An announcement shows the server has our key: the client's initial subflow is
            // fully established (as Linux), so its pure ACKs (the echo) stop repeating MP_CAPABLE.
            if (!opt.echo && kind === 'segment' && this.active && this.role === 'initial' && !mp.fallback) {
              if (!this.fullyEstablished) mp.onFullyEstablished();
              this.fullyEstablished = true;
            }
            mp.onAddAddr(this, opt);
          }
          break;
        case 'remove_addr':
          if (kind === 'segment' || kind === 'third-ack') mp.onRemoveAddr(opt.addressIds);
          break;
        case 'mp_prio':
          c.MPPrioRx++;
          this.peerBackup = opt.backup;
          break;
        case 'mp_fastclose':
          c.MPFastcloseRx++;
          // RFC 8684 §3.5: with our key, the whole connection goes at once (RST on every subflow).
          if (opt.receiverKey === mp.localKey) {
            mp.onFastclose(); // resets this subflow too
            return kind === 'rst' ? 'accept' : 'drop';
          }
          break;
        case 'mp_tcprst':
          c.MPRstRx++;
          break;
        case 'mp_fail':
          c.MPFailRx++;
          // On an ACK of the only subflow: the peer's checksum failed; answer with an infinite
          // mapping and go on as plain TCP (RFC 8684 §3.7). On a RST the subflow just goes.
          if (kind === 'segment' && this.role === 'initial' && mp.allowsInfiniteFallback()) {
            mp.fallBack();
            this.sendInfiniteMap = true;
            this.wantAck();
          }
          break;
        default:
          break;
      }
    }
    switch (kind) {
      case 'syn':
        return 'accept'; // the endpoint read the SYN's MP_CAPABLE / MP_JOIN before making us
      case 'rst':
        return 'accept';
      case 'syn-ack':
        return this.onSynAck(mpc, join);
      case 'third-ack':
        return this.onThirdAck(mpc, join, dss, h, payloadLength);
      default:
        if (mpc !== undefined && !this.active && this.role === 'initial') this.mpcData(mpc, payloadLength);
        return this.onSegment(dss, h);
    }
  }

  private onSynAck(
    mpc: Extract<MptcpOption, { subtype: 'mp_capable' }> | undefined,
    join: Extract<MptcpOption, { subtype: 'mp_join' }> | undefined,
  ): HookVerdict {
    const mp = this.mp;
    const j = this.join;
    if (j === undefined) {
      if (mpc === undefined || mpc.senderKey === undefined || !mpc.hmacSha256 || mpc.extensibility) {
        mp.counters.MPCapableFallbackSYNACK++;
        mp.fallBack();
        return 'accept';
      }
      mp.counters.MPCapableSYNACKRX++;
      mp.onPeerKey(mpc.senderKey, mpc.checksumRequired, mpc.noJoinToSource);
      return 'accept';
    }
    if (join === undefined || join.form !== 'syn_ack') {
      this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
      return 'reset';
    }
    const expected = joinHmac(mp.remoteKey, mp.localKey, join.senderNonce, j.localNonce).readBigUInt64BE(0);
    if (expected !== join.senderTruncatedHmac) {
      mp.counters.MPJoinSynAckHMacFailure++;
      this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
      return 'reset';
    }
    mp.counters.MPJoinSynAckRx++;
    j.remoteNonce = join.senderNonce;
    j.remoteAddressId = join.addressId;
    this.peerBackup = join.backup;
    j.ackHmac = joinAckHmac(mp.localKey, mp.remoteKey, j.localNonce, j.remoteNonce);
    j.ackAt = mp.now() + JOIN_ACK_RETRANSMIT_MS;
    return 'accept';
  }

  private onThirdAck(
    mpc: Extract<MptcpOption, { subtype: 'mp_capable' }> | undefined,
    join: Extract<MptcpOption, { subtype: 'mp_join' }> | undefined,
    dss: Extract<MptcpOption, { subtype: 'dss' }> | undefined,
    h: TcpHeader,
    payloadLength: number,
  ): HookVerdict {
    const mp = this.mp;
    const j = this.join;
    if (j !== undefined) {
      if (join === undefined || join.form !== 'ack') {
        mp.counters.MPJoinAckHMacFailure++;
        this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
        return 'reset';
      }
      const expected = joinAckHmac(mp.remoteKey, mp.localKey, j.remoteNonce, j.localNonce);
      if (!timingSafeEqual(Buffer.from(expected), Buffer.from(join.senderHmac))) {
        mp.counters.MPJoinAckHMacFailure++;
        this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
        return 'reset';
      }
      mp.counters.MPJoinAckRx++;
      this.fullyEstablished = true;
      this.ackWanted = true; // the fourth ACK (RFC 8684 §3.2)
      return 'accept';
    }
    if (mp.fallback) return 'accept';
    if (mpc === undefined || mpc.senderKey === undefined || mpc.receiverKey !== mp.localKey) {
      // No MPTCP in the third ACK: a middlebox stripped it, fall back (RFC 8684 §3.7).
      mp.counters.MPCapableFallbackACK++;
      mp.fallBack();
      return 'accept';
    }
    mp.counters.MPCapableACKRX++;
    mp.onPeerKey(mpc.senderKey, mpc.checksumRequired || mp.checksum, false);
    this.fullyEstablished = true;
    this.mpcData(mpc, payloadLength);
    if (dss !== undefined) return this.onSegment(dss, h);
    return 'accept';
  }

  /** MP_CAPABLE with data: the client's first data, DSN = IDSN + 1 at SSN 1 (RFC 8684 §3.1). */
  private mpcData(mpc: Extract<MptcpOption, { subtype: 'mp_capable' }>, payloadLength: number): void {
    if (mpc.dataLevelLength === undefined || payloadLength === 0) return;
    this.addMapping({
      ssn: 1,
      dsn: this.mp.remoteIdsnPlus1,
      dataLevelLength: mpc.dataLevelLength,
      dataFin: false,
      ...(mpc.checksum === undefined ? {} : { checksum: mpc.checksum }),
    });
  }

  private onSegment(dss: Extract<MptcpOption, { subtype: 'dss' }> | undefined, h: TcpHeader): HookVerdict {
    const mp = this.mp;
    if (mp.fallback) return 'accept';
    const j = this.join;
    if (j !== undefined && j.ackHmac !== undefined && this.active) {
      // Any acceptable ACK after our third ACK is the fourth ACK.
      j.ackHmac = undefined;
      j.ackAt = NEVER;
      this.fullyEstablished = true;
      mp.onJoinEstablished(this);
    }
    // Data without DSS is judged in order (`pull`): a mapping's later segments carry none, and
    // one may arrive before the mapping's first segment.
    if (dss === undefined) return 'accept';
    if (!this.fullyEstablished) {
      this.fullyEstablished = true;
      if (this.role === 'initial') mp.onFullyEstablished();
    }
    // The window this segment carries, relative to its own DATA_ACK (RFC 8684 §3.3.4).
    if (dss.dataAck !== undefined)
      mp.onDataAck(dss.dataAck, dss.dataAck64, h.window * 2 ** (this.handle?.conn.peerWindowShift ?? 0));
    const m = dss.mapping;
    if (m !== undefined) {
      const dsn = mp.expandRemoteDsn(m.dsn, dss.dsn64);
      if (m.dataLevelLength === 0) {
        // An infinite mapping (RFC 8684 §3.7): plain TCP from here, its bytes from this DSN on.
        mp.counters.InfiniteMapRx++;
        if (this.role === 'initial' && mp.subflows.length === 1) mp.fallBack(dsn);
        return 'accept';
      }
      if (dss.dataFin && m.ssn === 0 && m.dataLevelLength === 1) {
        mp.onDataFin(dsn, this); // a DATA_FIN on its own (RFC 8684 §3.3.3)
      } else {
        const r = this.addMapping({
          ssn: m.ssn,
          dsn,
          dataLevelLength: m.dataLevelLength,
          dataFin: dss.dataFin,
          ...(m.checksum === undefined ? {} : { checksum: m.checksum }),
        });
        if (r === 'fin-only') mp.onDataFin(dsnAdd(dsn, m.dataLevelLength - 1), this);
        if (r === 'conflict') {
          mp.counters.DSSNotMatching++;
          this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
          return 'reset';
        }
      }
    }
    return 'accept';
  }

  private addMapping(m: Parameters<RxMappings['add']>[0]): ReturnType<RxMappings['add']> {
    const r = this.rx.add(m);
    if (r === 'full') this.mp.counters.mappingTableFull++;
    else if (r === 'invalid') this.mp.counters.mappingInvalid++;
    else if (r === 'added') this.mp.everMapped = true;
    return r;
  }

  // ------------------------------------------------------------ events from the iface

  onEvents(events: number): void {
    const mp = this.mp;
    if ((events & TcpEvent.CONNECTED) !== 0) mp.onSubflowConnected(this);
    if ((events & (TcpEvent.READABLE | TcpEvent.PEER_FIN)) !== 0) this.pull();
    if ((events & TcpEvent.PEER_FIN) !== 0) mp.onSubflowFin(this);
    if ((events & TcpEvent.RTO) !== 0) mp.onSubflowRto(this);
    if ((events & TcpEvent.ACKED) !== 0) {
      this.rtosInARow = 0;
      if (this.stale) {
        this.stale = false;
        mp.counters.SubflowRecover++;
      }
      mp.push();
    }
  }

  beforeDispatch(now: number): void {
    const j = this.join;
    if (j !== undefined && now >= j.ackAt) {
      if (j.ackRetries >= JOIN_ACK_RETRIES) {
        j.ackAt = NEVER;
        this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
        this.conn.abort();
        return;
      }
      j.ackRetries++;
      j.ackAt = now + JOIN_ACK_RETRANSMIT_MS * 2 ** j.ackRetries;
      this.ackWanted = true;
    }
    this.mp.beforeDispatch(this, now);
    if (this.ackWanted) {
      this.ackWanted = false;
      this.conn.requestAck();
    }
  }

  pollAt(): number {
    return Math.min(this.join?.ackAt ?? NEVER, this.mp.pollAt());
  }

  onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.releaseCongestion?.();
    this.mp.onSubflowClosed(this);
  }

  /**
   * A mapping's DSS checksum failed (RFC 8684 §3.7): its bytes are not delivered and this
   * subflow is reset with MP_FAIL (the DSN of the bad mapping) and MP_TCPRST; the peer resends
   * them on another subflow. With no other subflow the connection cannot go on (the infinite
   * mapping a lone subflow would fall back to is not implemented).
   */
  private checksumFailed(dsn: bigint): void {
    this.mp.counters.DataCsumErr++;
    this.failDsn = dsn;
    if (this.role === 'initial' && this.mp.allowsInfiniteFallback()) {
      // The only subflow there ever was: MP_FAIL on an ACK and fall back (RFC 8684 §3.7). What a
      // middlebox made of the bytes is what plain TCP would have delivered too, so they are kept.
      this.mp.counters.DSSCorruptionFallback++;
      this.mp.fallBack(dsn);
      for (const u of this.unchecked.splice(0)) this.mp.receiveInfinite(u.data);
      this.wantAck();
      return;
    }
    this.mp.counters.DSSCorruptionReset++;
    this.unchecked.length = 0;
    this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
    this.conn.abort();
    this.handle?.kick();
  }

  /** Reads the subflow's in-order bytes into the connection's data-level reassembly. */
  private pull(): void {
    const conn = this.conn;
    const mp = this.mp;
    for (let guard = 0; guard < 100_000; guard++) {
      const chunk = conn.read(Number.MAX_SAFE_INTEGER, true);
      if (chunk === undefined) return;
      if (mp.fallback) {
        mp.receiveInfinite(chunk);
        continue;
      }
      const pieces = this.rx.resolve(this.rxSsn, chunk.length);
      let at = 0;
      for (const p of pieces) {
        const data = chunk.subarray(at, at + p.length);
        if (mp.checksum) {
          // RFC 8684 §3.3.1: nothing of a mapping is delivered before its checksum is checked.
          const verdict = p.mapping.checksum === undefined ? 'bad' : this.rx.accumulate(p.mapping, data);
          if (verdict === 'bad') {
            this.checksumFailed(p.mapping.dsn);
            if (!mp.fallback) return;
            mp.receiveInfinite(chunk.subarray(at)); // the rest of this chunk, as plain TCP
            at = chunk.length;
            break;
          }
          if (verdict === 'incomplete') {
            this.unchecked.push({ dsn: p.dsn, data, dataFin: p.dataFin });
            at += p.length;
            continue;
          }
          for (const u of this.unchecked.splice(0)) mp.receiveMapped(u.dsn, u.data, u.dataFin, this);
        }
        mp.receiveMapped(p.dsn, data, p.dataFin, this);
        at += p.length;
      }
      if (at < chunk.length) {
        if (!mp.everMapped && this.role === 'initial') {
          // The peer never mapped anything: it is not speaking MPTCP after all (infinite mapping).
          mp.counters.DssFallback++;
          mp.fallBack();
          mp.receiveInfinite(chunk.subarray(at));
        } else {
          // Bytes no mapping covers on an MPTCP subflow: protocol error, reset this subflow.
          mp.counters.DSSNoMatchTCP++;
          this.rstReason = MP_TCPRST_REASON.mptcpSpecific;
          conn.abort();
          return;
        }
      }
      this.rxSsn = seqAdd(this.rxSsn, chunk.length);
      this.rx.consume(this.rxSsn);
    }
  }
}
