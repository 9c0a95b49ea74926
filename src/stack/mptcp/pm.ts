/**
 * The path manager of one connection: reacts to events (established, ADD_ADDR and its echo,
 * subflows up and down, local addresses going down and up, timers) by announcing addresses and
 * opening or closing subflows; it never touches bytes (Linux's pm_netlink.c in-kernel manager,
 * with the load-balancer behaviour of Duchene & Bonaventure, ICNP 2017):
 * - server: right after the handshake, announce each configured unique address (ADD_ADDR with
 *   HMAC, retransmitted until echoed: the original plus `addAddrRetries`);
 * - client: join every announced address from each local address of its family; join the
 *   peer's initial address from our other addresses only when the peer did not set C.
 *
 * Healing (client side, where subflows are opened): each (local, remote, port) the manager joined
 * is a path it keeps. A path whose subflow was reset or timed out, or stayed stale (no ACK while
 * data was outstanding) for `STALE_REPLACE_MS`, gets a new subflow, with backoff: an attempt that
 * is not fully established within its slot (0.5 s, doubling to 30 s) is dropped and the next one
 * starts; a fully established subflow resets the backoff. Linux does not re-create subflows (its
 * issue #440).
 * Local addresses (`onLocalAddress`, from the stack's configuration): one that goes down loses its
 * subflows at once and the peer hears REMOVE_ADDR with its address ID (RFC 8684 §3.4.2); when it
 * comes back its paths are tried again at once with the backoff reset. A peer's REMOVE_ADDR
 * closes subflows without an error: their paths are not re-created.
 */
import { addressBytes, addressEqual, type IpAddress, v4, v6 } from '../iface/address.js';
import type { AddAddrOption } from '../wire/mptcp-options.js';
import type { MptcpConnection } from './connection.js';
import type { Subflow } from './subflow.js';

const NEVER = Number.POSITIVE_INFINITY;
/** First re-creation slot (ms) and its cap: each failed attempt doubles it. */
export const REJOIN_BACKOFF_MIN_MS = 500;
export const REJOIN_BACKOFF_MAX_MS = 30_000;
/** A subflow stale this long (ms) is given up and replaced (its path is as good as dead). */
export const STALE_REPLACE_MS = 1000;

/** What the path manager asks of the endpoint. */
export interface PathManagerHost {
  readonly addresses: readonly IpAddress[];
  openJoin(conn: MptcpConnection, local: IpAddress, remote: IpAddress, port: number): Subflow | undefined;
}

interface PendingAnnouncement {
  option: Extract<AddAddrOption, { echo: false }>;
  retries: number;
  at: number;
}

/** A (local, remote, port) the client keeps a subflow on. */
interface Path {
  readonly local: IpAddress;
  readonly remote: IpAddress;
  readonly port: number;
  /** The peer's address ID of `remote` (0: its initial address). */
  readonly remoteId: number;
  subflow: Subflow | undefined;
  /** Failed attempts in a row (the backoff exponent). */
  failures: number;
  /** Next re-creation attempt, or the end of the current attempt's slot. */
  at: number;
  /** When the current attempt started (NEVER: none running). */
  attemptStart: number;
  /** The current subflow is a re-creation (counted once fully established). */
  recreating: boolean;
  /** When its subflow was first seen stale (NEVER: not stale). */
  staleSince: number;
  /** A subflow on it was fully established once (only such paths are re-created). */
  everUp: boolean;
}

export class PathManager {
  private readonly pending: PendingAnnouncement[] = [];
  private addAddrAccepted = 0;
  private readonly paths: Path[] = [];
  /** When runPaths last looked at the paths (pollAt never asks for an instant it has seen). */
  private pathsRunAt = Number.NEGATIVE_INFINITY;
  /** Local addresses marked down (by the stack's configuration). */
  private readonly down: IpAddress[] = [];

  constructor(private readonly host: PathManagerHost) {}

