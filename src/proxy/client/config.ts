/**
 * `mptun client`: the one typed configuration, validated from the command line before anything
 * starts (no TUN, no stack, no host command), so a bad flag is reported (exit 2) on any host.
 * Every problem is a message that names the fix.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { MptcpCongestionName } from '../../stack/mptcp/coupled-cc.js';
import type { SchedulerName } from '../../stack/mptcp/sched.js';
import { type ConfigSchema, loadConfigFile, mergeConfig } from '../config-file.js';
import { engineFlags } from '../perf/mptcp-options.js';

/** One path of the client: an interface, its gateway, and the stack address that leaves on it. */
export interface ClientPath {
  iface: string;
  /** The next hop; undefined until looked up from the interface's routes (plumbing.ts). */
  gateway: string | undefined;
  /** Our stack's private address on this path (the source of its subflows). */
  address: string;
  /**
   * IPv6 on this path (set when v6 is carried on the paths: a v6 --intercept in transparent
   * mode, or a v6 --addr): the stack's private v6 address, routed and masqueraded like the v4 one.
   */
  address6?: string;
  /** The v6 next hop; undefined until looked up from the interface's v6 routes. */
  gateway6?: string | undefined;
}

/** An intercepted prefix, e.g. 10.100.0.100/32. */
export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

export interface ClientConfig {
  tun: string;
  /** Connections to these prefixes are intercepted and carried over MPTCP. */
  intercept: Cidr[];
  /** --path mode: interfaces to plumb (empty with --no-routes). */
  paths: ClientPath[];
  /** The stack's addresses in order: the first opens each connection, the others join. */
  addresses: string[];
  /** Plumb routes, rules, NAT and the interception route (false: wired by someone else). */
  hostRoutes: boolean;
  /** The TUN's own address: the kernel's source for intercepted connections; never the stack's. */
  tunAddress: string;
  /** The same for intercepted IPv6 connections (used when an --intercept is IPv6). */
  tunAddress6: string;
  /** Policy routing: path k uses table tableBase + k (rule priority the same). */
  tableBase: number;
  offload: boolean;
  checksum: boolean;
  /** Give up opening the MPTCP connection after this long (the app's connection is reset). */
  connectTimeoutMs: number;
  drainTimeoutMs: number;
  /** Log each open connection's bytes per subflow this often ('connection stats'); 0: never. */
  statsIntervalMs: number;
  /**
   * Converter mode (RFC 8803): every connection goes to this mptun server's converter port, with a
   * Convert request naming the original destination; undefined is transparent mode.
   */
  converter?: { server: { host: string; port: number }; key?: Buffer | undefined } | undefined;
  /** Record what the stack sends and receives on the TUN to this pcap file. */
  pcap?: string | undefined;
  /** Which subflow carries the next data; undefined: the engine's default (lowest-rtt). */
  scheduler?: SchedulerName | undefined;
  /** The subflows' congestion control; undefined: the engine's default (olia). */
  congestion?: MptcpCongestionName | undefined;
  /** Stack addresses whose subflows are MP_PRIO backups (the --backup paths' addresses). */
  backupAddresses: string[];
}

/** The flags as yargs hands them over (before validation). */
export interface ClientFlags {
  tun?: string | undefined;
  intercept?: string[] | undefined;
  path?: string[] | undefined;
  addr?: string[] | undefined;
  routes?: boolean | undefined;
  'tun-addr'?: string | undefined;
  'table-base'?: number | undefined;
  offload?: boolean | undefined;
  checksum?: boolean | undefined;
  'connect-timeout'?: number | undefined;
  'drain-timeout'?: number | undefined;
  'stats-interval'?: number | undefined;
  server?: string | undefined;
  'psk-file'?: string | undefined;
  'tun-addr6'?: string | undefined;
  pcap?: string | undefined;
  scheduler?: string | undefined;
  congestion?: string | undefined;
  backup?: string[] | undefined;
  config?: string | undefined;
}

/** What a --config file may hold: the long flag names (not `config` itself). */
export const CLIENT_CONFIG_SCHEMA: ConfigSchema = {
  tun: 'string',
  intercept: 'string[]',
  path: 'string[]',
  addr: 'string[]',
  routes: 'boolean',
  'tun-addr': 'string',
  'tun-addr6': 'string',
  'table-base': 'number',
  offload: 'boolean',
  checksum: 'boolean',
  'connect-timeout': 'number',
  'drain-timeout': 'number',
  'stats-interval': 'number',
  server: 'string',
  'psk-file': 'string',
  pcap: 'string',
  scheduler: 'string',
  congestion: 'string',
  backup: 'string[]',
};

export type ClientConfigResult = { config: ClientConfig } | { error: string };

const IFACE_RE = /^[^\s/:=]{1,15}$/;

