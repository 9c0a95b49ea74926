/**
 * One MPTCP connection (RFC 8684) over its subflows: keys and tokens, the data sequence space
 * both ways (DSS mappings out, data-level reassembly in), DATA_ACK and the shared window
 * (§3.3.4), DATA_FIN (§3.3.3), reinjection of a dead subflow's data, fallback to plain TCP
 * (§3.7), and the Node-facing stream calls a TcpSocket makes (write, read, shutdown, abort).
 * Linux's net/mptcp/protocol.c in spirit. Policy lives elsewhere: which subflow carries the next
 * bytes is the scheduler's (sched.ts), which subflows exist the path manager's (pm.ts).
 *
 * Data-level positions are JS integers: offsets from IDSN + 1 in each direction (exact to 2^53
 * bytes); the 64-bit DSN appears only on the wire.
 */
import { addressEqual, formatAddress } from '../iface/address.js';
import type { TcpSocket } from '../iface/tcp-socket.js';
import { ReceiveBuffer } from '../tcp/receiver.js';
import { SendBuffer } from '../tcp/send-buffer.js';
import { releaseChunk } from '../tcp/slab-pool.js';
import type { TcpErrorCode, TcpInfo } from '../tcp/types.js';
import { dssChecksum } from '../wire/dss-checksum.js';
import type { AddAddrOption, DssOption } from '../wire/mptcp-options.js';
import { dsnAdd, dsnDiff, expandDsn32 } from '../wire/seqnum.js';
import type { MptcpCounters } from './counters.js';
import { addAddrHmac, keyMaterial } from './crypto.js';
import type { PathManager } from './pm.js';
import { candidates, createScheduler, type Scheduler, usingBackup } from './sched.js';
import type { Subflow } from './subflow.js';
import type { MptcpConfig } from './types.js';

const NEVER = Number.POSITIVE_INFINITY;
/** The most one mapping carries (the DSS data-level length is 16 bits). */
const MAX_MAPPING = 0xffff;

/**
 * How much of `avail` data-level bytes one mapping on `sf` covers: what its windows take now
 * (at least a segment), in whole segments unless it is the last of the data: its first segment,
 * which carries the mapping, then one super-segment of full ones. A segment never spans two
 * mappings, so a mapping cut at an arbitrary window edge ends in a runt packet with a full set of
 * headers: on a byte-counted bottleneck (tbf) ~1% of the link went to those.
 */
function mappingLength(sf: Subflow, avail: number): number {
  const mss = sf.conn.mss;
  const head = sf.headPayload();
  const most = sf.conn.maxSegmentPayload + (head < mss ? head : 0);
  const n = Math.min(avail, Math.max(sf.sendRoom, head), most, MAX_MAPPING);
  return n < avail && n > head ? n - ((n - head) % mss) : n;
}
/** DATA_FIN retransmission (ms, doubling) until the DATA_ACK covers it. */
const DATA_FIN_RTO_MS = 1000;
const DATA_FIN_RETRIES = 8;
/**
 * Data-level retransmission (Linux's mptcp_retransmit_timer): when the DATA_ACK has not moved for
 * this long (ms; or 4 RTTs of the slowest subflow), the oldest unacknowledged data is reinjected.
 * Subflow-level ACKs do not prove data-level delivery: a receiver may drop what it cannot place.
 */
const DATA_RTO_MIN_MS = 1000;
const DATA_RTO_MAX_MS = 60_000;

export type MptcpState = 'connecting' | 'established' | 'closed';

export interface MptcpSubflowInfo {
  id: number;
  role: 'initial' | 'join';
  local: string;
  remote: string;
  fullyEstablished: boolean;
  backup: boolean;
  info: TcpInfo;
}

export interface MptcpInfo {
  fallback: boolean;
  checksum: boolean;
  localToken: number;
  remoteToken: number;
  /** The peer set the C flag: no subflows to its initial address and port. */
  peerCFlag: boolean;
  bytesSent: number;
  bytesReceived: number;
  reinjectedBytes: number;
  subflows: MptcpSubflowInfo[];
}

/** What the connection needs of the endpoint that made it. */
export interface MptcpEndpointContext {
  readonly counters: MptcpCounters;
  now(): number;
  /** The token is no longer ours (the connection closed). */
  release(conn: MptcpConnection): void;
}

export class MptcpConnection {
  readonly subflows: Subflow[] = [];
  readonly localKey: bigint;
  readonly localToken: number;
  private readonly localIdsn: bigint;
  remoteKey = 0n;
  remoteToken = 0;
  private remoteIdsn = 0n;
  checksum: boolean;
  /** Fallen back to plain TCP over the initial subflow (RFC 8684 §3.7: an infinite mapping). */
  fallback = false;
  /** The peer has mapped some data to us (after that, unmapped bytes are an error, not fallback). */
  everMapped = false;
  peerCFlag = false;
  fastclosing = false;
  socket: TcpSocket | undefined;
  /** Called once when the connection is usable (client: SYN-ACK; server: third ACK). */
  onReady: (() => void) | undefined;
  /** MptcpConfig.scheduler's, one per connection. */
  readonly scheduler: Scheduler;
  /** Redundant scheduler: each subflow has been given (a copy of) every byte below this offset. */
  private readonly copiedTo = new WeakMap<Subflow, number>();
  /** The scheduler gives data to backup subflows (no regular one is usable): backupTakeover. */
  private onBackup = false;
  pm: PathManager | undefined;

