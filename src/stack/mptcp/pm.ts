/**
 * The path manager of one connection: reacts to events (established, ADD_ADDR and its echo,
 * subflows up and down, timers) by announcing addresses and opening subflows; it never touches
 * bytes (Linux's pm_netlink.c in-kernel manager, with the load-balancer behaviour of Duchene &
 * Bonaventure, ICNP 2017):
 * - server: right after the handshake, announce each configured unique address (ADD_ADDR with
 *   HMAC, retransmitted until echoed: the original plus `addAddrRetries`);
 * - client: join every announced address from each local address of its family; join the
 *   peer's initial address from our other addresses only when the peer did not set C.
 */
import { addressBytes, addressEqual, type IpAddress, v4, v6 } from '../iface/address.js';
import type { AddAddrOption } from '../wire/mptcp-options.js';
import type { MptcpConnection } from './connection.js';
import type { Subflow } from './subflow.js';

const NEVER = Number.POSITIVE_INFINITY;

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

export class PathManager {
  private readonly pending: PendingAnnouncement[] = [];
  private addAddrAccepted = 0;

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
    // Client, peer without C: subflows to its initial address from our other addresses.
    const h = initial.handle;
    if (h === undefined) return;
    if (conn.peerCFlag) {
      conn.counters.joinsSkippedCFlag++;
      return;
    }
    for (const local of this.host.addresses) {
      if (local.family !== h.remote.family || addressEqual(local, h.local)) continue;
      this.join(conn, local, h.remote, h.remotePort);
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
      this.join(conn, local, remote, port);
    }
  }

  onAddAddrEcho(_conn: MptcpConnection, opt: AddAddrOption): void {
    const i = this.pending.findIndex(
      (p) => p.option.addressId === opt.addressId && bytesEqual(p.option.address, opt.address),
    );
    if (i >= 0) this.pending.splice(i, 1);
  }

  onSubflowEstablished(_conn: MptcpConnection, _sf: Subflow): void {
    // Nothing yet: a manager that prefers some paths would start measuring here.
  }

  onSubflowClosed(_conn: MptcpConnection, _sf: Subflow): void {
    // Nothing yet: re-creating a subflow when its path returns is the next issue's.
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
  }

  pollAt(_conn: MptcpConnection): number {
    let at = NEVER;
    for (const p of this.pending) if (p.at < at) at = p.at;
    return at;
  }

  private join(conn: MptcpConnection, local: IpAddress, remote: IpAddress, port: number): void {
    if (conn.subflows.length >= conn.config.maxSubflows) return;
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
    if (this.host.openJoin(conn, local, remote, port) !== undefined) conn.counters.joinsOpened++;
  }
}

function readU32(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