/** Parses `IP/PREFIX` (or a bare IP: a host prefix); the address must be the network's. */
export function parseCidr(text: string, flag = '--intercept'): Cidr | { error: string } {
  const example = `${flag} 10.100.0.100/32`;
  const [addr = '', len, ...rest] = text.split('/');
  const family = isIP(addr);
  if (family === 0 || rest.length > 0)
    return { error: `${flag} '${text}': not an IP prefix; use IP/PREFIX, e.g. ${example}` };
  const max = family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (len !== undefined && (len.trim() === '' || !Number.isInteger(prefix) || prefix < 0 || prefix > max))
    return { error: `${flag} '${text}': the prefix length must be 0-${max}` };
  if (family === 4) {
    const n = v4ToInt(addr);
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    if ((n & mask) >>> 0 !== n) {
      const net = intToV4((n & mask) >>> 0);
      return { error: `${flag} '${text}': host bits set; did you mean ${flag} ${net}/${prefix}?` };
    }
  }
  return { address: addr, prefix, family: family as 4 | 6 };
}

function v4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}

function intToV4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** Whether IPv4/IPv6 `address` lies in `cidr`. */
export function cidrContains(cidr: Cidr, address: string): boolean {
  const family = isIP(address);
  if (family !== cidr.family) return false;
  if (family === 4) {
    const mask = cidr.prefix === 0 ? 0 : (~0 << (32 - cidr.prefix)) >>> 0;
    return (v4ToInt(address) & mask) >>> 0 === v4ToInt(cidr.address);
  }
  const a = v6Bits(address);
  const b = v6Bits(cidr.address);
  return a.slice(0, cidr.prefix) === b.slice(0, cidr.prefix);
}