  private _state: MptcpState = 'connecting';
  private _error: TcpErrorCode | undefined;

  // Send side: sendBuf holds data offsets [sendBase, sendBase + sendBuf.length).
  private readonly sendBuf: SendBuffer;
  private sendBase = 0;
  /**
   * Copies of DATA_ACKed bytes below sendBase that a subflow still holds for its own TCP
   * retransmission (a subflow on a dead path never gets its ACK): set aside once they pin more
   * than a quarter of the send buffer, so one such subflow does not block the connection.
   */
  private retained: { off: number; bytes: Uint8Array }[] = [];
  /** Next data offset never given to a subflow; DATA_ACKed up to sndUna; peer's window edge. */
  private sndNxt = 0;
  private sndUna = 0;
  private wndRight = 0;
  private readonly reinject: { dsn: number; length: number }[] = [];
  /** Data offset up to which the oldest data went again opportunistically (head-of-line blocking). */
  private ortNext = 0;
  private writeBlocked = false;
  private finQueued = false;
  private finAcked = false;
  private dataFinAt = NEVER;
  private dataRtoAt = NEVER;
  private dataRtoBackoff = 0;
  private dataFinRetries = 0;

  // Receive side: data offsets, the buffer keyed by their low 32 bits.
  private readonly rcv: ReceiveBuffer;
  private rcvNxt = 0;
  private peerFinOffset: number | undefined;
  private peerFin = false;
  /** Fallback: the data offset the next subflow byte carries. */
  private infiniteNext = 0;

  private bytesSent = 0;
  private bytesReceived = 0;
  private reinjectedBytes = 0;
  private nextSubflowId = 0;

  constructor(
    readonly ctx: MptcpEndpointContext,
    readonly config: Readonly<MptcpConfig>,
    readonly role: 'client' | 'server',
    key: { key: bigint; token: number; idsn: bigint },
  ) {
    this.localKey = key.key;
    this.localToken = key.token;
    this.localIdsn = key.idsn;
    this.checksum = config.checksum;
    this.sendBuf = new SendBuffer(config.sendBufferSize);
    this.rcv = new ReceiveBuffer(config.recvBufferSize);
    this.scheduler = createScheduler(config.scheduler);
  }

  get counters(): MptcpCounters {
    return this.ctx.counters;
  }

  now(): number {
    return this.ctx.now();
  }

  get state(): string {
    return this._state;
  }

  get error(): TcpErrorCode | undefined {
    return this._error;
  }

  get initial(): Subflow | undefined {
    return this.subflows.find((s) => s.role === 'initial');
  }

  newSubflowId(): number {
    return this.nextSubflowId++;
  }

  add(sf: Subflow): void {
    this.subflows.push(sf);
    // A join we open from a backup address says so in its SYN (the B flag; its SYN goes out on
    // the stack's next flush, after this).
    if (sf.active && sf.role === 'join' && this.isBackupAddress(sf)) sf.backup = true;
  }

  private isBackupAddress(sf: Subflow): boolean {
    const local = sf.handle?.local;
    return local !== undefined && (this.config.backupAddresses ?? []).some((a) => addressEqual(a, local));
  }

  // ------------------------------------------------------------ keys and the wire

  /** The peer's key arrived (SYN-ACK for a client, third ACK for a server). */
  onPeerKey(key: bigint, checksum: boolean, cFlag: boolean): void {
    this.remoteKey = key;
    const m = keyMaterial(key);
    this.remoteToken = m.token;
    this.remoteIdsn = m.idsn;
    if (checksum) this.checksum = true;
    this.peerCFlag = cFlag;
  }

  /** The 64-bit DSN of our data offset `off`. */
  wireDsn(off: number): bigint {
    return dsnAdd(this.localIdsn, 1 + off);
  }

  get remoteIdsnPlus1(): bigint {
    return dsnAdd(this.remoteIdsn, 1);
  }

  /** A received DSN as a 64-bit value (RFC 8684 §3.3.1: 4-byte DSNs are expanded near RCV.NXT). */
  expandRemoteDsn(dsn: bigint, wide: boolean): bigint {
    if (wide) return dsn;
    return expandDsn32(Number(dsn), dsnAdd(this.remoteIdsn, 1 + this.rcvNxt));
  }

  /** Every byte is given to a subflow and our DATA_FIN is not DATA_ACKed yet: pure ACKs carry it. */
  get dataFinDue(): boolean {
    return this.finQueued && !this.finAcked && this.sndNxt === this.finOffset();
  }

  /**
   * The DSS every segment carries: DATA_ACK, and on segments without data the DATA_FIN while it
   * is due (a mapping of its own: SSN 0, length 1, RFC 8684 §3.3.3).
   */
  ackDss(withFin = true): DssOption {
    const ack = dsnAdd(this.remoteIdsn, 1 + this.rcvNxt);
    const dss: DssOption = {
      subtype: 'dss',
      dataFin: false,
      dataAck64: false,
      dsn64: false,
      dataAck: ack & 0xffff_ffffn,
    };
    if (withFin && this.dataFinDue) {
      dss.dataFin = true;
      dss.dsn64 = true;
      const dsn = this.wireDsn(this.finOffset());
      // A DATA_FIN alone is a mapping (SSN 0, length 1), checksummed like any (RFC 8684 §3.3.1).
      dss.mapping = this.checksum
        ? { dsn, ssn: 0, dataLevelLength: 1, checksum: dssChecksum(dsn, 0, 1, new Uint8Array(0)) }
        : { dsn, ssn: 0, dataLevelLength: 1 };
    }
    return dss;
  }

