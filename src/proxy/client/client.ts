/**
 * `mptun client` (transparent mode): terminates the app's TCP connections on a TUN and carries
 * each one over MPTCP to the connection's own destination.
 *
 * One userspace stack on one TUN does both sides. Its addresses are the per-path stack addresses;
 * an any-destination listener takes every SYN the kernel routes into the TUN (the intercepted
 * prefixes), and the socket's localAddress/localPort is the app's original destination. For each
 * one the stack opens an MPTCP connection to that destination from the first path's address; the
 * path manager joins from the other addresses (the peer's announced addresses, or its initial
 * address when it did not set the C flag). The two sockets are bridged by the server's Bridge
 * (pipeline both ways, half-close, a failure on one side resets the other): if the destination
 * refuses or does not answer, the app's connection is reset.
 *
 * Converter mode (--server, RFC 8803): the MPTCP connection goes to the mptun server's converter
 * port instead, and its first bytes are a Convert request naming the app's original destination
 * (with the pre-shared key's authentication TLV when --psk-file is given). The converter's reply
 * is read before any of the app's bytes are passed on: a bare Convert header means connected (the
 * bytes after it are the destination's), an Error TLV (or a malformed reply) resets the app's
 * connection, which is what RFC 8803 has the client do, since the app's handshake with our stack
 * has completed already and the failure can only be reported as a reset.
 */
import { isIP } from 'node:net';
import type { Logger } from '../../log.js';
import { RealScheduler } from '../../stack/device/clock.js';
import type { Device } from '../../stack/device/device.js';
import { PcapTap } from '../../stack/device/pcap-tap.js';
import { openTun } from '../../stack/device/tun-device.js';
import { parseAddress } from '../../stack/iface/address.js';
import { TcpStack } from '../../stack/iface/stack.js';
import type { TcpServer, TcpSocket } from '../../stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../stack/mptcp/counters.js';
import { DEFAULT_MPTCP_CONFIG, type MptcpConfig } from '../../stack/mptcp/types.js';
import { convertRequest, parseConvertReply } from '../convert/client.js';
import { drainThenAbort, settleStack } from '../drain.js';
import { Bridge, RELAY_TCP } from '../server/bridge.js';
import { type ClientConfig, type ClientPath, cidrContains, cidrText } from './config.js';
import { LinkWatch, type PathState } from './link-watch.js';
import { ClientPlumbing, checkRoutesWired, resolvePaths } from './plumbing.js';

export interface ClientSummary {
  /** App connections the TUN delivered. */
  intercepted: number;
  /** Of those, carried over MPTCP (the peer answered MP_CAPABLE). */
  mptcp: number;
  /** Carried over plain TCP (the peer has no MPTCP, or it was stripped on the way). */
  fallback: number;
  /** Bridges that ended with an error (destination refused or timed out, a reset). */
  failed: number;
  /** Reset at once: a destination outside --intercept (e.g. one of the stack's own addresses). */
  refused: number;
  /** Cut when the drain on SIGTERM/SIGINT timed out. */
  aborted: number;
  /** Converter mode: answered with an Error TLV (or a malformed reply); the app was reset. */
  convertRefused: number;
}

interface Active {
  bridge: Bridge;
  wire: TcpSocket;
  log: Logger;
}

export class MptunClient {
  private listener: TcpServer | undefined;
  private watch: LinkWatch | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private readonly active = new Map<number, Active>();
  /** Converter mode: wire sockets still waiting for the converter's reply. */
  private readonly pending = new Set<TcpSocket>();
  private nextId = 1;
  /** Path state changes handed to the stack (path following). */
  private pathEvents = 0;
  private closing: Promise<ClientSummary> | undefined;
  readonly summary: ClientSummary = {
    intercepted: 0,
    mptcp: 0,
    fallback: 0,
    failed: 0,
    refused: 0,
    aborted: 0,
    convertRefused: 0,
  };
  /** What each MPTCP connection opens with: --checksum, --scheduler, --congestion, --backup. */
  private readonly mptcp: Partial<MptcpConfig>;

  private constructor(
    private readonly config: ClientConfig,
    private readonly log: Logger,
    /** The TUN, or the pcap tap around it (--pcap): what the stack uses and what is closed. */
    private readonly device: Device,
    private readonly stack: TcpStack,
    private readonly plumbing: ClientPlumbing | undefined,
  ) {
    this.mptcp = {
      checksum: config.checksum,
      ...(config.scheduler === undefined ? {} : { scheduler: config.scheduler }),
      ...(config.congestion === undefined ? {} : { congestion: config.congestion }),
      backupAddresses: config.backupAddresses.map((a) => parseAddress(a)),
    };
  }

