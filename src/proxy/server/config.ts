/**
 * `mptun server`: the one typed configuration, validated from the command line before anything
 * starts. Kept free of the TUN binding and the stack, so a bad flag is reported (exit 2) on any
 * host. Every problem is a message that names the fix.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { MptcpCongestionName } from '../../stack/mptcp/coupled-cc.js';
import type { SchedulerName } from '../../stack/mptcp/sched.js';
import { type ConfigSchema, loadConfigFile, mergeConfig } from '../config-file.js';
import { type AllowRule, parseAllowRule } from '../convert/allowlist.js';
import { type AnnouncedAddress, announceText, engineFlags, parseAnnounce } from '../perf/mptcp-options.js';

export interface ServerRoute {
  /** The port the MPTCP listener takes (on every address of the stack). */
  listen: number;
  backend: { host: string; port: number };
  /** Send a PROXY protocol v2 header to this backend first. */
  proxyProtocol: boolean;
}

/** Converter mode (RFC 8803): the destination comes from the client's Connect TLV. */
export interface ConverterConfig {
  /** The port the converter's MPTCP listener takes. */
  port: number;
  /** Destinations a client may name; never empty. */
  allow: AllowRule[];
  /** Pre-shared key: when set, every request must carry mptun's authentication TLV. */
  key?: Buffer | undefined;
  /** Send a PROXY protocol v2 header to each destination first. */
  proxyProtocol: boolean;
}

export interface ServerConfig {
  tun: string;
  /** The load-balanced address: where clients connect (the C flag keeps joins off it). */
  vip: string;
  /** The server's own addresses: announced with ADD_ADDR unless --announce says otherwise. */
  unique: string[];
  /** What ADD_ADDR announces (each the VIP with a port, or one of `unique`). */
  announce: AnnouncedAddress[];
  /** --listen / --backend pairs, in order. */
  routes: ServerRoute[];
  cFlag: boolean;
  checksum: boolean;
  /** Route the VIP and the unique addresses into the TUN (and remove those routes on exit). */
  hostRoutes: boolean;
  offload: boolean;
  /** How long a graceful shutdown waits for open connections before closing them. */
  drainTimeoutMs: number;
  /** Give up connecting to the backend after this long (the client's connection is reset). */
  backendTimeoutMs: number;
  converter?: ConverterConfig | undefined;
  /** Record what the stack sends and receives on the TUN to this pcap file. */
  pcap?: string | undefined;
  /** Which subflow carries the next data; undefined: the engine's default (lowest-rtt). */
  scheduler?: SchedulerName | undefined;
  /** The subflows' congestion control; undefined: the engine's default (olia). */
  congestion?: MptcpCongestionName | undefined;
}

/** The flags as yargs hands them over (before validation). */
export interface ServerFlags {
  tun?: string | undefined;
  vip?: string | undefined;
  unique?: string[] | undefined;
  announce?: string[] | undefined;
  listen?: (number | string)[] | undefined;
  backend?: string[] | undefined;
  'c-flag'?: boolean | undefined;
  checksum?: boolean | undefined;
  routes?: boolean | undefined;
  offload?: boolean | undefined;
  'drain-timeout'?: number | undefined;
  'backend-timeout'?: number | undefined;
  'proxy-protocol'?: boolean | undefined;
  converter?: number | string | undefined;
  allow?: string[] | undefined;
  'psk-file'?: string | undefined;
  pcap?: string | undefined;
  scheduler?: string | undefined;
  congestion?: string | undefined;
  config?: string | undefined;
}

/** What a --config file may hold: the long flag names (not `config` itself). */
export const SERVER_CONFIG_SCHEMA: ConfigSchema = {
  tun: 'string',
  vip: 'string',
  unique: 'string[]',
  announce: 'string[]',
  listen: 'number[]',
  backend: 'string[]',
  'c-flag': 'boolean',
  checksum: 'boolean',
  routes: 'boolean',
  offload: 'boolean',
  'drain-timeout': 'number',
  'backend-timeout': 'number',
  'proxy-protocol': 'boolean',
  converter: 'number',
  allow: 'string[]',
  'psk-file': 'string',
  pcap: 'string',
  scheduler: 'string',
  congestion: 'string',
};

