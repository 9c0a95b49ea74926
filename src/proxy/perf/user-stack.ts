/**
 * `--stack user`: mptun's userspace TCP (src/stack/iface) on a TUN. The stack owns the --addr
 * addresses; unless --no-routes, the host routes them into the TUN so the kernel (and whatever
 * it forwards for) reaches the stack. Routes we add are removed on close.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PerfError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { RealScheduler } from '../../stack/device/clock.js';
import { openTun, type TunDevice } from '../../stack/device/tun-device.js';
import { parseAddress } from '../../stack/iface/address.js';
import {
  type ConnectOptions as StackConnectOptions,
  stackCounterSet,
  TcpStack,
} from '../../stack/iface/stack.js';
import type { TcpSocket } from '../../stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../stack/mptcp/counters.js';
import { DEFAULT_MPTCP_CONFIG, type MptcpConfig } from '../../stack/mptcp/types.js';
import { tcpCounterSet } from '../../stack/tcp/counters.js';
import { SETTLE_MS } from '../drain.js';
import { ip } from '../host-net.js';
import {
  announceText,
  checkAnnounce,
  checkCongestionFlag,
  checkSchedulerFlags,
  type PerfMptcpOptions,
} from './mptcp-options.js';
import {
  type ConnectOptions,
  connectError,
  type PerfConnection,
  type PerfListener,
  type PerfStack,
  type StackCounterReport,
  type TcpInfo,
} from './stack.js';

export interface UserStackOptions {
  tun: string;
  /** IP or IP/PREFIX, at least one. */
  addresses: string[];
  /** Route each address (or its prefix) into the TUN. */
  routes: boolean;
  offload: boolean;
  /** Open the TUN in this namespace (default: the current one); routes go there too. */
  netns?: string;
  /**
   * Multipath TCP (`--mptcp`): connections offer it (the initial subflow leaves from the first
   * address, joins from the others), listeners accept it with these settings.
   */
  mptcp?: PerfMptcpOptions;
}

export interface ParsedAddress {
  address: string;
  family: 4 | 6;
  prefix: number;
  /** The route that reaches it: the address itself, or its network when a prefix was given. */
  route: string;
}

/** Parses `IP[/PREFIX]`; throws PerfError with the reason. */
export function parseStackAddress(text: string): ParsedAddress {
  const [address = '', prefixText, ...extra] = text.split('/');
  const family = isIP(address);
  if (family === 0 || extra.length > 0)
    throw new PerfError(`--addr '${text}': not an IP address or IP/PREFIX`);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText ?? '0').trim() === '')
    throw new PerfError(`--addr '${text}': the prefix must be 0-${max}`);
  return {
    address,
    family: family as 4 | 6,
    prefix,
    route: `${networkOf(address, family as 4 | 6, prefix)}/${prefix}`,
  };
}

function networkOf(address: string, family: 4 | 6, prefix: number): string {
  if (family === 6) return address; // iproute2 accepts host bits in IPv6 prefixes
  const n = address.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (n & mask) >>> 0;
  return [net >>> 24, (net >>> 16) & 0xff, (net >>> 8) & 0xff, net & 0xff].join('.');
}

export async function openUserStack(o: UserStackOptions, log: Logger): Promise<PerfStack> {
  const parsed = o.addresses.map(parseStackAddress);
  if (o.mptcp !== undefined) {
    const why =
      checkAnnounce(o.mptcp.announce.map(announceText), o.addresses) ??
      checkSchedulerFlags(o.mptcp.scheduler, o.mptcp.backup ?? [], o.addresses, true) ??
      checkCongestionFlag(o.mptcp.congestion, true);
    if (why !== undefined) throw new PerfError(why);
  }
  // IPv6 stays on only when the stack owns an IPv6 address (otherwise router solicitations
  // would be the only IPv6 the TUN ever sees).
  const tun = openTun({
    name: o.tun,
    offload: o.offload,
    disableIpv6: !parsed.some((p) => p.family === 6),
    ...(o.netns === undefined ? {} : { netns: o.netns }),
  });
  const routes: string[] = [];
  try {
    const stack = new TcpStack({
      device: tun,
      scheduler: new RealScheduler(),
      // With the prefix, so the stack knows its subnet's broadcast (dropped as a martian).
      addresses: parsed.map((p) => `${p.address}/${p.prefix}`),
    });
    if (o.routes) {
      for (const p of parsed) {
        if (routes.includes(p.route)) continue;
        ip(o.netns, ...(p.family === 6 ? ['-6'] : []), 'route', 'replace', p.route, 'dev', tun.name);
        routes.push(p.route);
      }
      for (const p of parsed) warnIfNoSourceAddress(o.netns, p.address, p.family, tun.name, log);
    }
    log.info(
      { tun: tun.name, offload: o.offload, addresses: parsed.map((p) => p.address), routes },
      'perf: userspace stack up',
    );
    return new UserStack(stack, tun, routes, o, parsed, log);
  } catch (err) {
    await tun.close();
    throw err;
  }
}