  onEstablished(conn: MptcpConnection, initial: Subflow): void {
    if (conn.role === 'server') {
      conn.config.announce.forEach((a, i) => {
        const address = addressBytes(a.address);
        const addressId = i + 1;
        const option: Extract<AddAddrOption, { echo: false }> = {
          subtype: 'add_addr',
          echo: false,
          addressId,
          address,
          ...(a.port === undefined ? {} : { port: a.port }),
          truncatedHmac: conn.addAddrHmacFor(addressId, address, a.port),
        };
        initial.signal(option);
        conn.counters.AddAddrTx++;
        this.pending.push({ option, retries: 0, at: conn.now() + conn.config.addAddrTimeoutMs });
      });
      return;
    }
    const h = initial.handle;
    if (h === undefined) return;
    // The initial subflow's path: re-created like the others unless the peer set C.
    if (!conn.peerCFlag) {
      this.paths.push(newPath(h.local, h.remote, h.remotePort, 0, initial));
    }
    // Client, peer without C: subflows to its initial address from our other addresses.
    if (conn.peerCFlag) {
      conn.counters.joinsSkippedCFlag++;
      return;
    }
    for (const local of this.host.addresses) {
      if (local.family !== h.remote.family || addressEqual(local, h.local)) continue;
      this.join(conn, local, h.remote, h.remotePort, 0);
    }
  }

  onAddAddr(conn: MptcpConnection, opt: AddAddrOption): void {
    if (conn.role !== 'client') return;
    if (this.addAddrAccepted >= conn.config.maxAddAddrAccepted) {
      conn.counters.AddAddrDrop++;
      return;
    }
    this.addAddrAccepted++;
    const initial = conn.initial?.handle;
    if (initial === undefined) return;
    const remote = opt.address.length === 4 ? v4(readU32(opt.address)) : v6(opt.address.slice());
    const port = opt.port ?? initial.remotePort;
    // RFC 8684 §3.1: never a join to the address and port the peer marked with C.
    if (conn.peerCFlag && addressEqual(remote, initial.remote) && port === initial.remotePort) {
      conn.counters.joinsSkippedCFlag++;
      return;
    }
    for (const local of this.host.addresses) {
      if (local.family !== remote.family) continue;
      this.join(conn, local, remote, port, opt.addressId);
    }
  }