function v6Bits(address: string): string {
  const canon = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canon.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => Number.parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

export function cidrText(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** The default private stack address of path k (1-based): 100.64.k.2 (RFC 6598 shared space). */
export function defaultPathAddress(k: number): string {
  return `100.64.${k}.2`;
}

/** The default private IPv6 stack address of path k (1-based): fd64:k::2 (a ULA, masqueraded). */
export function defaultPathAddress6(k: number): string {
  return `fd64:${k}::2`;
}

export const DEFAULT_TUN_ADDRESS = '100.64.0.1';
export const DEFAULT_TUN_ADDRESS6 = 'fd64::1';
export const DEFAULT_TABLE_BASE = 4200;

/** Validates the flags into one ClientConfig; the first problem is returned as a message naming the fix. */
export function validateClientFlags(f: ClientFlags): ClientConfigResult {
  if (!f.tun) return { error: '--tun NAME is required: the TUN interface mptun opens (created if missing)' };
  if (!IFACE_RE.test(f.tun))
    return {
      error: `--tun '${f.tun}': an interface name is 1-15 characters without '/', ':', '=' or spaces`,
    };
  const converter = parseConverterFlags(f);
  if (converter !== undefined && 'error' in converter) return converter;
  const intercept: Cidr[] = [];
  for (const text of f.intercept ?? []) {
    const c = parseCidr(text);
    if ('error' in c) return c;
    intercept.push(c);
  }
  if (intercept.length === 0)
    return {
      error:
        '--intercept CIDR is required: the destinations to carry over MPTCP, e.g. --intercept 10.100.0.100/32',
    };
  const hostRoutes = f.routes ?? true;
  const addrs = f.addr ?? [];
  for (const a of addrs) {
    if (isIP(a) === 0)
      return { error: `--addr '${a}': not an IPv4 address (nor IPv6; no prefix: --addr 10.1.0.3)` };
  }
  if (new Set(addrs).size !== addrs.length) return { error: '--addr: each address once' };
  const addrs4 = addrs.filter((a) => isIP(a) === 4);
  const addrs6 = addrs.filter((a) => isIP(a) === 6);
  // v6 rides on the paths when the destinations are v6 (transparent mode) or v6 addresses are given.
  const paths6 = addrs6.length > 0 || (converter === undefined && intercept.some((c) => c.family === 6));
  const pathTexts = f.path ?? [];
  const paths: ClientPath[] = [];
  if (!hostRoutes) {
    if (pathTexts.length > 0)
      return {
        error: `--path ${pathTexts[0]} with --no-routes: --path asks mptun to plumb the path; with --no-routes give the stack's addresses with --addr IP instead`,
      };
    if (addrs.length === 0)
      return {
        error: '--no-routes needs --addr IP (repeatable): the stack addresses your routes send into the TUN',
      };
  } else {
    if (pathTexts.length === 0)
      return {
        error:
          addrs.length > 0
            ? '--addr without --path: give one --path IFACE[=GATEWAY] per path (--addr then names its stack address, in order), or add --no-routes if the topology is wired already'
            : '--path IFACE[=GATEWAY] is required (repeatable, one per path), or --addr IP with --no-routes',
      };
    if (addrs4.length > 0 && addrs4.length !== pathTexts.length)
      return {
        error: `${addrs4.length} --addr for ${pathTexts.length} --path: give one --addr per --path, in order, or none (defaults 100.64.<k>.2)`,
      };
    if (addrs6.length > 0 && addrs6.length !== pathTexts.length)
      return {
        error: `${addrs6.length} IPv6 --addr for ${pathTexts.length} --path: give one IPv6 --addr per --path, in order, or none (defaults fd64:<k>::2)`,
      };
    for (const [i, text] of pathTexts.entries()) {
      const eq = text.indexOf('=');
      const iface = eq < 0 ? text : text.slice(0, eq);
      const gateways = eq < 0 ? [] : text.slice(eq + 1).split(',');
      if (!IFACE_RE.test(iface))
        return {
          error: `--path '${text}': '${iface}' is not an interface name; use --path IFACE or --path IFACE=GATEWAY`,
        };
      const bad = gateways.find((g) => isIP(g) === 0);
      if (bad !== undefined || gateways.length > 2 || new Set(gateways.map(isIP)).size !== gateways.length)
        return {
          error: `--path '${text}': the gateway '${bad ?? text.slice(eq + 1)}' is not an IPv4 address (or one IPv4 and one IPv6 gateway: --path ${iface}=192.168.1.1,fe80::1)`,
        };
      const gateway = gateways.find((g) => isIP(g) === 4);
      const gateway6 = gateways.find((g) => isIP(g) === 6);
      if (paths.some((p) => p.iface === iface))
        return { error: `--path ${iface} is given twice; each interface once` };
      if (iface === f.tun)
        return { error: `--path ${iface} is the --tun; a path is an interface that leads out` };
      const path: ClientPath = { iface, gateway, address: addrs4[i] ?? defaultPathAddress(i + 1) };
      if (paths6) {
        path.address6 = addrs6[i] ?? defaultPathAddress6(i + 1);
        path.gateway6 = gateway6;
      }
      paths.push(path);
    }
  }
  // v4 first, then v6: the first address of a destination's family opens its connections.
  const addresses = hostRoutes
    ? [
        ...paths.map((p) => p.address),
        ...paths.flatMap((p) => (p.address6 === undefined ? [] : [p.address6])),
      ]
    : [...addrs4, ...addrs6];
  const tunAddress = f['tun-addr'] ?? DEFAULT_TUN_ADDRESS;
  if (isIP(tunAddress) !== 4)
    return { error: `--tun-addr '${tunAddress}': not an IPv4 address (--tun-addr 100.64.0.1)` };
  if (addresses.includes(tunAddress))
    return { error: `--tun-addr ${tunAddress} is also a stack address; the TUN's own address must differ` };
  const tunAddress6 = f['tun-addr6'] ?? DEFAULT_TUN_ADDRESS6;
  if (isIP(tunAddress6) !== 6)
    return { error: `--tun-addr6 '${tunAddress6}': not an IPv6 address (--tun-addr6 fd64::1)` };
  if (addresses.some((a) => isIP(a) === 6 && sameV6(a, tunAddress6)))
    return { error: `--tun-addr6 ${tunAddress6} is also a stack address; the TUN's own address must differ` };
  for (const c of intercept) {
    const family = addresses.some((a) => isIP(a) === c.family);
    if (converter === undefined && !family)
      return {
        error: `--intercept ${cidrText(c)}: no IPv${c.family} stack address to carry it from; ${hostRoutes ? `give the paths IPv${c.family} (--addr per --path)` : `add an IPv${c.family} --addr`}`,
      };
  }
  const v6Intercept = intercept.some((c) => c.family === 6);
  for (const a of [
    ...addresses,
    tunAddress,
    ...(v6Intercept ? [tunAddress6] : []),
    ...(converter === undefined ? [] : [converter.server.host]),
  ]) {
    const hit = intercept.find((c) => cidrContains(c, a));
    if (hit !== undefined)
      return {
        error: `address ${a} lies inside --intercept ${cidrText(hit)}; pick stack addresses outside the intercepted prefixes`,
      };
  }
  const tableBase = f['table-base'] ?? DEFAULT_TABLE_BASE;
  const lastTable = tableBase + Math.max(paths.length, 1);
  if (
    !(Number.isInteger(tableBase) && tableBase >= 1 && lastTable <= 32000) ||
    (tableBase < 255 && lastTable >= 253)
  )
    return {
      error: `--table-base must be an integer 1-32000 whose tables (base+1 .. base+paths) stay clear of the kernel's 253-255 (default ${DEFAULT_TABLE_BASE})`,
    };
  const connectTimeout = f['connect-timeout'] ?? 10;
  if (!(Number.isFinite(connectTimeout) && connectTimeout > 0 && connectTimeout <= 600))
    return { error: '--connect-timeout must be more than 0 and at most 600 seconds' };
  const drain = f['drain-timeout'] ?? 10;
  if (!(Number.isFinite(drain) && drain >= 0 && drain <= 3600))
    return { error: '--drain-timeout must be 0-3600 seconds' };
  const stats = f['stats-interval'] ?? 0;
  if (!(Number.isFinite(stats) && (stats === 0 || (stats >= 0.1 && stats <= 3600))))
    return { error: '--stats-interval must be 0 (off) or 0.1-3600 seconds' };
  if (f.pcap !== undefined && f.pcap.trim() === '')
    return { error: '--pcap FILE: give the path of the capture file to write' };
  const engine = engineFlags(f);
  if ('error' in engine) return engine;
  const backupAddresses: string[] = [];
  for (const text of f.backup ?? []) {
    const path = paths.find((p) => p.iface === text);
    const own =
      path === undefined ? addresses.find((a) => isIP(text) !== 0 && sameAddress(a, text)) : undefined;
    if (path === undefined && own === undefined)
      return {
        error: hostRoutes
          ? `--backup ${text}: name one of the --path interfaces (${paths.map((p) => p.iface).join(', ')}): its subflows then carry data only when no other path can`
          : `--backup ${text}: give one of the --addr addresses (${addresses.join(', ')}): its subflows then carry data only when no other path can`,
      };
    const mine =
      path === undefined ? [own!] : [path.address, ...(path.address6 === undefined ? [] : [path.address6])];
    for (const a of mine) if (!backupAddresses.includes(a)) backupAddresses.push(a);
  }
  const regular = addresses.filter((a) => !backupAddresses.includes(a));
  if (backupAddresses.length > 0 && regular.length === 0)
    return {
      error: '--backup names every path; leave at least one regular path (the backups stand in for it)',
    };
  return {
    config: {
      tun: f.tun,
      intercept,
      paths,
      addresses,
      hostRoutes,
      tunAddress,
      tunAddress6,
      tableBase,
      offload: f.offload ?? true,
      checksum: f.checksum ?? false,
      connectTimeoutMs: connectTimeout * 1000,
      drainTimeoutMs: drain * 1000,
      statsIntervalMs: stats * 1000,
      converter,
      pcap: f.pcap,
      ...engine,
      backupAddresses,
    },
  };
}

function sameAddress(a: string, b: string): boolean {
  if (isIP(a) !== isIP(b)) return false;
  return isIP(a) === 4 ? a === b : sameV6(a, b);
}

function sameV6(a: string, b: string): boolean {
  return new URL(`http://[${a}]/`).hostname === new URL(`http://[${b}]/`).hostname;
}

/**
 * The flags with the --config file (when given) merged under them, validated: what the command
 * runs with. Flags win over the file; the same loader and checks as the server's --config.
 */
export function resolveClientFlags(f: ClientFlags): ClientConfigResult {
  if (f.config === undefined) return validateClientFlags(f);
  const file = loadConfigFile(f.config, CLIENT_CONFIG_SCHEMA);
  if ('error' in file) return file;
  const flags: Record<string, unknown> = {};
  for (const k of [...Object.keys(CLIENT_CONFIG_SCHEMA), 'config'])
    flags[k] = (f as Record<string, unknown>)[k];
  return validateClientFlags(mergeConfig(file.values, flags as ClientFlags));
}

/** --server HOST:PORT and --psk-file: converter mode, or undefined (transparent mode). */
function parseConverterFlags(
  f: ClientFlags,
): { server: { host: string; port: number }; key?: Buffer | undefined } | { error: string } | undefined {
  if (f.server === undefined) {
    if (f['psk-file'] !== undefined)
      return { error: '--psk-file is for converter mode; add --server IP:PORT (or drop --psk-file)' };
    return undefined;
  }
  const m = /^([0-9.]+):(\d{1,5})$/.exec(f.server);
  const port = Number(m?.[2]);
  if (m === null || isIP(m[1] ?? '') !== 4 || !(port >= 1 && port <= 65535))
    return {
      error: `--server '${f.server}': give the mptun server's converter as IPv4:PORT, e.g. --server 10.99.0.1:5124`,
    };
  let key: Buffer | undefined;
  const keyFile = f['psk-file'];
  if (keyFile !== undefined) {
    try {
      key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'utf8');
    } catch (err) {
      return {
        error: `--psk-file ${keyFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the file holding the server's pre-shared key`,
      };
    }
    if (key.length < 16)
      return { error: `--psk-file ${keyFile}: the key is ${key.length} bytes; the server wants at least 16` };
  }
  return { server: { host: m[1] ?? '', port }, key };
}