  /** Checks the paths, opens the TUN and the stack, plumbs the host, then intercepts. */
  static async start(config: ClientConfig, log: Logger): Promise<MptunClient> {
    // Host facts first (interfaces, gateways): a mistake there leaves nothing to undo.
    const paths = config.hostRoutes ? resolvePaths(config.paths) : [];
    // IPv6 on the TUN only when v6 connections are intercepted (else the kernel's router
    // solicitations would land in it).
    const v6 = config.intercept.some((c) => c.family === 6);
    const tun = openTun({ name: config.tun, offload: config.offload, disableIpv6: !v6 });
    let plumbing: ClientPlumbing | undefined;
    let client: MptunClient | undefined;
    let device: Device = tun;
    try {
      if (config.pcap !== undefined) device = new PcapTap(tun, { path: config.pcap });
      const stack = new TcpStack({
        device,
        scheduler: new RealScheduler(),
        addresses: config.addresses,
        tcp: RELAY_TCP,
      });
      if (config.hostRoutes) plumbing = ClientPlumbing.setUp(config, paths, tun.name, log);
      else checkRoutesWired(config, tun.name, log);
      client = new MptunClient(config, log, device, stack, plumbing);
      client.listen();
      if (config.hostRoutes) client.follow(paths);
      if (config.statsIntervalMs > 0) {
        const c = client;
        c.statsTimer = setInterval(() => c.logStats(), config.statsIntervalMs);
      }
      log.info(
        {
          tun: tun.name,
          intercept: config.intercept.map(cidrText),
          addresses: config.addresses,
          paths: paths.map((p) => `${p.iface} via ${p.gateway} from ${p.address}`),
          ...(plumbing === undefined ? {} : { plumbed: plumbing.report }),
          ...(config.converter === undefined
            ? {}
            : {
                converter: `${config.converter.server.host}:${config.converter.server.port}`,
                psk: config.converter.key !== undefined,
              }),
          ...(config.pcap === undefined ? {} : { pcap: config.pcap }),
          scheduler: config.scheduler ?? DEFAULT_MPTCP_CONFIG.scheduler,
          congestion: config.congestion ?? DEFAULT_MPTCP_CONFIG.congestion,
          ...(config.backupAddresses.length === 0 ? {} : { backup: config.backupAddresses }),
        },
        'client: intercepting',
      );
      return client;
    } catch (err) {
      if (client !== undefined) await client.close(0);
      else {
        plumbing?.tearDown();
        await device.close();
      }
      throw err;
    }
  }

  private listen(): void {
    this.listener = this.stack.listen({ anyDestination: true, allowHalfOpen: true }, (s) => this.accept(s));
  }

  private accept(app: TcpSocket): void {
    const id = this.nextId++;
    const dst = { host: app.localAddress, port: app.localPort };
    const log = this.log.child({ conn: id });
    if (this.closing !== undefined) {
      app.destroy();
      return;
    }
    if (!this.config.intercept.some((c) => cidrContains(c, dst.host))) {
      this.summary.refused++;
      log.info({ dst: `${dst.host}:${dst.port}` }, 'connection refused: destination outside --intercept');
      app.destroy();
      return;
    }
    const wireHost = this.config.converter?.server.host ?? dst.host;
    const from = this.localFor(wireHost);
    if (from === undefined) {
      this.summary.refused++;
      log.info(
        { dst: `${dst.host}:${dst.port}` },
        `connection refused: no IPv${isIP(wireHost)} stack address to carry it from`,
      );
      app.destroy();
      return;
    }
    this.summary.intercepted++;
    log.info(
      { app: `${app.remoteAddress}:${app.remotePort}`, dst: `${dst.host}:${dst.port}` },
      'connection intercepted',
    );
    if (this.config.converter !== undefined) {
      void this.convert(id, app, dst, log);
      return;
    }
    let wire: TcpSocket | undefined;
    const bridge = new Bridge({
      front: app,
      backend: dst,
      connectTimeoutMs: this.config.connectTimeoutMs,
      log,
      openBack: () => {
        wire = this.stack.connect({
          host: dst.host,
          port: dst.port,
          localAddress: from,
          allowHalfOpen: true,
          mptcp: this.mptcp,
        });
        wire.once('connect', () => {
          const mp = (wire?.info() as { mptcp?: MptcpInfo } | undefined)?.mptcp;
          const proto = mp === undefined || mp.fallback ? 'fallback' : 'mptcp';
          if (proto === 'mptcp') this.summary.mptcp++;
          else this.summary.fallback++;
          log.info({ local: `${wire?.localAddress}:${wire?.localPort}`, proto }, 'MPTCP connection open');
        });
        return wire;
      },
    });
    const w = wire as TcpSocket | undefined;
    if (w === undefined) throw new Error('Bridge did not open the wire side');
    this.track(id, bridge, w, app, log);
  }