  // ------------------------------------------------------------ life cycle

  /** The initial subflow's handshake completed at the TCP level. */
  onSubflowConnected(sf: Subflow): void {
    // Any other subflow from a backup address (an initial one, a join the peer opened): MP_PRIO.
    if (!sf.backup && this.isBackupAddress(sf)) this.setBackup(sf, true);
    if (sf.role !== 'initial' || this._state !== 'connecting') return;
    this._state = 'established';
    this.wndRight = this.sndUna + sf.conn.peerWindow;
    this.counters.MPCurrEstab++;
    if (!this.fallback && this.role === 'server') sf.fullyEstablished = true;
    this.onReady?.();
    this.socket?._onConnected();
    // The client's path manager waits for onFullyEstablished (below).
    if (!this.fallback && this.role === 'server') this.pm?.onEstablished(this, sf);
    this.push();
  }

  /**
   * The client saw the server speak MPTCP after the handshake (a DSS): only now does the server
   * surely hold the connection, so only now may the path manager open subflows (as Linux's
   * does). A join sent with the third ACK races it and a server that has not seen it refuses.
   */
  onFullyEstablished(): void {
    const initial = this.initial;
    if (this.role === 'client' && !this.fallback && initial !== undefined)
      this.pm?.onEstablished(this, initial);
  }

  onJoinEstablished(sf: Subflow): void {
    this.pm?.onSubflowEstablished(this, sf);
    this.push();
  }

  /**
   * Plain TCP from now on (RFC 8684 §3.7): only the initial subflow, an infinite mapping whose
   * first byte is `dsn` (an infinite mapping's) or the next expected one.
   */
  fallBack(dsn?: bigint): void {
    if (this.fallback) return;
    this.fallback = true;
    this.infiniteNext = dsn === undefined ? this.rcvNxt : Number(dsnDiff(dsn, this.remoteIdsnPlus1));
    for (const sf of this.subflows) if (sf.role !== 'initial') sf.handle?.conn.abort();
  }

  onFastclose(): void {
    this.closeWith('ECONNRESET');
    // Each subflow's RST goes out on its next dispatch: ask for one (RFC 8684 §3.5: every subflow).
    for (const sf of [...this.subflows]) {
      sf.handle?.conn.abort();
      sf.handle?.kick();
    }
  }

  onSubflowFin(sf: Subflow): void {
    if (this.fallback && sf.role === 'initial') {
      this.peerFin = true;
      this.rcvNxt = this.infiniteNext;
      this.socket?._onReadable(true);
      this.maybeFinished();
      return;
    }
    // The peer closed this subflow: close ours too (its data, if any, is reinjected on close).
    sf.handle?.conn.shutdown();
  }

  onSubflowClosed(sf: Subflow): void {
    const i = this.subflows.indexOf(sf);
    if (i >= 0) this.subflows.splice(i, 1);
    const error = sf.handle?.conn.error;
    if (this.fallback && sf.role === 'initial') {
      this.closeWith(error);
      return;
    }
    // Nothing lost: what it carried and the peer has not DATA_ACKed goes on another subflow.
    for (const r of sf.unacked()) {
      const start = Math.max(r.dsn, this.sndUna);
      const end = r.dsn + r.length;
      if (end > start) this.reinject.push({ dsn: start, length: end - start });
    }
    this.pm?.onSubflowClosed(this, sf);
    if (this.subflows.length === 0) {
      if (!(this.finAcked && this.peerFin)) this.closeWith(error ?? 'ECONNRESET');
      else this.closeWith(undefined);
      return;
    }
    this.freeAcked();
    this.push();
  }

  private closeWith(error: TcpErrorCode | undefined): void {
    if (this._state === 'closed') return;
    const wasEstablished = this._state !== 'connecting';
    this._state = 'closed';
    this._error = error;
    if (wasEstablished) this.counters.MPCurrEstab--;
    this.ctx.release(this);
    this.socket?._onClosed(error);
  }

  /** Both DATA_FINs are through (or it closed): its subflows are going, none is re-created. */
  get finished(): boolean {
    return (this.finAcked && this.peerFin) || this._state === 'closed';
  }

  private maybeFinished(): void {
    if (!(this.finAcked && this.peerFin) || this.fallback) return;
    // Both DATA_FINs are through: close every subflow in order.
    for (const sf of this.subflows) sf.handle?.conn.shutdown();
    for (const sf of this.subflows) sf.handle?.kick();
    // RFC 8684 §3.3.3: the connection is closed once both DATA_FINs are DATA_ACKed. Its subflows'
    // FIN exchanges and TIME-WAIT go on without it (they still carry the DATA_ACK), as Linux's
    // msk closes without waiting for its subflows.
    this.closeWith(undefined);
  }

  // ------------------------------------------------------------ application side

