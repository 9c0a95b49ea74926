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
 * IPv6 (paths with a v6 stack address: a v6 --intercept in transparent mode): the same per path
 * with `ip -6` (host route into the TUN, default via the v6 gateway in table base+k, the rule),
 * an `ip6` nftables table of the same name, net.ipv6.conf.all.forwarding, and the TUN's own v6
 * address (`nodad`) as the source of v6 interception routes.
 *
 * The kernel deletes a path's table route when its interface goes down; `restorePath` puts it
 * back when it is up again (path following, link-watch.ts), and the undo of those routes accepts
 * that they may be gone.
 */
import { HostCommandError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { ip, nft, nftScript, readSysctl, run, writeSysctl } from '../host-net.js';
import { type ClientConfig, type ClientPath, cidrText } from './config.js';
import { probeInterface } from './link-watch.js';

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
  /** The ip6 table, when v6 rides on the paths. */
  nftTable6?: string;
  forwarding6Enabled?: boolean;
}

/** Whether `ip route show` lists the route `spec` (`default via GW dev IFACE table T`). */
function routePresent(family: 4 | 6, spec: readonly string[]): boolean {
  const t = spec.indexOf('table');
  const table = t < 0 ? [] : ['table', spec[t + 1] ?? ''];
  const via = spec[spec.indexOf('via') + 1] ?? '';
  const out = ip(undefined, `-${family}`, 'route', 'show', ...table, spec[0] ?? '');
  return out.split('\n').some((l) => l.includes(`via ${via} `));
}

