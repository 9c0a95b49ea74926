/**
 * The one switch between TCP stacks for `mptun perf`: everything above this file sees Duplex
 * streams and a little TCP information, so `--stack kernel` (Node's own sockets) and
 * `--stack user` (mptun's userspace TCP on a TUN) run the same iperf3 code.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { PerfError } from '../../errors.js';
import type { MptcpInfo } from '../../stack/mptcp/connection.js';

/** What the stack can tell about one connection (all optional: not every stack knows all). */
export interface TcpInfo {
  /** Negotiated options, human-readable: 'mss 1448', 'wscale 7/7', 'sack', 'timestamps'. */
  options: string[];
  rttMs?: number;
  rttVarMs?: number;
  /** Segments retransmitted over the connection's life. */
  retransmits?: number;
  /** Congestion window, bytes. */
  cwnd?: number;
  congestion?: string;
}

export interface PerfConnection {
  readonly stream: Duplex;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  tcpInfo(): Promise<TcpInfo | undefined>;
  /** The same, at once, for stacks that can answer without I/O (interval Retr/Cwnd columns). */
  tcpInfoNow?(): TcpInfo;
  /**
   * The MPTCP connection behind the stream (subflows, tokens, fallback), for stacks that speak
   * MPTCP (`--stack user --mptcp`); undefined for plain TCP.
   */
  mptcpInfo?(): MptcpInfo | undefined;
}

export interface PerfListener {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** Give up after this long (ms); the error says the host is unreachable. */
  timeoutMs: number;
  localAddress?: string;
}

/**
 * A stack's own counters (the userspace stack's `stats()`), non-zero ones only: totals since the
 * stack started, so on a server that ran several tests they cover all of them.
 */
export interface StackCounterReport {
  /** The iface's counters (frames, drops before demux, martians, SYN backlog and cookies, ...). */
  counters: Record<string, number>;
  /** Parse failures by codec reason (ipv4.truncated, tcp.bad-option-length, ...). */
  parseErrors: Record<string, number>;
  /** The TCP engine's counters summed over every connection, past and present. */
  tcp: Record<string, number>;
  /** The MPTCP MIB (kernel MPTcpExt names where the meaning is the same), once MPTCP was used. */
  mptcp?: Record<string, number>;
}

export interface PerfStack {
  readonly name: 'kernel' | 'user';
  /** One line for the report, e.g. "kernel (Node.js sockets)". */
  readonly description: string;
  /** Stack-wide counters, for stacks that keep them (`--stack user`; the kernel's are in nstat). */
  counters?(): StackCounterReport;
  connect(host: string, port: number, opts: ConnectOptions): Promise<PerfConnection>;
  listen(
    port: number,
    host: string | undefined,
    onConnection: (c: PerfConnection) => void,
  ): Promise<PerfListener>;
  close(): Promise<void>;
}

/** Turns a socket error into the message a user of iperf3 would expect. */
export function connectError(host: string, port: number, err: NodeJS.ErrnoException): Error {
  const where = `${host} port ${port}`;
  const why: Record<string, string> = {
    ECONNREFUSED: 'connection refused (is a server running there?)',
    ETIMEDOUT: 'timed out (is the host reachable?)',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable (no route to that address)',
    ENOTFOUND: 'unknown host name',
    EAI_AGAIN: 'the host name could not be resolved (temporary DNS failure)',
    ECONNRESET: 'connection reset by the peer',
    EADDRNOTAVAIL: 'the local address is not available',
  };
  const reason = (err.code && why[err.code]) ?? err.message;
  return new PerfError(`unable to connect to ${where}: ${reason}${err.code ? ` (${err.code})` : ''}`, {
    cause: err,
  });
}

/** `--stack kernel`: Node's net sockets; TCP details come from `ss -ti` at the end. */
export class KernelStack implements PerfStack {
  readonly name = 'kernel' as const;
  readonly description = 'kernel (Node.js sockets)';
  private readonly servers = new Set<net.Server>();

  connect(host: string, port: number, opts: ConnectOptions): Promise<PerfConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host,
        port,
        ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
      });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          connectError(host, port, Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })),
        );
      }, opts.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new KernelConnection(socket));
      });
      const onError = (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(connectError(host, port, err));
      };
      socket.once('error', onError);
    });
  }

  listen(
    port: number,
    host: string | undefined,
    onConnection: (c: PerfConnection) => void,
  ): Promise<PerfListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true }, (socket) =>
        onConnection(new KernelConnection(socket)),
      );
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new PerfError(
            `cannot listen on ${host ?? '*'} port ${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`,
            { cause: err },
          ),
        );
      });
      server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
        this.servers.add(server);
        const addr = server.address() as net.AddressInfo;
        resolve({
          address: addr.address,
          port: addr.port,
          close: () => {
            this.servers.delete(server);
            return new Promise<void>((done) => server.close(() => done()));
          },
        });
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    this.servers.clear();
  }
}

class KernelConnection implements PerfConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;

  constructor(readonly stream: net.Socket) {
    this.localAddress = stripV4Mapped(stream.localAddress ?? '');
    this.localPort = stream.localPort ?? 0;
    this.remoteAddress = stripV4Mapped(stream.remoteAddress ?? '');
    this.remotePort = stream.remotePort ?? 0;
  }

  /** Asks the kernel through `ss -ti` (Node has no TCP_INFO); undefined if ss is missing. */
  tcpInfo(): Promise<TcpInfo | undefined> {
    const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
    const args = [
      '-tinH',
      'src',
      ep(this.localAddress, this.localPort),
      'dst',
      ep(this.remoteAddress, this.remotePort),
    ];
    return new Promise((resolve) => {
      execFile('ss', args, { timeout: 5000 }, (err, stdout) => {
        resolve(err ? undefined : parseSsInfo(stdout));
      });
    });
  }
}

function stripV4Mapped(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** Parses the detail line of `ss -ti` (iproute2) for one connection. */
export function parseSsInfo(text: string): TcpInfo | undefined {
  if (text.trim() === '') return undefined;
  const options: string[] = [];
  const mss = /\bmss:(\d+)/.exec(text);
  if (mss) options.push(`mss ${mss[1]}`);
  const ws = /\bwscale:(\d+),(\d+)/.exec(text);
  if (ws) options.push(`wscale ${ws[1]}/${ws[2]}`);
  if (/\bsack\b/.test(text)) options.push('sack');
  if (/\bts\b/.test(text)) options.push('timestamps');
  const info: TcpInfo = { options };
  const rtt = /\brtt:([\d.]+)\/([\d.]+)/.exec(text);
  if (rtt) {
    info.rttMs = Number(rtt[1]);
    info.rttVarMs = Number(rtt[2]);
  }
  // `retrans:current/total`; absent when nothing was ever retransmitted.
  const retrans = /\bretrans:\d+\/(\d+)/.exec(text);
  info.retransmits = retrans ? Number(retrans[1]) : 0;
  const cwnd = /\bcwnd:(\d+)/.exec(text);
  if (cwnd && mss) info.cwnd = Number(cwnd[1]) * Number(mss[1]);
  const cc = /^\s*(\w+)\s+wscale|^\s*(cubic|bbr|reno|bic|htcp|vegas|westwood|dctcp)\b/m.exec(text);
  const name = cc?.[1] ?? cc?.[2];
  if (name) info.congestion = name;
  return info;
}
