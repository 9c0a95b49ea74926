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
import { isIP } from 'node:net';
import { HostCommandError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { RealScheduler } from '../../stack/device/clock.js';
import { openTun, type TunDevice } from '../../stack/device/tun-device.js';
import { parseAddress } from '../../stack/iface/address.js';
import { TcpStack } from '../../stack/iface/stack.js';
import type { TcpServer, TcpSocket } from '../../stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../stack/mptcp/counters.js';
import type { MptcpConfig } from '../../stack/mptcp/types.js';
import { ip } from '../host-net.js';
import { announceText } from '../perf/mptcp-options.js';
import { Bridge } from './bridge.js';
import type { ServerConfig } from './config.js';

export interface ServerSummary {
  accepted: number;
  mptcp: number;
  fallback: number;
  failed: number;
  /** Connections cut when the drain timed out. */
  aborted: number;
}

interface Active {
  id: number;
  socket: TcpSocket;
  bridge: Bridge;
}

function hostRoute(address: string): string {
  return isIP(address) === 6 ? `${address}/128` : `${address}/32`;
}

export class MptunServer {
  private readonly listeners: TcpServer[] = [];
  private readonly active = new Map<number, Active>();
  private nextId = 1;
  private closing: Promise<ServerSummary> | undefined;
  readonly summary: ServerSummary = { accepted: 0, mptcp: 0, fallback: 0, failed: 0, aborted: 0 };

  private constructor(
    private readonly config: ServerConfig,
    private readonly log: Logger,
    private readonly tun: TunDevice,
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
    try {
      const stack = new TcpStack({ device: tun, scheduler: new RealScheduler(), addresses });
      server = new MptunServer(config, log, tun, stack, routes);
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
          listen: config.routes.map((r) => `${r.listen} -> ${r.backend.host}:${r.backend.port}`),
        },
        'server: listening',
      );
      return server;
    } catch (err) {
      if (server !== undefined) await server.close(0);
      else await tun.close();
      throw err;
    }
  }

  private mptcpSettings(): Partial<MptcpConfig> {
    return {
      cFlag: this.config.cFlag,
      checksum: this.config.checksum,
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
        this.accept(s, route.backend),
      );
      this.listeners.push(l);
    }
  }

  private accept(socket: TcpSocket, backend: { host: string; port: number }): void {
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
        backend: `${backend.host}:${backend.port}`,
      },
      'connection accepted',
    );
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const bridge = new Bridge({
      front: socket,
      backend,
      connectTimeoutMs: this.config.backendTimeoutMs,
      log,
    });
    this.active.set(id, { id, socket, bridge });
    void bridge.done.then((result) => {
      this.active.delete(id);
      const info = (socket.info() as { mptcp?: MptcpInfo }).mptcp;
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
    if (this.active.size > 0) {
      this.log.info({ open: this.active.size, drainMs }, 'server: draining');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      });
      await Promise.race([Promise.all([...this.active.values()].map((a) => a.bridge.done)), timeout]);
      clearTimeout(timer);
      for (const a of this.active.values()) {
        this.summary.aborted++;
        a.bridge.abort(new Error('server shutting down: drain timed out'));
      }
      await Promise.all([...this.active.values()].map((a) => a.bridge.done));
    }
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
    await this.tun.close();
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