/** The nftables table a client on `tun` owns. */
export function nftTableName(tun: string): string {
  return `mptun_client_${tun.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The gateway of `iface`: its default route's next hop, else the first route via a gateway on it. */
export function findGateway(iface: string, family: 4 | 6 = 4): string | undefined {
  const out = ip(undefined, `-${family}`, 'route', 'show', 'dev', iface);
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
    const gateway = p.gateway ?? findGateway(p.iface);
    if (gateway === undefined)
      throw new HostCommandError(
        probeInterface(p.iface).v4
          ? `--path ${p.iface}: no route via a gateway on ${p.iface} to learn the next hop from; name it: --path ${p.iface}=GATEWAY`
          : `--path ${p.iface}: the interface is down, so its gateway cannot be learnt; name it (--path ${p.iface}=GATEWAY) to start without it and use it once it is up`,
      );
    if (p.address6 === undefined) return { ...p, gateway };
    const gateway6 = p.gateway6 ?? findGateway(p.iface, 6);
    if (gateway6 === undefined)
      throw new HostCommandError(
        `--path ${p.iface}: IPv6 is carried on the paths (an IPv6 --intercept) but ${p.iface} has no IPv6 route via a gateway; name it: --path ${p.iface}=${gateway},IPV6-GATEWAY`,
      );
    return { ...p, gateway, gateway6 };
  });
}

/** The per-path table route (`default via GW dev IFACE table T`) of one family. */
function tableRoute(path: ClientPath, table: string, family: 4 | 6): string[] | undefined {
  const gw = family === 4 ? path.gateway : path.gateway6;
  if (family === 6 && path.address6 === undefined) return undefined;
  if (gw === undefined) throw new HostCommandError(`--path ${path.iface}: no IPv${family} gateway resolved`);
  return ['default', 'via', gw, 'dev', path.iface, 'table', table];
}

export class ClientPlumbing {
  private readonly steps: Step[] = [];
  private paths: { path: ClientPath; table: string }[] = [];
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
    this.paths = paths.map((path, i) => ({ path, table: String(config.tableBase + i + 1) }));
    const v6Intercept = config.intercept.some((c) => c.family === 6);
    const own = `${config.tunAddress}/32`;
    this.add(
      `address ${own} on ${tun}`,
      () => ip(undefined, 'addr', 'add', own, 'dev', tun),
      () => ip(undefined, 'addr', 'del', own, 'dev', tun),
    );
    if (v6Intercept) {
      const own6 = `${config.tunAddress6}/128`;
      this.add(
        `address ${own6} on ${tun}`,
        () => ip(undefined, '-6', 'addr', 'add', own6, 'dev', tun, 'nodad'),
        () => ip(undefined, '-6', 'addr', 'del', own6, 'dev', tun),
      );
    }
    for (const { path, table } of this.paths) {
      for (const family of [4, 6] as const) {
        const address = family === 4 ? path.address : path.address6;
        const spec = tableRoute(path, table, family);
        if (address === undefined || spec === undefined) continue;
        this.route(family, [`${address}/${family === 4 ? 32 : 128}`, 'dev', tun]);
        this.route(family, spec, { mayVanish: true, pathIface: path.iface });
        const rule = ['from', address, 'lookup', table, 'priority', table];
        this.add(
          `rule ${rule.join(' ')}`,
          () => ip(undefined, `-${family}`, 'rule', 'add', ...rule),
          () => ip(undefined, `-${family}`, 'rule', 'del', ...rule),
        );
        this.report.rules.push(rule.join(' '));
      }
    }
    this.natTable(tun, 4, paths);
    const paths6 = paths.filter((p) => p.address6 !== undefined);
    if (paths6.length > 0) this.natTable(tun, 6, paths6);
    this.forwarding('net.ipv4.ip_forward');
    if (paths6.length > 0) this.forwarding('net.ipv6.conf.all.forwarding');
    for (const c of config.intercept)
      this.route(c.family, [
        cidrText(c),
        'dev',
        tun,
        'src',
        c.family === 4 ? config.tunAddress : config.tunAddress6,
      ]);
  }

  /** nftables table `ip`/`ip6` mptun_client_<tun>: masquerade per path, invalid input dropped. */
  private natTable(tun: string, family: 4 | 6, paths: readonly ClientPath[]): void {
    const fam = family === 4 ? 'ip' : 'ip6';
    const table = nftTableName(tun);
    const exists = nft('list', 'tables', fam)
      .split('\n')
      .some((l) => l.trim() === `table ${fam} ${table}`);
    if (exists)
      throw new HostCommandError(
        `nftables table ${fam} ${table} exists already: is another mptun client running on ${tun}? If not, remove it: nft delete table ${fam} ${table}`,
      );
    const masq = paths
      .map((p) => `    oifname "${p.iface}" ${fam} saddr ${family === 4 ? p.address : p.address6} masquerade`)
      .join('\n');
    const ifaces = paths.map((p) => `"${p.iface}"`).join(', ');
    const script = [
      `table ${fam} ${table} {`,
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
      `nftables table ${fam} ${table}`,
      () => nftScript(script),
      () => nft('delete', 'table', fam, table),
    );
    if (family === 4) this.report.nftTable = table;
    else this.report.nftTable6 = table;
  }

  private forwarding(key: string): void {
    if (readSysctl(key) === '1') return;
    this.add(
      `${key}=1`,
      () => writeSysctl(key, '1'),
      () => writeSysctl(key, '0'),
    );
    if (key === 'net.ipv4.ip_forward') this.report.forwardingEnabled = true;
    else this.report.forwarding6Enabled = true;
  }

  /**
   * A route added and removed again on close. `mayVanish`: the kernel deletes it when its
   * interface goes down, so on undo an absent route is no failure.
   */
  /**
   * Adds a route (undone on tear-down). A path's table route (`pathIface`) on an interface that
   * is down now cannot be added (its gateway is unreachable): the path starts down and the route
   * comes with the link (`restorePath`, from path following).
   */
  private route(family: 4 | 6, spec: string[], o: { mayVanish?: boolean; pathIface?: string } = {}): void {
    const f = `-${family}`;
    const undo = () => {
      if (o.mayVanish === true && !routePresent(family, spec)) return;
      ip(undefined, f, 'route', 'del', ...spec);
    };
    try {
      this.add(`route ${spec.join(' ')}`, () => ip(undefined, f, 'route', 'add', ...spec), undo);
    } catch (err) {
      const state = o.pathIface === undefined ? undefined : probeInterface(o.pathIface);
      if (state === undefined || (family === 4 ? state.v4 : state.v6)) throw err;
      this.steps.push({ what: `route ${spec.join(' ')} (when ${o.pathIface} is up)`, undo });
      this.log.info(
        { iface: o.pathIface, route: spec.join(' ') },
        'client: path down at start; its route comes with the link',
      );
    }
    this.report.routes.push(spec.join(' '));
  }

  /**
   * Puts the table routes of `iface`'s path back, of the families given (`ip route replace`: the
   * kernel deleted them when the interface went down). Returns the routes restored; a failure is
   * thrown (the caller logs it).
   */
  restorePath(iface: string, families: readonly (4 | 6)[] = [4, 6]): string[] {
    const entry = this.paths.find((p) => p.path.iface === iface);
    if (entry === undefined) return [];
    const restored: string[] = [];
    for (const family of families) {
      const spec = tableRoute(entry.path, entry.table, family);
      if (spec === undefined) continue;
      ip(undefined, `-${family}`, 'route', 'replace', ...spec);
      restored.push(spec.join(' '));
    }
    return restored;
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
      out = run(['ip', `-${c.family}`, 'route', 'get', c.address]);
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