  /**
   * Path following (--path mode): an interface going down takes its stack address(es) down in the
   * stack (subflows reset, REMOVE_ADDR to the peer); coming back, its table route is restored and
   * the address is up again (subflows re-created). See link-watch.ts.
   */
  private follow(paths: readonly ClientPath[]): void {
    const watch = new LinkWatch({
      ifaces: paths.map((p) => p.iface),
      log: this.log,
      onChange: (iface, now, before) => {
        const path = paths.find((p) => p.iface === iface);
        if (path !== undefined) this.pathChanged(path, now, before);
      },
    });
    this.watch = watch;
    watch.start();
  }

  private pathChanged(path: ClientPath, now: PathState, before: PathState): void {
    const families: [string, boolean, boolean, 4 | 6][] = [[path.address, now.v4, before.v4, 4]];
    if (path.address6 !== undefined) families.push([path.address6, now.v6, before.v6, 6]);
    const changed = families.filter(([, n, b]) => n !== b);
    if (changed.length === 0) return;
    const back = changed.filter(([, n]) => n).map(([, , , f]) => f);
    if (back.length > 0) {
      try {
        const routes = this.plumbing?.restorePath(path.iface, back) ?? [];
        this.log.info({ iface: path.iface, routes }, 'client: path route restored');
      } catch (err) {
        this.log.warn(
          { iface: path.iface, err: (err as Error).message },
          'client: could not restore the path route; subflows from it may fail until it is back',
        );
      }
    }
    for (const [address, up] of changed) {
      this.stack.setAddressState(address, up ? 'up' : 'down');
      this.pathEvents++;
      this.log.info(
        { iface: path.iface, address, link: now.link, open: this.active.size },
        up ? 'client: path up' : 'client: path down',
      );
    }
  }

  /** The address connections to `host` open from: the first stack address of its family. */
  private localFor(host: string): string | undefined {
    return this.config.addresses.find((a) => isIP(a) === isIP(host));
  }

  /** Opens the wire in its protocol's way for converter mode (see the file's comment). */
  private openWire(host: string, port: number, log: Logger): TcpSocket {
    const wire = this.stack.connect({
      host,
      port,
      localAddress: this.localFor(host),
      allowHalfOpen: true,
      mptcp: this.mptcp,
    });
    wire.once('connect', () => {
      const mp = (wire.info() as { mptcp?: MptcpInfo } | undefined)?.mptcp;
      const proto = mp === undefined || mp.fallback ? 'fallback' : 'mptcp';
      if (proto === 'mptcp') this.summary.mptcp++;
      else this.summary.fallback++;
      log.info({ local: `${wire.localAddress}:${wire.localPort}`, proto }, 'MPTCP connection open');
    });
    return wire;
  }

  /**
   * Converter mode: MPTCP to --server, the Convert request first, the reply read before the
   * bridge starts; on an Error TLV, a malformed reply, a failure or a timeout the app is reset.
   */
  private async convert(
    id: number,
    app: TcpSocket,
    dst: { host: string; port: number },
    log: Logger,
  ): Promise<void> {
    const conv = this.config.converter;
    if (conv === undefined) return;
    const wire = this.openWire(conv.server.host, conv.server.port, log);
    this.pending.add(wire);
    wire.write(convertRequest(dst, { key: conv.key }));
    const outcome = await new Promise<{ ok: true; rest: Buffer } | { ok: false; reason: string }>(
      (resolve) => {
        let buf = Buffer.alloc(0);
        const timer = setTimeout(
          () => finish({ ok: false, reason: `no Convert reply within ${this.config.connectTimeoutMs} ms` }),
          this.config.connectTimeoutMs,
        );
        const finish = (r: { ok: true; rest: Buffer } | { ok: false; reason: string }) => {
          clearTimeout(timer);
          wire.off('data', onData);
          wire.off('error', onError);
          wire.off('end', onEnd);
          wire.off('close', onClose);
          app.off('close', onAppClose);
          app.off('error', onAppError);
          resolve(r);
        };
        const onData = (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const r = parseConvertReply(buf);
          if (r.state === 'truncated') return;
          wire.pause();
          if (r.state === 'connected') finish({ ok: true, rest: buf.subarray(r.length) });
          else if (r.state === 'error') {
            this.summary.convertRefused++;
            finish({ ok: false, reason: `converter answered Error TLV ${r.code} (${r.name})` });
          } else {
            this.summary.convertRefused++;
            finish({ ok: false, reason: `malformed Convert reply: ${r.reason}` });
          }
        };
        const onError = (err: Error) => finish({ ok: false, reason: err.message });
        const onEnd = () => finish({ ok: false, reason: 'the converter closed before its reply' });
        const onClose = () => finish({ ok: false, reason: 'the converter connection closed' });
        const onAppError = (err: Error) => finish({ ok: false, reason: `app: ${err.message}` });
        const onAppClose = () => finish({ ok: false, reason: 'the app left before the converter answered' });
        wire.on('data', onData);
        wire.once('error', onError);
        wire.once('end', onEnd);
        wire.once('close', onClose);
        app.once('close', onAppClose);
        app.once('error', onAppError);
      },
    );
    this.pending.delete(wire);
    if (!outcome.ok || this.closing !== undefined) {
      const reason = outcome.ok ? 'client shutting down' : outcome.reason;
      this.summary.failed++;
      log.warn({ dst: `${dst.host}:${dst.port}`, err: reason }, 'connection failed: converter');
      app.destroy(); // our stack's TcpSocket resets on destroy
      wire.destroy();
      return;
    }
    log.info({ dst: `${dst.host}:${dst.port}` }, 'converter connected');
    if (outcome.rest.length > 0) wire.unshift(outcome.rest);
    const bridge = new Bridge({
      front: app,
      backend: conv.server,
      connectTimeoutMs: this.config.connectTimeoutMs,
      log,
      connected: wire,
    });
    this.track(id, bridge, wire, app, log);
  }

