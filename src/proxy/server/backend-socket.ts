/**
 * Kernel TCP connections to a backend whose reads land in pooled slabs (Node's `onread`
 * option, slab-pool.ts's SlabReadArena). Node's own reads allocate a fresh 64 KB ArrayBuffer
 * each: at Gbit/s rates that garbage ran V8 into a full collection every ~150 ms. Such a socket
 * emits no 'data' events: its bytes go to the sink the bridge attaches; until then the first
 * read is held and reading paused (a backend that speaks first, like an SSH server, waits).
 */
import { connect, type Socket } from 'node:net';
import { SlabReadArena } from '../../stack/tcp/slab-pool.js';

/** Takes a chunk read from the backend; false: stop reading until the socket is resumed. */
export type ReadSink = (chunk: Buffer) => boolean;

export class PooledReads {
  private sink: ReadSink | undefined;
  private held: Buffer[] = [];

  constructor(private readonly socket: Socket) {}

  /** @internal A read brought `chunk`; false stops reading. */
  deliver(chunk: Buffer): boolean {
    if (this.sink !== undefined) return this.sink(chunk);
    this.held.push(chunk);
    return false;
  }

  /** From now on the bytes go to `sink`, the held ones first. */
  attach(sink: ReadSink): void {
    this.sink = sink;
    let more = true;
    for (const chunk of this.held.splice(0)) more = sink(chunk);
    if (more) this.socket.resume();
  }
}

const readers = new WeakMap<Socket, PooledReads>();

/** net.connect to host:port (half-open capable), its reads into pooled slabs. */
export function connectBackend(host: string, port: number): Socket {
  const arena = new SlabReadArena();
  let reads: PooledReads | undefined;
  const socket = connect({
    host,
    port,
    allowHalfOpen: true,
    onread: { buffer: () => arena.next(), callback: (n: number) => reads!.deliver(arena.filled(n)) },
  });
  reads = new PooledReads(socket);
  readers.set(socket, reads);
  return socket;
}

/** The pooled reads of a socket made by connectBackend (undefined for any other stream). */
export function pooledReads(socket: object): PooledReads | undefined {
  return readers.get(socket as Socket);
}
