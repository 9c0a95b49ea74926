/**
 * `mptun server`: terminates MPTCP on a TUN and hands each connection to the service.
 *
 * The userspace stack owns the VIP (the load-balanced address clients connect to) and the
 * server's unique addresses; unless `hostRoutes` is off, each is routed into the TUN on this
 * host (and those routes are removed on close). One MPTCP listener per --listen port, on every
 * address, with the C flag (no joins to the VIP) and ADD_ADDR of the announced addresses; a
 * client without MPTCP gets plain TCP from the same listener. Each accepted connection is bridged
 * to that port's backend (bridge.ts).
 */
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { HostCommandError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { RealScheduler } from '../../stack/device/clock.js';
import type { Device } from '../../stack/device/device.js';
import { PcapTap } from '../../stack/device/pcap-tap.js';
import { openTun, type TunDevice } from '../../stack/device/tun-device.js';
import { parseAddress } from '../../stack/iface/address.js';
import { TcpStack } from '../../stack/iface/stack.js';
import type { TcpServer, TcpSocket } from '../../stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../stack/mptcp/counters.js';
import { DEFAULT_MPTCP_CONFIG, type MptcpConfig } from '../../stack/mptcp/types.js';
import { Allowlist } from '../convert/allowlist.js';
import { drainThenAbort, settleStack } from '../drain.js';
import { ip } from '../host-net.js';
import { announceText } from '../perf/mptcp-options.js';
import { Bridge, RELAY_TCP } from './bridge.js';
import type { ConverterConfig, ServerConfig } from './config.js';
import { acceptConvert } from './converter.js';
import { encodeProxyV2 } from './proxy-v2.js';

export interface ServerSummary {
  accepted: number;
  mptcp: number;
  fallback: number;
  failed: number;
  /** Converter requests answered with an Error TLV (or dropped before a whole request). */
  refused: number;
  /** Connections cut when the drain timed out. */
  aborted: number;
}

interface Active {
  id: number;
  socket: TcpSocket;
  /** The bridge, or while a converter request is read, what ends it. */
  bridge: Pick<Bridge, 'done' | 'abort'>;
}

function hostRoute(address: string): string {
  return isIP(address) === 6 ? `${address}/128` : `${address}/32`;
}

export class MptunServer {
  private readonly listeners: TcpServer[] = [];
  private readonly active = new Map<number, Active>();
  private nextId = 1;
  private closing: Promise<ServerSummary> | undefined;
  readonly summary: ServerSummary = {
    accepted: 0,
    mptcp: 0,
    fallback: 0,
    failed: 0,
    refused: 0,
    aborted: 0,
  };

  private constructor(
    private readonly config: ServerConfig,
    private readonly log: Logger,
    private readonly tun: TunDevice,
    /** The TUN, or the pcap tap around it (--pcap): what the stack uses and what is closed. */
    private readonly device: Device,
    private readonly stack: TcpStack,
    /** Routes this process added (removed on close). */
    private readonly routes: string[],
  ) {}

  /** Opens the TUN, the stack and the routes, then listens on every --listen port. */
  static async start(config: ServerConfig, log: Logger): Promise<MptunServer> {
    const addresses = [config.vip, ...config.unique];
    const tun = openTun({
      name: config.tun,
      offload: config.offload,
      disableIpv6: !addresses.some((a) => isIP(a) === 6),
    });
    const routes: string[] = [];
    let server: MptunServer | undefined;
    let device: Device = tun;
    try {
      if (config.pcap !== undefined) device = new PcapTap(tun, { path: config.pcap });
      const stack = new TcpStack({ device, scheduler: new RealScheduler(), addresses, tcp: RELAY_TCP });
      server = new MptunServer(config, log, tun, device, stack, routes);
      if (config.hostRoutes) {
        for (const a of addresses) {
          const route = hostRoute(a);
          ip(undefined, ...(isIP(a) === 6 ? ['-6'] : []), 'route', 'replace', route, 'dev', tun.name);
          routes.push(route);
        }
        warnIfNotForwarding(addresses, log);
      }
      server.listen();
      log.info(
        {
          tun: tun.name,
          vip: config.vip,
          unique: config.unique,
          announce: config.announce.map(announceText),
          cFlag: config.cFlag,
          routes,
          listen: config.routes.map(
            (r) =>
              `${r.listen} -> ${r.backend.host}:${r.backend.port}${r.proxyProtocol ? ' (PROXY v2)' : ''}`,
          ),
          ...(config.converter === undefined
            ? {}
            : {
                converter: config.converter.port,
                allow: config.converter.allow.map((a) => a.text),
                psk: config.converter.key !== undefined,
              }),
          ...(config.pcap === undefined ? {} : { pcap: config.pcap }),
          scheduler: config.scheduler ?? DEFAULT_MPTCP_CONFIG.scheduler,
          congestion: config.congestion ?? DEFAULT_MPTCP_CONFIG.congestion,
        },
        'server: listening',
      );
      return server;
    } catch (err) {
      if (server !== undefined) await server.close(0);
      else await device.close();
      throw err;
    }
  }

  private mptcpSettings(): Partial<MptcpConfig> {
    return {
      cFlag: this.config.cFlag,
      checksum: this.config.checksum,
      ...(this.config.scheduler === undefined ? {} : { scheduler: this.config.scheduler }),
      ...(this.config.congestion === undefined ? {} : { congestion: this.config.congestion }),
      announce: this.config.announce.map((a) => ({
        address: parseAddress(a.address),
        ...(a.port === undefined ? {} : { port: a.port }),
      })),
    };
  }

  private listen(): void {
    const mptcp = this.mptcpSettings();
    for (const route of this.config.routes) {
      const l = this.stack.listen({ port: route.listen, mptcp, allowHalfOpen: true }, (s) =>
        this.accept(s, { backend: route.backend, proxyProtocol: route.proxyProtocol }),
      );
      this.listeners.push(l);
    }
    const conv = this.config.converter;
    if (conv !== undefined) {
      const allow = new Allowlist(conv.allow);
      const l = this.stack.listen({ port: conv.port, mptcp, allowHalfOpen: true }, (s) =>
        this.accept(s, { converter: conv, allow }),
      );
      this.listeners.push(l);
    }
  }

  /** PROXY v2 header: the client (initial subflow's source) and the address it connected to. */
  private proxyHeader(socket: TcpSocket, destination?: { host: string; port: number }): Buffer {
    return encodeProxyV2({
      source: { address: socket.remoteAddress, port: socket.remotePort },
      destination:
        destination === undefined
          ? { address: socket.localAddress, port: socket.localPort }
          : { address: destination.host, port: destination.port },
    });
  }

  private accept(
    socket: TcpSocket,
    target:
      | { backend: { host: string; port: number }; proxyProtocol: boolean }
      | { converter: ConverterConfig; allow: Allowlist },
  ): void {
    const id = this.nextId++;
    const mp = (socket.info() as { mptcp?: MptcpInfo }).mptcp;
    const proto = mp === undefined ? 'tcp' : mp.fallback ? 'fallback' : 'mptcp';
    this.summary.accepted++;
    if (proto === 'mptcp') this.summary.mptcp++;
    else this.summary.fallback++;
    const log = this.log.child({ conn: id });
    log.info(
      {
        client: `${socket.remoteAddress}:${socket.remotePort}`,
        local: `${socket.localAddress}:${socket.localPort}`,
        proto,
        ...('backend' in target
          ? { backend: `${target.backend.host}:${target.backend.port}` }
          : { converter: true }),
      },
      'connection accepted',
    );
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    if ('backend' in target) {
      this.bridge(id, socket, log, {
        backend: target.backend,
        header: target.proxyProtocol ? this.proxyHeader(socket) : undefined,
      });
      return;
    }
    const { converter, allow } = target;
    // Counted as active while the request is read, so a drain waits for it too.
    let settle: () => void = () => undefined;
    const pending = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.active.set(id, {
      id,
      socket,
      bridge: { done: pending.then(() => 'ok' as const), abort: () => socket.destroy() },
    });
    void acceptConvert(socket, {
      allow,
      key: converter.key,
      headerTimeoutMs: this.config.backendTimeoutMs,
      connectTimeoutMs: this.config.backendTimeoutMs,
      log,
    }).then((outcome) => {
      this.active.delete(id);
      settle();
      if (!outcome.ok) {
        this.summary.refused++;
        log.warn({ code: outcome.code, reason: outcome.reason }, 'converter: request refused');
        return;
      }
      const { destination } = outcome;
      log.info({ destination: `${destination.host}:${destination.port}` }, 'converter: connected');
      if (this.closing !== undefined) {
        outcome.socket.destroy();
        socket.destroy();
        return;
      }
      this.bridge(id, socket, log, {
        backend: destination,
        connected: outcome.socket,
        header: converter.proxyProtocol ? this.proxyHeader(socket, destination) : undefined,
      });
    });
  }

  private bridge(
    id: number,
    socket: TcpSocket,
    log: Logger,
    o: {
      backend: { host: string; port: number };
      header?: Buffer | undefined;
      connected?: Socket | undefined;
    },
  ): void {
    const bridge = new Bridge({
      front: socket,
      backend: o.backend,
      header: o.header,
      connected: o.connected,
      connectTimeoutMs: this.config.backendTimeoutMs,
      log,
    });
    this.active.set(id, { id, socket, bridge });
    void bridge.done.then((result) => {
      this.active.delete(id);
      const info = (socket.info() as { mptcp?: MptcpInfo }).mptcp;
      // One child logger per subflow ({conn, subflow}): what each path carried.
      if (info !== undefined && log.isLevelEnabled('debug'))
        for (const [i, sf] of info.subflows.entries()) log.child({ subflow: i }).debug(sf, 'subflow');
      const fields = {
        up: bridge.stats.up,
        down: bridge.stats.down,
        ...(info === undefined ? {} : { subflows: info.subflows.length, fallback: info.fallback }),
      };
      if (result === 'ok') log.info(fields, 'connection closed');
      else {
        this.summary.failed++;
        log.warn({ ...fields, err: result.message }, 'connection failed');
      }
    });
  }

  /** Open connections right now. */
  get activeConnections(): number {
    return this.active.size;
  }

  /**
   * Graceful shutdown: stop accepting, wait up to `drainMs` for open connections to finish, cut
   * the rest, then close the stack and the TUN and remove every route this process added.
   */
  close(drainMs = this.config.drainTimeoutMs): Promise<ServerSummary> {
    this.closing ??= this.doClose(drainMs);
    return this.closing;
  }

  private async doClose(drainMs: number): Promise<ServerSummary> {
    for (const l of this.listeners) l.close();
    this.summary.aborted += await drainThenAbort(() => [...this.active.values()].map((a) => a.bridge), {
      what: 'server',
      drainMs,
      log: this.log,
    });
    await settleStack(this.stack, { what: 'server', log: this.log });
    const mib = this.stack.stats().mptcp;
    this.stack.destroy();
    for (const route of this.routes.splice(0)) {
      try {
        ip(undefined, ...(route.includes(':') ? ['-6'] : []), 'route', 'del', route, 'dev', this.tun.name);
      } catch (err) {
        // A TUN we created takes its routes with it when it closes; only report what is left.
        if (!(err instanceof HostCommandError) || this.tun.created === false)
          this.log.warn({ route, err: (err as Error).message }, 'server: could not remove a route');
      }
    }
    await this.device.close();
    this.log.info(
      { ...this.summary, ...(mib === undefined ? {} : { mptcpMib: mptcpCounterSet.nonZero(mib) }) },
      'server: stopped',
    );
    return this.summary;
  }
}

/** Routed addresses reach the TUN only if this host forwards; say so with the fix. */
function warnIfNotForwarding(addresses: string[], log: Logger): void {
  const check = (file: string, family: string, key: string) => {
    let value: string;
    try {
      value = readFileSync(file, 'utf8').trim();
    } catch (err) {
      log.debug({ file, err: (err as Error).message }, 'server: cannot read a forwarding sysctl');
      return;
    }
    if (value === '0')
      log.warn(
        `server: ${family} forwarding is off, so packets from other hosts to the VIP never reach the TUN; sysctl -w ${key}=1`,
      );
  };
  if (addresses.some((a) => isIP(a) === 4))
    check('/proc/sys/net/ipv4/ip_forward', 'IPv4', 'net.ipv4.ip_forward');
  if (addresses.some((a) => isIP(a) === 6))
    check('/proc/sys/net/ipv6/conf/all/forwarding', 'IPv6', 'net.ipv6.conf.all.forwarding');
}