  private track(id: number, bridge: Bridge, w: TcpSocket, app: TcpSocket, log: Logger): void {
    this.active.set(id, { bridge, wire: w, log });
    // Subflows close with the connection: the most seen at either end of stream is what it used.
    let peak: { subflows: string[]; fallback: boolean } | undefined;
    const sample = () => {
      const info = (w.info() as { mptcp?: MptcpInfo }).mptcp;
      if (info === undefined) return;
      const subflows = info.subflows.map((f) => `${f.local}->${f.remote}`);
      if (peak === undefined || subflows.length > peak.subflows.length)
        peak = { subflows, fallback: info.fallback };
    };
    app.once('end', sample);
    w.once('end', sample);
    void bridge.done.then((result) => {
      this.active.delete(id);
      sample();
      const fields = {
        up: bridge.stats.up,
        down: bridge.stats.down,
        ...(peak === undefined
          ? {}
          : { subflows: peak.subflows.length, paths: peak.subflows, fallback: peak.fallback }),
      };
      if (result === 'ok') log.info(fields, 'connection closed');
      else {
        this.summary.failed++;
        log.warn({ ...fields, err: result.message }, 'connection failed');
      }
    });
  }

  /**
   * --stats-interval: each open connection's bytes per subflow, as counted at the TCP level (sent
   * and acknowledged, received), on its own logger. What the demo plots per subflow.
   */
  private logStats(): void {
    for (const a of this.active.values()) {
      const info = (a.wire.info() as { mptcp?: MptcpInfo }).mptcp;
      if (info === undefined) continue;
      a.log.info(
        {
          bytesSent: info.bytesSent,
          bytesReceived: info.bytesReceived,
          subflows: info.subflows.map((f) => ({
            id: f.id,
            path: `${f.local}->${f.remote}`,
            acked: f.info.bytesAcked,
            received: f.info.bytesReceived,
          })),
        },
        'connection stats',
      );
    }
  }

  /** Open connections right now. */
  get activeConnections(): number {
    return this.active.size;
  }

  /** MPTCP details of each open connection (for logs and tests). */
  connections(): MptcpInfo[] {
    return [...this.active.values()].flatMap((a) => {
      const mp = (a.wire.info() as { mptcp?: MptcpInfo }).mptcp;
      return mp === undefined ? [] : [mp];
    });
  }

  /**
   * Graceful shutdown: stop intercepting, let open connections finish for up to `drainMs`, cut
   * the rest, close the stack, undo the host plumbing and close the TUN.
   */
  close(drainMs = this.config.drainTimeoutMs): Promise<ClientSummary> {
    this.closing ??= this.doClose(drainMs);
    return this.closing;
  }

  private async doClose(drainMs: number): Promise<ClientSummary> {
    this.listener?.close();
    this.watch?.stop();
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    for (const w of this.pending) w.destroy();
    this.summary.aborted += await drainThenAbort(() => [...this.active.values()].map((a) => a.bridge), {
      what: 'client',
      drainMs,
      log: this.log,
    });
    await settleStack(this.stack, { what: 'client', log: this.log });
    const mib = this.stack.stats().mptcp;
    this.stack.destroy();
    const failed = this.plumbing?.tearDown() ?? [];
    await this.device.close();
    this.log.info(
      {
        ...this.summary,
        ...(failed.length === 0 ? {} : { undoFailed: failed }),
        ...(this.pathEvents === 0
          ? {}
          : { pathEvents: this.pathEvents, addressesDown: this.stack.addressesDown }),
        ...(mib === undefined ? {} : { mptcpMib: mptcpCounterSet.nonZero(mib) }),
      },
      'client: stopped',
    );
    return this.summary;
  }
}