/** The result of validation: the config, or the first problem. */
export type ConfigResult = { config: ServerConfig } | { error: string };

function checkPort(text: number | string, flag: string): number | string {
  const n = typeof text === 'number' ? text : Number(text);
  if (String(text).trim() === '' || !Number.isInteger(n) || n < 1 || n > 65535)
    return `${flag} '${text}': the port must be 1-65535`;
  return n;
}

/** Parses `HOST:PORT` or `[IPv6]:PORT` (HOST an IP address or a name). */
export function parseBackend(text: string): { host: string; port: number } | { error: string } {
  const forms = 'use HOST:PORT or [IPv6]:PORT, e.g. --backend 127.0.0.1:8080';
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(text) ?? /^([^:[\]]+):([^:]*)$/.exec(text);
  if (!m) return { error: `--backend '${text}': ${forms}` };
  const host = m[1] ?? '';
  if (text.startsWith('[') && isIP(host) !== 6)
    return { error: `--backend '${text}': brackets are for IPv6; ${forms}` };
  if (!text.startsWith('[') && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))
    return { error: `--backend '${text}': '${host}' is not an IP address or host name; ${forms}` };
  const port = checkPort(m[2] ?? '', `--backend '${text}':`);
  if (typeof port === 'string') return { error: port.replace(/'[^']*': the port/, 'the port') };
  return { host, port };
}

function sameIp(a: string, b: string): boolean {
  if (isIP(a) !== isIP(b)) return false;
  if (isIP(a) === 4) return a === b;
  // Compare IPv6 through the URL parser's canonical form (fd00::1 == fd00:0::1).
  return new URL(`http://[${a}]/`).hostname === new URL(`http://[${b}]/`).hostname;
}

const MAX_DRAIN_S = 3600;

/** Validates the flags into one ServerConfig; the first problem is returned as a message naming the fix. */
export function validateServerFlags(f: ServerFlags): ConfigResult {
  if (!f.tun) return { error: '--tun NAME is required: the TUN interface mptun opens (created if missing)' };
  if (f.vip === undefined)
    return { error: '--vip IP is required: the load-balanced address clients connect to' };
  if (isIP(f.vip) === 0)
    return { error: `--vip '${f.vip}': not an IP address (no prefix: --vip 10.100.0.100)` };
  const unique = f.unique ?? [];
  for (const u of unique) {
    if (isIP(u) === 0)
      return { error: `--unique '${u}': not an IP address (no prefix: --unique 10.100.1.1)` };
    if (sameIp(u, f.vip))
      return {
        error: `--unique ${u} is the --vip; a unique address must be this server's own, not load-balanced`,
      };
  }
  const announce: AnnouncedAddress[] = [];
  for (const text of f.announce ?? []) {
    const a = parseAnnounce(text);
    if ('error' in a) return { error: a.error };
    if (sameIp(a.address, f.vip)) {
      if (a.port === undefined)
        return {
          error: `--announce ${text}: announcing the VIP without a port gives clients nothing new (the C flag keeps joins off it); announce a --unique address, or the VIP with this server's own port (--announce ${announceText({ address: a.address, port: 5999 })})`,
        };
    } else if (!unique.some((u) => sameIp(u, a.address))) {
      return {
        error: `--announce ${text}: ${a.address} is not one of this server's addresses; add --unique ${a.address} (a server announces its own unique address)`,
      };
    }
    announce.push(a);
  }
  if (f.announce === undefined) for (const u of unique) announce.push({ address: u });
  const listens = f.listen ?? [];
  const backends = f.backend ?? [];
  if (listens.length === 0 && backends.length === 0 && f.converter !== undefined) {
    // Converter mode only: every destination comes from the clients' Connect TLVs.
  } else if (listens.length === 0) {
    return {
      error:
        backends.length > 0
          ? `--backend ${backends[0]} has no --listen: give one --listen PORT per --backend, in order (--listen 5001 --backend ${backends[0]})`
          : '--listen PORT and --backend HOST:PORT are required (one --backend per --listen, in order), or --converter PORT with --allow CIDR',
    };
  }
  if (backends.length !== listens.length) {
    return {
      error:
        backends.length < listens.length
          ? `--listen ${listens[backends.length]} has no --backend: give one --backend HOST:PORT per --listen, in order`
          : `--backend ${backends[listens.length]} has no --listen: give one --listen PORT per --backend, in order`,
    };
  }
  const routes: ServerRoute[] = [];
  for (const [i, l] of listens.entries()) {
    const port = checkPort(l, '--listen');
    if (typeof port === 'string') return { error: port };
    if (routes.some((r) => r.listen === port))
      return { error: `--listen ${port} is given twice; each port once` };
    const b = parseBackend(backends[i] ?? '');
    if ('error' in b) return b;
    routes.push({ listen: port, backend: b, proxyProtocol: f['proxy-protocol'] ?? false });
  }
  const converter = validateConverter(f, routes);
  if (converter !== undefined && 'error' in converter) return converter;
  if (f.pcap !== undefined && f.pcap.trim() === '')
    return { error: '--pcap FILE: give the path of the capture file to write' };
  const drain = f['drain-timeout'] ?? 10;
  if (!(Number.isFinite(drain) && drain >= 0 && drain <= MAX_DRAIN_S))
    return { error: `--drain-timeout must be 0-${MAX_DRAIN_S} seconds` };
  const backendTimeout = f['backend-timeout'] ?? 10;
  if (!(Number.isFinite(backendTimeout) && backendTimeout > 0 && backendTimeout <= 600))
    return { error: '--backend-timeout must be more than 0 and at most 600 seconds' };
  const engine = engineFlags(f);
  if ('error' in engine) return engine;
  return {
    config: {
      tun: f.tun,
      vip: f.vip,
      unique,
      announce,
      routes,
      cFlag: f['c-flag'] ?? true,
      checksum: f.checksum ?? false,
      hostRoutes: f.routes ?? true,
      offload: f.offload ?? true,
      drainTimeoutMs: drain * 1000,
      backendTimeoutMs: backendTimeout * 1000,
      converter,
      pcap: f.pcap,
      ...engine,
    },
  };
}