  write(data: Uint8Array): number {
    if (this._state === 'closed' || this.finQueued) return 0;
    const n = this.sendBuf.write(data);
    if (n < data.length) this.writeBlocked = true;
    return n;
  }

  read(max = Number.MAX_SAFE_INTEGER, oneChunk = false): Uint8Array | undefined {
    if (this.rcv.readable === 0 || max <= 0) return undefined;
    const out = this.rcv.read(max, oneChunk);
    for (const sf of this.subflows) {
      if (sf.handle === undefined || sf.closed) continue;
      sf.conn.receiveSpaceGrew();
    }
    return out;
  }

  get readableLength(): number {
    return this.rcv.readable;
  }

  /** Half-close: a DATA_FIN follows the written data (RFC 8684 §3.3.3). */
  shutdown(): void {
    if (this.finQueued || this._state === 'closed') return;
    this.finQueued = true;
    this.push();
  }

  /** Reset everything: MP_FASTCLOSE on a RST of every subflow (RFC 8684 §3.5). */
  abort(): void {
    if (this._state === 'closed') return;
    if (!this.fallback && this._state !== 'connecting') this.fastclosing = true;
    for (const sf of [...this.subflows]) {
      sf.handle?.conn.abort();
      sf.handle?.kick();
    }
    this.closeWith(undefined);
  }

  /** The application's socket asked to be served (it wrote or read). */
  kick(): void {
    this.push();
    for (const sf of this.subflows) sf.handle?.kick();
  }

  info(): TcpInfo & { mptcp: MptcpInfo } {
    const base = this.initial?.handle?.conn.info() ?? this.subflows[0]?.handle?.conn.info();
    const subflows = this.subflows.flatMap((s) =>
      s.handle === undefined
        ? []
        : [
            {
              id: s.id,
              role: s.role,
              local: `${formatAddress(s.handle.local)}:${s.handle.localPort}`,
              remote: `${formatAddress(s.handle.remote)}:${s.handle.remotePort}`,
              fullyEstablished: s.fullyEstablished,
              backup: s.isBackup,
              info: s.handle.conn.info(),
            },
          ],
    );
    const mptcp: MptcpInfo = {
      fallback: this.fallback,
      checksum: this.checksum,
      localToken: this.localToken,
      remoteToken: this.remoteToken,
      peerCFlag: this.peerCFlag,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      reinjectedBytes: this.reinjectedBytes,
      subflows,
    };
    return { ...(base ?? EMPTY_INFO), mptcp };
  }

  // ------------------------------------------------------------ send side

  /** Bytes [off, off + n) of the send buffer (a borrowed view). */
  sendView(off: number, n: number): Uint8Array {
    if (off >= this.sendBase) return this.sendBuf.view(off - this.sendBase, n);
    const out = new Uint8Array(n);
    for (const c of this.retained) {
      const from = Math.max(off, c.off);
      const to = Math.min(off + n, c.off + c.bytes.length);
      if (from < to) out.set(c.bytes.subarray(from - c.off, to - c.off), from - off);
    }
    if (off + n > this.sendBase) out.set(this.sendBuf.view(0, off + n - this.sendBase), this.sendBase - off);
    return out;
  }

  private finOffset(): number {
    return this.sendBase + this.sendBuf.length;
  }

  /**
   * Gives unsent (and reinjected) data to subflows the scheduler picks, as much as each one's
   * windows take now (Linux's __mptcp_push_pending), within the peer's data-level window.
   */
  push(): void {
    if (this._state !== 'established') return;
    const writeEnd = this.sendBase + this.sendBuf.length;
    const redundant = this.scheduler.redundant && !this.fallback;
    const onBackup = !this.fallback && usingBackup(this.subflows);
    if (onBackup && !this.onBackup) this.counters.backupTakeover++;
    this.onBackup = onBackup;
    for (let guard = 0; guard < 10_000; guard++) {
      // Redundant: every subflow catches up first, so the one picked for new data holds all before.
      if (redundant) this.pushCopies();
      const re = this.reinject[0];
      let start: number;
      let avail: number;
      if (re !== undefined) {
        if (re.dsn + re.length <= this.sndUna) {
          this.reinject.shift();
          continue;
        }
        start = Math.max(re.dsn, this.sndUna);
        avail = re.dsn + re.length - start;
      } else {
        start = this.sndNxt;
        avail = Math.min(writeEnd, this.fallback ? writeEnd : this.wndRight) - start;
        // The window is full: the oldest data may be stuck behind a slow subflow.
        if (avail <= 0 && writeEnd > start && !this.fallback && !redundant && this.opportunisticRetransmit())
          continue;
        if (avail <= 0 && writeEnd > start && !this.fallback && this.windowProbeDue()) {
          const sf =
            this.subflows.find((s) => s.canCarryData() && !s.isBackup) ??
            this.subflows.find((s) => s.canCarryData());
          if (sf === undefined) break;
          // The first probe is the next new byte; later ones resend the oldest unacknowledged
          // byte, so probes never climb past the window edge and a window that reopens takes it.
          if (this.sndUna < this.sndNxt) sf.assign(this.sndUna, 1);
          else {
            sf.assign(start, 1);
            this.sndNxt += 1;
          }
          break;
        }
      }
      if (avail <= 0) break;
      const sf = this.fallback ? this.usableInitial() : this.scheduler.pick(this.subflows);
      if (sf === undefined) break;
      const n = mappingLength(sf, avail);
      if (n <= 0) break;
      sf.assign(start, n);
      if (re !== undefined) {
        this.reinjectedBytes += n;
        this.counters.reinjectedBytes += n;
        this.counters.MPTCPRetrans++;
        if (n >= avail) this.reinject.shift();
        else {
          re.length -= start + n - re.dsn;
          re.dsn = start + n;
        }
      } else {
        this.sndNxt += n;
        this.bytesSent += n;
        if (redundant) this.copiedTo.set(sf, start + n);
      }
    }
    if (redundant) this.pushCopies();
    this.armDataFin();
    if (this.dataRtoAt === NEVER && this.sndUna < this.sndNxt && !this.fallback) {
      this.dataRtoAt = this.now() + this.dataRto();
    }
  }