  onAddAddrEcho(_conn: MptcpConnection, opt: AddAddrOption): void {
    const i = this.pending.findIndex(
      (p) => p.option.addressId === opt.addressId && bytesEqual(p.option.address, opt.address),
    );
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** A join's fourth ACK arrived: its path works, the backoff starts over. */
  onSubflowEstablished(conn: MptcpConnection, sf: Subflow): void {
    const p = this.paths.find((q) => q.subflow === sf);
    if (p === undefined) return;
    if (p.recreating) conn.counters.subflowsRecreated++;
    p.recreating = false;
    p.everUp = true;
    p.failures = 0;
    p.attemptStart = NEVER;
    p.at = NEVER;
  }

  onSubflowClosed(conn: MptcpConnection, sf: Subflow): void {
    const p = this.paths.find((q) => q.subflow === sf);
    if (p === undefined) return;
    p.subflow = undefined;
    p.staleSince = NEVER;
    if (conn.finished || !this.isUp(p.local)) {
      p.at = NEVER;
      return;
    }
    // A subflow that ended without an error closed in order (the peer's FIN, the end): let it
    // be; so is a path that never worked (the peer refused it, say: as before healing).
    const error = sf.handle?.conn.error;
    if ((error === undefined && p.attemptStart === NEVER && !p.recreating) || !p.everUp) {
      p.at = NEVER;
      return;
    }
    const now = conn.now();
    if (p.attemptStart !== NEVER) {
      // An attempt failed before its slot ended: the next one starts when the slot ends.
      p.failures++;
      p.at = Math.max(now, p.attemptStart + backoff(p.failures - 1));
      p.attemptStart = NEVER;
    } else {
      // A working subflow was lost: try again at once (the first slot's backoff applies after).
      p.at = now;
    }
    // Nothing else may dispatch soon (an idle connection): wake a subflow to run the timer.
    conn.subflows.find((s) => s !== sf && !s.closed)?.handle?.kick();
  }

  /**
   * A local address went down (its link, or it left the configuration) or came back. Down: its
   * subflows are reset and the peer is told with REMOVE_ADDR of each address ID they used (on a
   * subflow that stays). Up: its paths are tried at once, with the backoff reset; a client also
   * joins the addresses it knows from it (as it would have at the start).
   */
  onLocalAddress(conn: MptcpConnection, address: IpAddress, up: boolean): void {
    const i = this.down.findIndex((a) => addressEqual(a, address));
    if (!up) {
      if (i < 0) this.down.push(address);
      this.localDown(conn, address);
      return;
    }
    if (i >= 0) this.down.splice(i, 1);
    if (conn.role !== 'client' || conn.finished) return;
    const now = conn.now();
    for (const p of this.paths) {
      if (!addressEqual(p.local, address) || !p.everUp) continue;
      const sf = p.subflow;
      if (sf !== undefined && p.attemptStart !== NEVER && !sf.fullyEstablished) {
        // An attempt whose SYN may have gone into the dead link: start over now.
        p.subflow = undefined;
        sf.handle?.conn.abort();
        sf.handle?.kick();
      } else if (sf !== undefined) continue;
      p.failures = 0;
      p.attemptStart = NEVER;
      p.at = now;
    }
    // Paths that never existed from this address (it was down when the connection began).
    const initial = conn.initial?.handle;
    if (initial !== undefined && !conn.peerCFlag && !addressEqual(initial.local, address)) {
      if (address.family === initial.remote.family)
        this.join(conn, address, initial.remote, initial.remotePort, 0);
    }
    for (const p of [...this.paths]) {
      if (p.remoteId === 0 || p.remote.family !== address.family) continue;
      this.join(conn, address, p.remote, p.port, p.remoteId);
    }
    this.runPaths(conn, now);
  }

  private localDown(conn: MptcpConnection, address: IpAddress): void {
    const ids = new Set<number>();
    const gone: Subflow[] = [];
    for (const sf of conn.subflows) {
      const h = sf.handle;
      if (h === undefined || sf.closed || !addressEqual(h.local, address)) continue;
      ids.add(sf.join?.localAddressId ?? 0);
      gone.push(sf);
    }
    if (conn.role === 'server') {
      conn.config.announce.forEach((a, k) => {
        if (addressEqual(a.address, address)) ids.add(k + 1);
      });
    }
    for (const p of this.paths) {
      if (!addressEqual(p.local, address)) continue;
      p.at = NEVER;
      p.attemptStart = NEVER;
    }
    if (conn.finished || conn.fallback) return;
    if (ids.size > 0) {
      // On a subflow that stays: the peer must hear it even though the vanished one is cut.
      const via = conn.subflows.find((s) => !gone.includes(s) && s.canCarryData());
      if (via === undefined) conn.counters.RmAddrTxDrop++;
      else {
        via.signal({ subtype: 'remove_addr', addressIds: [...ids] });
        conn.counters.RmAddrTx++;
      }
    }
    for (const sf of gone) {
      conn.counters.RmSubflow++;
      sf.handle?.conn.abort();
      sf.handle?.kick();
    }
  }

  onTimer(conn: MptcpConnection, sf: Subflow, now: number): void {
    for (const p of this.pending) {
      if (now < p.at) continue;
      if (p.retries >= conn.config.addAddrRetries) {
        p.at = NEVER;
        continue;
      }
      p.retries++;
      p.at = now + conn.config.addAddrTimeoutMs;
      sf.signal(p.option);
      conn.counters.AddAddrTx++;
    }
    if (this.paths.length > 0) this.runPaths(conn, now);
  }

  pollAt(_conn: MptcpConnection): number {
    let at = NEVER;
    for (const p of this.pending) if (p.at < at) at = p.at;
    for (const p of this.paths) {
      if (p.at < at) at = p.at;
      // A replacement that came due but had to wait (no other subflow could carry the data) is
      // looked at again on the next dispatch (an ACK or RTO on any subflow): a timer at an
      // instant already seen would fire again at once, for ever.
      const replaceAt = p.staleSince + STALE_REPLACE_MS;
      if (p.staleSince !== NEVER && replaceAt > this.pathsRunAt && replaceAt < at) at = replaceAt;
    }
    return at;
  }

  /** Stale subflows given up, attempts whose slot ended dropped, due attempts started. */
  private runPaths(conn: MptcpConnection, now: number): void {
    this.pathsRunAt = now;
    if (conn.finished || conn.fallback) return;
    for (const p of this.paths) {
      const sf = p.subflow;
      if (sf !== undefined) {
        // Counted from its first RTO without an ACK since (it is marked stale later: staleAfterRtos).
        if (!sf.stale && sf.rtosInARow === 0) p.staleSince = NEVER;
        else if (p.staleSince === NEVER) p.staleSince = now;
        else if (
          now >= p.staleSince + STALE_REPLACE_MS &&
          conn.subflows.some((s) => s !== sf && !s.stale && s.canCarryData())
        ) {
          // Dead for a whole second while others carry the data: replace it (a new four-tuple
          // also gets a fresh route through an ECMP load balancer).
          conn.counters.staleSubflowsReplaced++;
          p.staleSince = NEVER;
          p.recreating = true;
          p.attemptStart = NEVER;
          sf.handle?.conn.abort();
          sf.handle?.kick();
          continue;
        }
        if (p.attemptStart !== NEVER && now >= p.at && !sf.fullyEstablished) {
          // The attempt's slot ended without a fourth ACK: drop it, the next one starts now.
          p.subflow = undefined;
          p.failures++;
          p.attemptStart = NEVER;
          p.at = now;
          sf.handle?.conn.abort();
          sf.handle?.kick();
        } else continue;
      }
      if (now < p.at || !this.isUp(p.local)) continue;
      // Only beside a subflow that still works (stale or not): once every established subflow
      // has gone, so has the connection (a join then would keep a dead one alive).
      if (!conn.subflows.some((s) => s.fullyEstablished && !s.closed && s !== p.subflow)) continue;
      if (conn.subflows.length >= conn.config.maxSubflows) {
        p.at = now + backoff(p.failures);
        continue;
      }
      const made = this.host.openJoin(conn, p.local, p.remote, p.port);
      conn.counters.joinRetries++;
      p.recreating = true;
      if (made === undefined) {
        p.failures++;
        p.at = now + backoff(p.failures - 1);
        continue;
      }
      p.subflow = made;
      p.attemptStart = now;
      p.at = now + backoff(p.failures);
    }
  }

  private isUp(a: IpAddress): boolean {
    return !this.down.some((d) => addressEqual(d, a));
  }

  private join(
    conn: MptcpConnection,
    local: IpAddress,
    remote: IpAddress,
    port: number,
    remoteId: number,
  ): void {
    const known = this.paths.find(
      (p) => addressEqual(p.local, local) && addressEqual(p.remote, remote) && p.port === port,
    );
    if (known !== undefined) return;
    for (const s of conn.subflows) {
      const h = s.handle;
      if (
        h !== undefined &&
        addressEqual(h.local, local) &&
        addressEqual(h.remote, remote) &&
        h.remotePort === port
      )
        return;
    }
    if (!this.isUp(local)) {
      // Kept for when the address comes back (then tried like a path that worked).
      const p = newPath(local, remote, port, remoteId, undefined);
      p.everUp = true;
      this.paths.push(p);
      return;
    }
    if (conn.subflows.length >= conn.config.maxSubflows) return;
    const sf = this.host.openJoin(conn, local, remote, port);
    if (sf === undefined) return;
    conn.counters.joinsOpened++;
    // The first attempt has TCP's own SYN retries; slots and backoff are for re-creations.
    this.paths.push(newPath(local, remote, port, remoteId, sf));
  }
}

function newPath(
  local: IpAddress,
  remote: IpAddress,
  port: number,
  remoteId: number,
  sf: Subflow | undefined,
): Path {
  return {
    local,
    remote,
    port,
    remoteId,
    subflow: sf,
    failures: 0,
    at: NEVER,
    attemptStart: NEVER,
    recreating: false,
    staleSince: NEVER,
    everUp: sf?.role === 'initial',
  };
}

/** The slot of attempt number `failures` (0: the first): 0.5 s doubling, at most 30 s. */
export function backoff(failures: number): number {
  return Math.min(REJOIN_BACKOFF_MAX_MS, REJOIN_BACKOFF_MIN_MS * 2 ** Math.min(failures, 16));
}

function readU32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