function validateConverter(
  f: ServerFlags,
  routes: ServerRoute[],
): ConverterConfig | { error: string } | undefined {
  const allowTexts = f.allow ?? [];
  if (f.converter === undefined) {
    if (allowTexts.length > 0)
      return {
        error: `--allow ${allowTexts[0]} is for converter mode; add --converter PORT (or drop --allow)`,
      };
    if (f['psk-file'] !== undefined)
      return { error: '--psk-file is for converter mode; add --converter PORT (or drop --psk-file)' };
    return undefined;
  }
  const port = checkPort(f.converter, '--converter');
  if (typeof port === 'string') return { error: port };
  if (routes.some((r) => r.listen === port))
    return { error: `--converter ${port} is also a --listen port; give the converter its own port` };
  if (allowTexts.length === 0)
    return {
      error:
        '--converter needs at least one --allow CIDR[:PORTS] (e.g. --allow 10.20.0.0/24:80,443): without an allowlist the converter would be an open relay',
    };
  const allow: AllowRule[] = [];
  for (const text of allowTexts) {
    const r = parseAllowRule(text);
    if ('error' in r) return r;
    allow.push(r);
  }
  let key: Buffer | undefined;
  const keyFile = f['psk-file'];
  if (keyFile !== undefined) {
    try {
      key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'utf8');
    } catch (err) {
      return {
        error: `--psk-file ${keyFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a file holding the pre-shared key`,
      };
    }
    if (key.length < 16)
      return {
        error: `--psk-file ${keyFile}: the key is ${key.length} bytes; use at least 16 (e.g. openssl rand -hex 32 > ${keyFile})`,
      };
  }
  return { port, allow, key, proxyProtocol: f['proxy-protocol'] ?? false };
}

/**
 * The flags with the --config file (when given) merged under them, validated: what the command
 * runs with. Flags win over the file.
 */
export function resolveServerFlags(f: ServerFlags): ConfigResult {
  if (f.config === undefined) return validateServerFlags(f);
  const file = loadConfigFile(f.config, SERVER_CONFIG_SCHEMA);
  if ('error' in file) return file;
  const flags: Record<string, unknown> = {};
  for (const k of [...Object.keys(SERVER_CONFIG_SCHEMA), 'config'])
    flags[k] = (f as Record<string, unknown>)[k];
  return validateServerFlags(mergeConfig(file.values, flags as ServerFlags));
}