  /**
   * The redundant scheduler's copies: each candidate subflow (sched.ts: the usable regular ones,
   * else the backups) gets, as far as its room allows, what it has not carried yet of the data
   * sent and not DATA_ACKed; what the DATA_ACK already covers is never copied (first copy wins).
   */
  private pushCopies(): void {
    for (const sf of candidates(this.subflows)) {
      let from = Math.max(this.copiedTo.get(sf) ?? 0, this.sndUna);
      for (let guard = 0; from < this.sndNxt && guard < 10_000; guard++) {
        if (sf.sendRoom <= 0) break;
        const n = mappingLength(sf, this.sndNxt - from);
        sf.assign(from, n);
        from += n;
        this.counters.redundantCopies++;
        this.counters.redundantBytes += n;
      }
      this.copiedTo.set(sf, from);
    }
  }

  /**
   * Opportunistic retransmission against head-of-line blocking (Raiciu et al., "How Hard Can It
   * Be? Designing and Implementing a Deployable Multipath TCP", NSDI 2012; Linux's out-of-tree
   * MPTCP): the peer's data-level window is full and its oldest byte sits on a subflow slower than
   * one with room. Then what that slower subflow holds from the oldest byte on goes again on the
   * fastest subflow with room (the peer keeps whichever copy comes first). When the slower one
   * holds more than half the window, its congestion window is cut too, at most once per its RTT,
   * so that it holds less of the window next time: a congestion event of its own controller
   * (halving for NewReno and the coupled ones, CUBIC's beta 0.7). Returns whether it gave
   * anything to a subflow.
   */
  private opportunisticRetransmit(): boolean {
    const una = this.sndUna;
    if (una >= this.sndNxt) return false;
    let fast: Subflow | undefined;
    for (const s of this.subflows) {
      if (s.sendRoom <= 0 || s.isBackup || s.srtt === undefined) continue;
      if (fast === undefined || s.srtt < (fast.srtt ?? 0)) fast = s;
    }
    if (fast === undefined) return false;
    const fastRtt = fast.srtt ?? 0;
    let slow: Subflow | undefined;
    let slowHeld: { dsn: number; length: number }[] = [];
    let end = 0;
    for (const s of this.subflows) {
      if (s === fast || !((s.srtt ?? Number.POSITIVE_INFINITY) > fastRtt)) continue;
      const held = s.unacked();
      const r = held.find((x) => x.dsn <= una && una < x.dsn + x.length);
      if (r !== undefined) {
        slow = s;
        slowHeld = held;
        end = r.dsn + r.length;
        break;
      }
    }
    if (slow === undefined) return false;
    const from = Math.max(una, this.ortNext);
    if (from >= end) return false;
    if (fast.unacked().some((x) => x.dsn <= from && from < x.dsn + x.length)) return false;
    const n = mappingLength(fast, end - from);
    fast.assign(from, n);
    this.ortNext = from + n;
    this.reinjectedBytes += n;
    this.counters.reinjectedBytes += n;
    this.counters.opportunisticRetrans++;
    this.counters.opportunisticRetransBytes += n;
    const now = this.now();
    const cc = slow.congestion;
    // It keeps happening when the slow subflow holds most of the window it blocks (cutting it on
    // every such event, as Linux's out-of-tree MPTCP did, starved a useful 200 ms path here).
    let held = 0;
    for (const x of slowHeld) held += Math.max(0, x.dsn + x.length - Math.max(x.dsn, una));
    if (
      cc !== undefined &&
      held > (this.wndRight - una) / 2 &&
      now - slow.holPenalizedAt >= (slow.srtt ?? 0)
    ) {
      slow.holPenalizedAt = now;
      cc.onCongestionEvent(now, cc.cwnd);
      this.counters.holPenalties++;
    }
    return true;
  }

  private dataRto(): number {
    let srtt = 0;
    for (const sf of this.subflows) srtt = Math.max(srtt, sf.srtt ?? 0);
    return Math.min(DATA_RTO_MAX_MS, Math.max(DATA_RTO_MIN_MS, 4 * srtt) * 2 ** this.dataRtoBackoff);
  }