class UserStack implements PerfStack {
  readonly name = 'user' as const;
  readonly description: string;
  private closed = false;

  constructor(
    private readonly stack: TcpStack,
    private readonly tun: TunDevice,
    private readonly routes: string[],
    private readonly o: UserStackOptions,
    private readonly parsed: ParsedAddress[],
    private readonly log: Logger,
  ) {
    const addrs = parsed.map((p) => p.address).join(', ');
    const mp = o.mptcp;
    const mpText =
      mp === undefined
        ? ''
        : `; listeners: C flag ${mp.cFlag ? 'on' : 'off'}${mp.announce.length > 0 ? `, announces ${mp.announce.map(announceText).join(', ')}` : ''}${mp.checksum ? '; DSS checksums required' : ''}; scheduler ${mp.scheduler ?? 'lowest-rtt'}${(mp.backup ?? []).length > 0 ? `; backup ${(mp.backup ?? []).join(', ')}` : ''}; congestion ${mp.congestion ?? DEFAULT_MPTCP_CONFIG.congestion}`;
    this.description = `user (mptun ${mp ? 'MPTCP' : 'TCP'} on TUN ${tun.name}${o.offload ? ' with offload' : ''}, ${addrs}${mpText})`;
  }

  /** connect()'s MPTCP settings, undefined without --mptcp. */
  private connectMptcp(): StackConnectOptions['mptcp'] {
    const mp = this.o.mptcp;
    return mp === undefined ? undefined : { checksum: mp.checksum, ...this.schedulerMptcp() };
  }

  /** `--scheduler` and `--backup`, for connections and listeners alike. */
  private schedulerMptcp(): Partial<MptcpConfig> {
    const mp = this.o.mptcp;
    return {
      ...(mp?.scheduler === undefined ? {} : { scheduler: mp.scheduler }),
      ...(mp?.congestion === undefined ? {} : { congestion: mp.congestion }),
      ...(mp?.backup === undefined ? {} : { backupAddresses: mp.backup.map((a) => parseAddress(a)) }),
    };
  }

  /** listen()'s MPTCP settings: the C flag and the announced unique addresses. */
  private listenMptcp(): Partial<MptcpConfig> | undefined {
    const mp = this.o.mptcp;
    if (mp === undefined) return undefined;
    return {
      cFlag: mp.cFlag,
      checksum: mp.checksum,
      ...this.schedulerMptcp(),
      announce: mp.announce.map((a) => ({
        address: parseAddress(a.address),
        ...(a.port === undefined ? {} : { port: a.port }),
      })),
    };
  }

  counters(): StackCounterReport {
    const s = this.stack.stats();
    const parseErrors: Record<string, number> = {};
    for (const [reason, n] of Object.entries(s.parseErrors)) if (n !== 0) parseErrors[reason] = n;
    return {
      counters: stackCounterSet.nonZero(s.counters) as Record<string, number>,
      parseErrors,
      tcp: tcpCounterSet.nonZero(s.tcp) as Record<string, number>,
      ...(s.mptcp === undefined ? {} : { mptcp: mptcpCounterSet.nonZero(s.mptcp) as Record<string, number> }),
    };
  }

