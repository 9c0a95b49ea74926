/**
 * The client's host plumbing (DESIGN.md §3), set up step by step with an undo for each step, so
 * close() — and a setup that fails halfway — removes exactly what this process added, newest
 * first:
 * - the TUN's own address (the kernel's source for intercepted connections; the stack never
 *   uses it, or the kernel would borrow the first path's address for them);
 * - per path k: a route for its stack address into the TUN (replies come back in), a default
 *   route via the path's gateway in table base+k, and `ip rule from <stack address> lookup
 *   base+k` (the rule wins over the interception route, so subflows leave by source address);
 * - one nftables table `ip mptun_client_<tun>`: masquerade of each stack address on its path
 *   interface, and `ct state invalid` dropped on input from the path interfaces (a return packet
 *   that misses conntrack is not de-NATed, reaches the host's own TCP and draws an RST that
 *   would kill that path's subflow);
 * - IPv4 forwarding on (restored to off on exit if it was off);
 * - `ip route <intercepted prefix> dev <tun> src <tun address>`, last: only once everything
 *   behind it works are the app's connections sent into the TUN.
 */
import { HostCommandError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ip, nft, nftScript, readSysctl, run, writeSysctl } from '../host-net.js';
import { type ClientConfig, type ClientPath, cidrText } from './config.js';

interface Step {
  what: string;
  undo: () => void;
}

/** What setup added, for the log and for tests. */
export interface PlumbingReport {
  routes: string[];
  rules: string[];
  nftTable: string | undefined;
  forwardingEnabled: boolean;
}

/** The nftables table a client on `tun` owns. */
export function nftTableName(tun: string): string {
  return `mptun_client_${tun.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The gateway of `iface`: its default route's next hop, else the first route via a gateway on it. */
export function findGateway(iface: string): string | undefined {
  const out = ip(undefined, '-4', 'route', 'show', 'dev', iface);
  const lines = out.split('\n').filter((l) => / via /.test(l));
  const line = lines.find((l) => l.startsWith('default ')) ?? lines[0];
  return line === undefined ? undefined : /\bvia (\S+)/.exec(line)?.[1];
}

/** Checks the paths against the host (interfaces exist, gateways known) before anything is made. */
export function resolvePaths(paths: readonly ClientPath[]): ClientPath[] {
  return paths.map((p) => {
    try {
      ip(undefined, 'link', 'show', 'dev', p.iface);
    } catch (err) {
      throw new HostCommandError(`--path ${p.iface}: no such interface here (see 'ip link')`, { cause: err });
    }
    if (p.gateway !== undefined) return p;
    const gateway = findGateway(p.iface);
    if (gateway === undefined)
      throw new HostCommandError(
        `--path ${p.iface}: no route via a gateway on ${p.iface} to learn the next hop from; name it: --path ${p.iface}=GATEWAY`,
      );
    return { ...p, gateway };
  });
}

export class ClientPlumbing {
  private readonly steps: Step[] = [];
  readonly report: PlumbingReport = { routes: [], rules: [], nftTable: undefined, forwardingEnabled: false };

  private constructor(private readonly log: Logger) {}

  /**
   * Plumbs `config` around the open TUN `tun`. On failure, what was added is removed again
   * before the error is thrown.
   */
  static setUp(config: ClientConfig, paths: readonly ClientPath[], tun: string, log: Logger): ClientPlumbing {
    const p = new ClientPlumbing(log);
    try {
      p.build(config, paths, tun);
    } catch (err) {
      p.tearDown();
      throw err;
    }
    return p;
  }

  private add(what: string, make: () => void, undo: () => void): void {
    make();
    this.steps.push({ what, undo });
  }

  private build(config: ClientConfig, paths: readonly ClientPath[], tun: string): void {
    const own = `${config.tunAddress}/32`;
    this.add(
      `address ${own} on ${tun}`,
      () => ip(undefined, 'addr', 'add', own, 'dev', tun),
      () => ip(undefined, 'addr', 'del', own, 'dev', tun),
    );
    for (const [i, path] of paths.entries()) {
      const table = String(config.tableBase + i + 1);
      const host = `${path.address}/32`;
      const gw = path.gateway;
      if (gw === undefined) throw new HostCommandError(`--path ${path.iface}: no gateway resolved`);
      this.route([host, 'dev', tun]);
      this.route(['default', 'via', gw, 'dev', path.iface, 'table', table]);
      const rule = ['from', path.address, 'lookup', table, 'priority', table];
      this.add(
        `rule ${rule.join(' ')}`,
        () => ip(undefined, 'rule', 'add', ...rule),
        () => ip(undefined, 'rule', 'del', ...rule),
      );
      this.report.rules.push(rule.join(' '));
    }
    const table = nftTableName(tun);
    const exists = nft('list', 'tables', 'ip')
      .split('\n')
      .some((l) => l.trim() === `table ip ${table}`);
    if (exists)
      throw new HostCommandError(
        `nftables table ip ${table} exists already: is another mptun client running on ${tun}? If not, remove it: nft delete table ip ${table}`,
      );
    const masq = paths.map((p) => `    oifname "${p.iface}" ip saddr ${p.address} masquerade`).join('\n');
    const ifaces = paths.map((p) => `"${p.iface}"`).join(', ');
    const script = [
      `table ip ${table} {`,
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      masq,
      '  }',
      '  chain input {',
      '    type filter hook input priority filter; policy accept;',
      `    iifname { ${ifaces} } ct state invalid drop`,
      '  }',
      '}',
      '',
    ].join('\n');
    this.add(
      `nftables table ip ${table}`,
      () => nftScript(script),
      () => nft('delete', 'table', 'ip', table),
    );
    this.report.nftTable = table;
    if (readSysctl('net.ipv4.ip_forward') !== '1') {
      this.add(
        'net.ipv4.ip_forward=1',
        () => writeSysctl('net.ipv4.ip_forward', '1'),
        () => writeSysctl('net.ipv4.ip_forward', '0'),
      );
      this.report.forwardingEnabled = true;
    }
    for (const c of config.intercept) this.route([cidrText(c), 'dev', tun, 'src', config.tunAddress]);
  }

  private route(spec: string[]): void {
    this.add(
      `route ${spec.join(' ')}`,
      () => ip(undefined, 'route', 'add', ...spec),
      () => ip(undefined, 'route', 'del', ...spec),
    );
    this.report.routes.push(spec.join(' '));
  }

  /** Removes everything setUp added, newest first; a step that fails is logged and the rest still run. */
  tearDown(): string[] {
    const failed: string[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        step.undo();
      } catch (err) {
        failed.push(step.what);
        this.log.warn(
          { step: step.what, err: (err as Error).message },
          'client: could not undo a setup step',
        );
      }
    }
    return failed;
  }
}

/** For --no-routes: nothing to make, only a check that the kernel has a route into the TUN. */
export function checkRoutesWired(config: ClientConfig, tun: string, log: Logger): void {
  for (const c of config.intercept) {
    let out = '';
    try {
      out = run(['ip', '-4', 'route', 'get', c.address]);
    } catch (err) {
      log.warn(
        { prefix: cidrText(c), err: (err as Error).message },
        'client: no route for an intercepted prefix',
      );
      continue;
    }
    if (!out.includes(`dev ${tun} `))
      log.warn(
        { prefix: cidrText(c), route: out.trim() },
        `client: ${cidrText(c)} is not routed into ${tun}; with --no-routes that is yours to add (ip route add ${cidrText(c)} dev ${tun})`,
      );
  }
}