  /** The DATA_ACK stalled: reinject the oldest unacknowledged data on the best subflow. */
  private onDataRto(): void {
    this.dataRtoAt = NEVER;
    if (this.fallback || this.sndUna >= this.sndNxt || this._state !== 'established') return;
    if (this.wndRight <= this.sndUna) {
      // A closed window, not a loss: the window probe's answers will open it.
      this.dataRtoAt = this.now() + this.dataRto();
      return;
    }
    // The subflow holding the oldest byte has not delivered it for a whole data-level RTO: when
    // another subflow can carry data, everything it holds goes there (Linux retransmits all
    // pending data once a subflow is stale); a 64 KB head per backed-off RTO stalls for minutes.
    const una = this.sndUna;
    const stuck = this.subflows.find((s) => s.unacked().some((r) => r.dsn <= una && una < r.dsn + r.length));
    const others = stuck !== undefined && this.subflows.some((s) => s !== stuck && s.canCarryData());
    if (others) {
      const ranges = stuck.unacked().filter((r) => r.dsn + r.length > una);
      this.reinject.unshift(
        ...ranges.map((r) => ({
          dsn: Math.max(r.dsn, una),
          length: r.dsn + r.length - Math.max(r.dsn, una),
        })),
      );
    } else {
      const length = Math.min(this.sndNxt - una, MAX_MAPPING);
      const head = this.reinject[0];
      if (head === undefined || head.dsn !== una) this.reinject.unshift({ dsn: una, length });
    }
    this.counters.dataRtoFired++;
    this.dataRtoBackoff++;
    this.push();
    this.dataRtoAt = this.now() + this.dataRto();
  }

  /**
   * The peer's data-level window is closed and nothing is outstanding on any subflow, so no ACK
   * will come to open it should its window update be lost. Then one byte beyond the window goes
   * to a subflow whatever its room: that subflow's TCP persist timer probes with it (RFC 9293
   * §3.8.6.1), with TCP's own backoff; each answer carries the current window (Linux's WinProbe).
   */
  private windowProbeDue(): boolean {
    for (const sf of this.subflows) if (sf.length > 0) return false;
    this.counters.WinProbe++;
    return true;
  }

  private usableInitial(): Subflow | undefined {
    const sf = this.initial;
    return sf !== undefined && sf.sendRoom > 0 ? sf : undefined;
  }

  /**
   * DATA_FIN once every byte is assigned: on the next ACK of each subflow, retransmitted on a
   * timer. After fallback the subflow's own FIN is the DATA_FIN.
   */
  private armDataFin(): void {
    if (this.fallback) {
      if (this.finQueued && this.sndNxt === this.finOffset()) this.initial?.handle?.conn.shutdown();
      return;
    }
    if (!this.finQueued || this.finAcked) return;
    if (this.sndNxt !== this.finOffset() || this.dataFinAt !== NEVER) return;
    this.dataFinAt = this.now() + DATA_FIN_RTO_MS;
    for (const sf of this.subflows) if (sf.canCarryData()) sf.wantAck();
  }

  /** A DATA_ACK (RFC 8684 §3.3.2) with the window of its segment. */
  onDataAck(wire: bigint, wide: boolean, window: number): void {
    const expected = this.wireDsn(this.sndUna);
    const full = wide ? wire : expandDsn32(Number(wire), expected);
    const off = Number(dsnDiff(full, dsnAdd(this.localIdsn, 1)));
    const finEnd = this.finQueued ? this.finOffset() + 1 : this.sndNxt;
    if (off > Math.max(this.sndNxt, finEnd) || off < this.sndUna - (1 << 30)) {
      this.counters.dataAckInvalid++;
      return;
    }
    if (off > this.sndUna) {
      this.sndUna = Math.min(off, this.sendBase + this.sendBuf.length);
      if (this.finQueued && off > this.finOffset()) this.finAcked = true;
      this.freeAcked();
      this.dataRtoBackoff = 0;
      this.dataRtoAt = this.sndUna < this.sndNxt ? this.now() + this.dataRto() : NEVER;
    }
    // RFC 8684 §3.3.4: the window is relative to the DATA_ACK; its right edge never moves left.
    const right = Math.min(off, this.sndNxt) + window;
    if (right > this.wndRight) this.wndRight = right;
    if (this.finAcked) {
      this.dataFinAt = NEVER;
      this.maybeFinished();
    }
  }

  /** The connection-level receive space every subflow advertises. */
  receiveSpace(): number {
    return this.rcv.window;
  }

  /** Data offset of the next byte we expect: what our DATA_ACK says. */
  get receivedUpTo(): number {
    return this.rcvNxt;
  }

  /**
   * MP_PRIO (RFC 8684 §3.3.8): make a subflow a backup (or a regular one again) and tell the peer,
   * so that both ends send on it only when no regular subflow can.
   */
  setBackup(sf: Subflow, backup: boolean): void {
    if (sf.backup === backup || sf.closed || this.fallback) return;
    sf.backup = backup;
    sf.signal({ subtype: 'mp_prio', backup });
    this.counters.MPPrioTx++;
    this.push();
  }

  /** REMOVE_ADDR (RFC 8684 §3.4.2): the peer's address IDs are gone; close subflows to them. */
  onRemoveAddr(ids: readonly number[]): void {
    this.counters.RmAddr++;
    for (const sf of [...this.subflows]) {
      const id = sf.join?.remoteAddressId ?? 0;
      if (!ids.includes(id) || sf.closed) continue;
      // The initial subflow is the peer's address 0 only; a join to it has id 0 as well.
      this.counters.RmSubflow++;
      sf.handle?.conn.abort();
      sf.handle?.kick();
    }
  }