  async connect(host: string, port: number, opts: ConnectOptions): Promise<PerfConnection> {
    let address = host;
    if (isIP(host) === 0) {
      try {
        address = (await lookup(host)).address;
      } catch (err) {
        throw connectError(host, port, err as NodeJS.ErrnoException);
      }
    }
    const mptcp = this.connectMptcp();
    // MPTCP: the initial subflow leaves from the first --addr of the server's family; the path
    // manager joins from the others.
    const family = isIP(address);
    const localAddress =
      opts.localAddress ??
      (mptcp === undefined ? undefined : this.parsed.find((p) => p.family === family)?.address);
    return new Promise((resolve, reject) => {
      let socket: TcpSocket;
      try {
        socket = this.stack.connect({
          host: address,
          port,
          ...(localAddress === undefined ? {} : { localAddress }),
          ...(mptcp === undefined ? {} : { mptcp }),
        });
      } catch (err) {
        reject(
          new PerfError(`unable to connect to ${host} port ${port}: ${(err as Error).message}`, {
            cause: err,
          }),
        );
        return;
      }
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          connectError(host, port, Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })),
        );
      }, opts.timeoutMs);
      const onError = (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(connectError(host, port, err));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new UserConnection(socket));
      });
    });
  }

  async listen(
    port: number,
    host: string | undefined,
    onConnection: (c: PerfConnection) => void,
  ): Promise<PerfListener> {
    let server: ReturnType<TcpStack['listen']>;
    try {
      const mptcp = this.listenMptcp();
      server = this.stack.listen(
        { port, ...(host === undefined ? {} : { host }), ...(mptcp === undefined ? {} : { mptcp }) },
        (s) => onConnection(new UserConnection(s)),
      );
    } catch (err) {
      throw new PerfError(`cannot listen on ${host ?? '*'} port ${port}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return {
      address: host ?? '*',
      port,
      close: () => new Promise<void>((done) => server.close(() => done())),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Ended connections still owe their FIN exchange (destroy() would reset them).
    await this.stack.settle(SETTLE_MS);
    this.stack.destroy();
    // A TUN we created disappears with its routes; one we attached to keeps them, so remove ours.
    for (const route of this.routes) {
      if (!this.tun.created) {
        try {
          ip(this.o.netns, 'route', 'del', route, 'dev', this.tun.name);
        } catch (err) {
          this.log.warn({ route, err: (err as Error).message }, 'perf: could not remove a route');
        }
      }
    }
    await this.tun.close();
  }
}

class UserConnection implements PerfConnection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;

  constructor(readonly stream: TcpSocket) {
    this.localAddress = stream.localAddress;
    this.localPort = stream.localPort;
    this.remoteAddress = stream.remoteAddress;
    this.remotePort = stream.remotePort;
  }

  async tcpInfo(): Promise<TcpInfo | undefined> {
    return this.tcpInfoNow();
  }

  mptcpInfo(): MptcpInfo | undefined {
    // An MPTCP connection's info carries `mptcp` (one that fell back too, with fallback set).
    return (this.stream.info() as { mptcp?: MptcpInfo }).mptcp;
  }

  tcpInfoNow(): TcpInfo {
    const i = this.stream.info();
    const options = [`mss ${i.sendMss}${i.peerMss === undefined ? '' : ` (peer ${i.peerMss})`}`];
    if (i.sndWindowScale !== undefined && i.rcvWindowScale !== undefined)
      options.push(`wscale ${i.sndWindowScale}/${i.rcvWindowScale}`);
    if (i.sack) options.push('sack');
    if (i.timestamps) options.push('timestamps');
    return {
      options,
      ...(i.srtt === undefined ? {} : { rttMs: i.srtt }),
      ...(i.rttvar === undefined ? {} : { rttVarMs: i.rttvar }),
      retransmits: i.retransmitSegments,
      cwnd: i.cwnd,
      congestion: i.congestion,
    };
  }
}

/**
 * A host with no address of its own (only loopback) would send to the TUN from 127.0.0.1 or
 * ::1, and the kernel drops our replies to that as martians: connections just time out. Say so,
 * with the fix, instead of leaving the user to a packet capture.
 */
function warnIfNoSourceAddress(
  netns: string | undefined,
  address: string,
  family: number,
  tun: string,
  log: Logger,
): void {
  const route = ip(netns, ...(family === 6 ? ['-6'] : []), 'route', 'get', address);
  const src = /\bsrc (\S+)/.exec(route)?.[1];
  if (src === undefined || src.startsWith('127.') || src === '::1') {
    const example = family === 6 ? 'fd00:64::1/128' : '100.64.0.1/32';
    log.warn(
      { address, src: src ?? null },
      `perf: this host has no address to reach ${address} from, so local clients will time out; give the TUN one (ip addr add ${example} dev ${tun}) or use --no-routes and wire the host yourself`,
    );
  }
}
