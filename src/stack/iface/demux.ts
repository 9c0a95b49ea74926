/**
 * Demultiplexing tables: connections by four-tuple, listeners by port. Lookups take the
 * addresses as they come off a parsed packet (IPv4 as uint32, IPv6 as a 16-byte view) so the
 * packet path allocates nothing; the tables keep their own `IpAddress` copies.
 */
import { bytesEqual16, type IpAddress } from './address.js';

/** The addresses of one received packet: a reused scratch object, views valid for one packet. */
export interface PacketAddresses {
  family: 4 | 6;
  /** IPv4 addresses (family 4). */
  src4: number;
  dst4: number;
  /** IPv6 addresses (family 6): views into the borrowed frame. */
  src6: Uint8Array;
  dst6: Uint8Array;
}

export interface FourTuple {
  readonly local: IpAddress;
  readonly localPort: number;
  readonly remote: IpAddress;
  readonly remotePort: number;
}

function matchesLocal(a: IpAddress, p: PacketAddresses): boolean {
  return a.family === 4 ? p.family === 4 && a.v4 === p.dst4 : p.family === 6 && bytesEqual16(a.v6, p.dst6);
}

function matchesRemote(a: IpAddress, p: PacketAddresses): boolean {
  return a.family === 4 ? p.family === 4 && a.v4 === p.src4 : p.family === 6 && bytesEqual16(a.v6, p.src6);
}

function sameAddress(a: IpAddress, b: IpAddress): boolean {
  if (a.family === 4) return b.family === 4 && a.v4 === b.v4;
  return b.family === 6 && bytesEqual16(a.v6, b.v6);
}

/** Ports packed into one number: the first-level key (no string building per packet). */
function portsKey(localPort: number, remotePort: number): number {
  return localPort * 0x1_0000 + remotePort;
}

/** Connections by four-tuple. */
export class ConnectionTable<E extends FourTuple> {
  private readonly byPorts = new Map<number, E[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The connection a received packet (src = remote, dst = local) belongs to. */
  lookup(p: PacketAddresses, localPort: number, remotePort: number): E | undefined {
    const bucket = this.byPorts.get(portsKey(localPort, remotePort));
    if (bucket === undefined) return undefined;
    for (const e of bucket) if (matchesLocal(e.local, p) && matchesRemote(e.remote, p)) return e;
    return undefined;
  }

  find(t: FourTuple): E | undefined {
    const bucket = this.byPorts.get(portsKey(t.localPort, t.remotePort));
    if (bucket === undefined) return undefined;
    for (const e of bucket) if (sameAddress(e.local, t.local) && sameAddress(e.remote, t.remote)) return e;
    return undefined;
  }

  add(e: E): void {
    const key = portsKey(e.localPort, e.remotePort);
    const bucket = this.byPorts.get(key);
    if (bucket === undefined) this.byPorts.set(key, [e]);
    else bucket.push(e);
    this.count++;
  }

  remove(e: E): boolean {
    const key = portsKey(e.localPort, e.remotePort);
    const bucket = this.byPorts.get(key);
    if (bucket === undefined) return false;
    const i = bucket.indexOf(e);
    if (i < 0) return false;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.byPorts.delete(key);
    this.count--;
    return true;
  }

  /** True when some connection uses this local address and port (for ephemeral port choice). */
  usesLocal(local: IpAddress, localPort: number, remote: IpAddress, remotePort: number): boolean {
    return this.find({ local, localPort, remote, remotePort }) !== undefined;
  }

  *values(): IterableIterator<E> {
    for (const bucket of this.byPorts.values()) yield* bucket;
  }
}

export interface ListenerKey {
  readonly port: number;
  /** Bound to one local address; undefined for all of the stack's addresses. */
  readonly host: IpAddress | undefined;
  /** Accepts a SYN to any address and port (transparent interception). */
  readonly anyDestination: boolean;
}

/**
 * Listeners: by port (a specific address wins over the wildcard), and at most one
 * any-destination listener that takes what no other listener does.
 */
export class ListenerTable<L extends ListenerKey> {
  private readonly byPort = new Map<number, L[]>();
  private any: L | undefined;

  /** The listener for a packet's destination; `ours` says whether that address is the stack's. */
  lookup(p: PacketAddresses, port: number, ours: boolean): L | undefined {
    if (ours) {
      const list = this.byPort.get(port);
      if (list !== undefined) {
        let wildcard: L | undefined;
        for (const l of list) {
          if (l.host === undefined) wildcard = l;
          else if (matchesLocal(l.host, p)) return l;
        }
        if (wildcard !== undefined) return wildcard;
      }
    }
    return this.any;
  }

  /** Whether `add` would clash with an existing listener. */
  conflicts(l: ListenerKey): boolean {
    if (l.anyDestination) return this.any !== undefined;
    const list = this.byPort.get(l.port);
    if (list === undefined) return false;
    return list.some((o) => o.host === undefined || l.host === undefined || sameAddress(o.host, l.host));
  }

  add(l: L): void {
    if (l.anyDestination) {
      this.any = l;
      return;
    }
    const list = this.byPort.get(l.port);
    if (list === undefined) this.byPort.set(l.port, [l]);
    else list.push(l);
  }

  remove(l: L): void {
    if (l.anyDestination) {
      if (this.any === l) this.any = undefined;
      return;
    }
    const list = this.byPort.get(l.port);
    if (list === undefined) return;
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byPort.delete(l.port);
  }

  /** A port some listener occupies on this address (ephemeral ports avoid them). */
  hasPort(port: number): boolean {
    return this.byPort.has(port);
  }

  get hasAnyDestination(): boolean {
    return this.any !== undefined;
  }
}