  /**
   * A subflow's retransmission timer fired: its path may be dead. When another subflow can carry
   * data, everything it holds unacknowledged is reinjected there at once, so a dead path costs
   * one RTO, not a data-level RTO; after `staleAfterRtos` RTOs in a row it is also marked stale
   * (no new data until it carries an ACK again; Linux counts stale_loss_cnt retransmission
   * intervals without progress, and reinjects at its data-level timer meanwhile). Before that it
   * gets no data while a subflow of its kind is in good standing (Subflow.sendRoom), and when
   * only a backup could take its data, nothing moves until it is stale: the backup's rule.
   */
  onSubflowRto(sf: Subflow): void {
    sf.rtosInARow++;
    if (sf.stale || this.fallback || this._state !== 'established') return;
    if (!this.subflows.some((s) => s !== sf && !s.stale && s.canCarryData())) return;
    if (sf.rtosInARow >= this.config.staleAfterRtos) {
      sf.stale = true;
      this.counters.SubflowStale++;
    } else if (!sf.peerInGoodStanding()) {
      // Only a subflow of the other kind (a backup) could take its data: that waits for stale.
      return;
    }
    this.counters.subflowRtoReinjections++;
    const una = this.sndUna;
    const ranges = sf
      .unacked()
      .filter((r) => r.dsn + r.length > una)
      .map((r) => ({ dsn: Math.max(r.dsn, una), length: r.dsn + r.length - Math.max(r.dsn, una) }));
    this.reinject.unshift(...ranges);
    this.push();
  }

  /** A subflow's bytes were acknowledged at the TCP level. */
  onSubflowAcked(sf: Subflow, _n: number): void {
    if (this.fallback && sf.role === 'initial') {
      // Plain TCP: what the subflow's ACK covers is delivered (there is no DATA_ACK any more).
      const acked = sf.ackedDsn() ?? this.sndNxt;
      if (acked > this.sndUna) this.sndUna = acked;
      this.wndRight = this.sndUna + sf.conn.peerWindow;
    }
    this.freeAcked();
  }

  /**
   * Whether a failure may turn into fallback with an infinite mapping (RFC 8684 §3.7): only while
   * the connection never had a second subflow and never resent data elsewhere, so that the one
   * subflow's bytes are the data stream in order.
   */
  allowsInfiniteFallback(): boolean {
    return this.nextSubflowId === 1 && this.reinjectedBytes === 0;
  }

  /** Frees send-buffer bytes every subflow is done with and the peer DATA_ACKed. */
  private freeAcked(): void {
    let low = this.sndUna;
    for (const s of this.subflows) {
      const d = s.lowestDsn();
      if (d !== undefined && d < low) low = d;
    }
    for (const r of this.reinject) if (r.dsn < low) low = r.dsn;
    if (this.retained.length > 0) {
      const held = this.subflows.flatMap((s) => s.unacked());
      this.retained = this.retained.filter((c) =>
        held.some((r) => r.dsn < c.off + c.bytes.length && c.off < r.dsn + r.length),
      );
    }
    if (low < this.sndUna - this.sendBuf.capacity / 4) {
      // Subflows pin DATA_ACKed bytes: copy just the ranges they hold aside, free the rest.
      for (const s of this.subflows) {
        for (const r of s.unacked()) {
          const from = Math.max(r.dsn, this.sendBase);
          const to = Math.min(r.dsn + r.length, this.sndUna);
          if (from < to)
            this.retained.push({
              off: from,
              bytes: this.sendBuf.view(from - this.sendBase, to - from).slice(),
            });
        }
      }
      low = this.sndUna;
    }
    if (low > this.sendBase) {
      this.sendBuf.ack(low - this.sendBase);
      this.sendBase = low;
      if (this.writeBlocked) {
        this.writeBlocked = false;
        this.socket?._onWritable();
      }
    }
  }

  // ------------------------------------------------------------ receive side

  /** In-order subflow bytes with their DSN: place them in the data-level reassembly. */
  receiveMapped(dsn: bigint, data: Uint8Array, dataFinAfter: boolean, sf: Subflow): void {
    const off = Number(dsnDiff(dsn, this.remoteIdsnPlus1));
    if (data.length > 0) this.place(off, data, sf);
    if (dataFinAfter) this.onDataFinAt(off + data.length, sf);
  }

  /** A DATA_FIN at 64-bit DSN `dsn`. */
  onDataFin(dsn: bigint, sf: Subflow): void {
    this.onDataFinAt(Number(dsnDiff(dsn, this.remoteIdsnPlus1)), sf);
  }

  /** Fallback: subflow bytes are the data stream itself. */
  receiveInfinite(data: Uint8Array): void {
    const initial = this.initial;
    if (initial === undefined) return;
    // Advanced before placing: place() keeps infiniteNext >= rcvNxt, so adding after it counted twice.
    const at = this.infiniteNext;
    this.infiniteNext = at + data.length;
    this.place(at, data, initial);
  }

  /**
   * Bytes read from a subflow (ours to keep): queued in the data-level reassembly, or released
   * to the slab pool when they are dropped (duplicates, beyond the window).
   */
  private place(off: number, data: Uint8Array, sf: Subflow): void {
    let at = off;
    let bytes = data;
    const skip = this.rcvNxt - at;
    if (skip >= bytes.length) {
      this.counters.DuplicateData++;
      releaseChunk(bytes);
      sf.wantAck();
      return;
    }
    if (skip > 0) {
      releaseChunk(bytes, skip);
      bytes = bytes.subarray(skip);
      at = this.rcvNxt;
    }
    const room = this.rcv.window - (at - this.rcvNxt);
    if (room <= 0) {
      // One byte beyond a closed window is the peer's data-level window probe (it passes a
      // subflow whose own TCP window is open; ours probes with a new byte each time), not data
      // lost to a full buffer.
      if (bytes.length !== 1) this.counters.rcvBufferFullDrops++;
      releaseChunk(bytes);
      sf.wantAck(); // a window probe: the answer tells the sender our window
      return;
    }
    if (bytes.length > room) {
      releaseChunk(bytes, bytes.length - room);
      bytes = bytes.subarray(0, room);
    }
    if (at > this.rcvNxt) this.counters.OFOQueue++;
    // Bytes read from a subflow are ours to keep: in order, they are queued without a copy.
    const r = Buffer.isBuffer(bytes)
      ? this.rcv.insertOwned(this.rcvNxt >>> 0, at >>> 0, bytes)
      : this.rcv.insert(this.rcvNxt >>> 0, at >>> 0, bytes);
    if (r.advance === 0) return;
    this.rcvNxt += r.advance;
    this.bytesReceived += r.advance;
    if (this.fallback) this.infiniteNext = Math.max(this.infiniteNext, this.rcvNxt);
    this.checkPeerFin(sf);
    this.socket?._onReadable(this.peerFin);
  }

  private onDataFinAt(off: number, sf: Subflow): void {
    if (this.peerFinOffset === undefined) this.peerFinOffset = off;
    this.checkPeerFin(sf);
    // Every DATA_FIN is answered, so a retransmitted one learns our DATA_ACK covers it.
    sf.wantAck();
  }

  private checkPeerFin(sf: Subflow): void {
    if (this.peerFin || this.peerFinOffset === undefined || this.rcvNxt !== this.peerFinOffset) return;
    this.peerFin = true;
    this.rcvNxt += 1; // the DATA_FIN takes one data sequence number
    for (const s of this.subflows) if (s !== sf && s.canCarryData()) s.wantAck();
    this.socket?._onReadable(true);
    this.maybeFinished();
  }

  // ------------------------------------------------------------ ADD_ADDR (RFC 8684 §3.4.1)

  /** Our ADD_ADDR's HMAC (key: ours then the peer's). */
  addAddrHmacFor(id: number, address: Uint8Array, port: number | undefined): bigint {
    return addAddrHmac(this.localKey, this.remoteKey, id, address, port);
  }

  onAddAddr(sf: Subflow, opt: AddAddrOption): void {
    if (opt.echo) {
      this.counters.EchoAdd++;
      this.pm?.onAddAddrEcho(this, opt);
      return;
    }
    const expected = addAddrHmac(this.remoteKey, this.localKey, opt.addressId, opt.address, opt.port);
    if (expected !== opt.truncatedHmac) {
      this.counters.addAddrBadHmac++;
      this.counters.AddAddrDrop++;
      return;
    }
    this.counters.AddAddr++;
    if (opt.port !== undefined) this.counters.PortAdd++;
    // Echo it (RFC 8684 §3.4.1) whether or not we use it, so the sender stops retransmitting.
    sf.signal({
      subtype: 'add_addr',
      echo: true,
      addressId: opt.addressId,
      address: opt.address,
      ...(opt.port === undefined ? {} : { port: opt.port }),
    });
    this.counters.EchoAddTx++;
    this.pm?.onAddAddr(this, opt);
  }

  // ------------------------------------------------------------ timers (driven by subflows)

  beforeDispatch(sf: Subflow, now: number): void {
    if (now >= this.dataRtoAt) this.onDataRto();
    if (now >= this.dataFinAt) {
      if (this.dataFinRetries >= DATA_FIN_RETRIES) {
        this.dataFinAt = NEVER;
      } else {
        this.dataFinRetries++;
        this.dataFinAt = now + DATA_FIN_RTO_MS * 2 ** this.dataFinRetries;
        for (const s of this.subflows) if (s.canCarryData()) s.wantAck();
      }
    }
    this.pm?.onTimer(this, sf, now);
    if (sf.role === 'initial' || sf.fullyEstablished) this.push();
  }

  pollAt(): number {
    return Math.min(this.dataFinAt, this.dataRtoAt, this.pm?.pollAt(this) ?? NEVER);
  }
}

const EMPTY_INFO: TcpInfo = {
  state: 'CLOSED',
  localMss: 0,
  peerMss: undefined,
  sendMss: 0,
  sndWindowScale: undefined,
  rcvWindowScale: undefined,
  sack: false,
  timestamps: false,
  congestion: '',
  cwnd: 0,
  ssthresh: 0,
  srtt: undefined,
  rttvar: undefined,
  rto: 0,
  sndWnd: 0,
  rcvWnd: 0,
  bytesSent: 0,
  bytesRetransmitted: 0,
  bytesAcked: 0,
  bytesReceived: 0,
  retransmitSegments: 0,
  unsentBytes: 0,
  unreadBytes: 0,
  error: undefined,
};
