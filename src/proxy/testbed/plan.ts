/**
 * The testbed's address plan (DESIGN.md §4), as plain data: which namespaces, which links, which
 * addresses. Pure, so it can be checked without root and printed before anything is built.
 *
 *   cli ─p1─ lb ─s1─ s1 (VIP + unique address 1) ─app─┐
 *       ─p2─    ─s2─ s2 (VIP + unique address 2) ─app─┴─ br0 in app (the legacy service)
 *
 *   cli path k ⇄ lb:  10.60.k.1 / 10.60.k.254 (/24), fd60:k::1 / fd60:k::fe (/64), device p<k> both ends
 *   lb ⇄ server j:    10.61.j.254 / 10.61.j.2 (/24), fd61:j::fe / fd61:j::2 (/64), device s<j> in lb, lb in s<j>
 *   server j ⇄ app:   10.62.0.1j / 10.62.0.1 (/24), fd62::1j / fd62::1 (/64), device app in s<j>, s<j> in app
 *                     (app's ends are ports of a bridge br0 that holds the app's address)
 *   VIP:              10.99.0.1, fd99::1 (every server);   unique address j: 10.98.0.j, fd98::j
 *
 * The same plan as the test lab's loadBalancerTopology (test/support/mptcp-lab.ts), plus `app`.
 */

/** One address of a host in both families (no prefix length). */
export interface DualAddr {
  v4: string;
  v6: string;
}

/** One end of a veth pair. */
export interface LinkEnd extends DualAddr {
  /** The namespace's role name (`cli`, `lb`, `s1`, ...), not its full name. */
  host: HostName;
  dev: string;
}

export type HostName = 'cli' | 'lb' | 's1' | 's2' | 'app';
export const HOSTS: readonly HostName[] = ['cli', 'lb', 's1', 's2', 'app'];
export type Site = 's1' | 's2';
export const SITES: readonly Site[] = ['s1', 's2'];

export interface PathPlan {
  index: 1 | 2;
  /** cli's end (device p<k>). */
  cli: LinkEnd;
  /** lb's end (device p<k>). */
  lb: LinkEnd;
  /** The policy routing table in cli for sources on this path (100 + k). */
  table: number;
  rate: number | undefined;
}

export interface ServerPlan {
  name: Site;
  /** The server's end of its link to lb. */
  uplink: LinkEnd;
  /** lb's end of that link. */
  lbEnd: LinkEnd;
  /** The server's end of its link to app. */
  appLink: LinkEnd;
  unique: DualAddr;
}

export interface TestbedOptions {
  /** Namespace name prefix: namespaces are `<prefix>-cli`, `<prefix>-lb`, ... */
  prefix: string;
  /** tbf rate of path 1 / path 2 in bit/s; undefined: unshaped. */
  rate1?: number | undefined;
  rate2?: number | undefined;
  /** net.ipv4.fib_multipath_hash_seed in lb. */
  hashSeed?: number;
  /**
   * Put the VIP and the unique address on each server's lo (kernel servers answer them at once).
   * false leaves them off, for an mptun server that routes them into its TUN.
   */
  loAddrs?: boolean;
}

export interface TestbedPlan {
  prefix: string;
  /** Full namespace names by role, in creation order. */
  namespaces: Record<HostName, string>;
  paths: [PathPlan, PathPlan];
  servers: [ServerPlan, ServerPlan];
  vip: DualAddr;
  /** The service host's address (on app's bridge). */
  app: DualAddr;
  appBridge: string;
  hashSeed: number;
  loAddrs: boolean;
}

export const DEFAULT_PREFIX = 'mptun-tb';
export const DEFAULT_HASH_SEED = 0x6d707475;
export const VIP: DualAddr = { v4: '10.99.0.1', v6: 'fd99::1' };
export const V4_PREFIX = 24;
export const V6_PREFIX = 64;
/** fib_multipath_hash_fields: source and destination address, protocol, both ports. */
export const HASH_FIELDS = 0x37;
/** fib_multipath_hash_policy 3: custom, the fields above (policy 1 reuses the socket's hash). */
export const HASH_POLICY = 3;

/** Longest prefix: namespace names are files in /run/netns and end in `-cli` etc. */
export const MAX_PREFIX_LENGTH = 40;

/** Why a prefix is unusable, or undefined when it is fine. */
export function checkPrefix(prefix: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(prefix))
    return `--prefix '${prefix}' must start with a letter or digit and use only letters, digits, '.', '_' and '-'`;
  if (prefix.length > MAX_PREFIX_LENGTH) return `--prefix must be at most ${MAX_PREFIX_LENGTH} characters`;
  return undefined;
}

const RATE_UNITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };
export const MIN_RATE = 64e3;
export const MAX_RATE = 100e9;

/** Parses a tc-style rate (`50mbit`, `1gbit`, `800kbit`, `1.5mbit`) to bit/s; an error text otherwise. */
export function parseRate(text: string): number | { error: string } {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/i.exec(text.trim());
  const unit = m ? RATE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    return { error: `'${text}' is not a rate; write it as tc does, e.g. 50mbit, 1gbit or 800kbit` };
  const bps = Math.round(Number(m[1]) * unit);
  if (bps < MIN_RATE || bps > MAX_RATE) return { error: `'${text}' is out of range (64kbit-100gbit)` };
  return bps;
}

/** A rate in tc's words (50mbit), for messages and tc itself. */
export function rateText(bps: number): string {
  for (const [unit, f] of [
    ['gbit', 1e9],
    ['mbit', 1e6],
    ['kbit', 1e3],
  ] as const) {
    if (bps % f === 0) return `${bps / f}${unit}`;
  }
  return `${bps}bit`;
}

/** Server j's unique address. */
export function uniqueAddr(j: number): DualAddr {
  return { v4: `10.98.0.${j}`, v6: `fd98::${j}` };
}

export function testbedPlan(opts: TestbedOptions): TestbedPlan {
  const problem = checkPrefix(opts.prefix);
  if (problem !== undefined) throw new RangeError(problem);
  const namespaces = Object.fromEntries(HOSTS.map((h) => [h, `${opts.prefix}-${h}`])) as Record<
    HostName,
    string
  >;
  const rates = [opts.rate1, opts.rate2];
  const paths = ([1, 2] as const).map(
    (k): PathPlan => ({
      index: k,
      cli: { host: 'cli', dev: `p${k}`, v4: `10.60.${k}.1`, v6: `fd60:${k}::1` },
      lb: { host: 'lb', dev: `p${k}`, v4: `10.60.${k}.254`, v6: `fd60:${k}::fe` },
      table: 100 + k,
      rate: rates[k - 1],
    }),
  ) as [PathPlan, PathPlan];
  const servers = ([1, 2] as const).map(
    (j): ServerPlan => ({
      name: `s${j}`,
      uplink: { host: `s${j}`, dev: 'lb', v4: `10.61.${j}.2`, v6: `fd61:${j}::2` },
      lbEnd: { host: 'lb', dev: `s${j}`, v4: `10.61.${j}.254`, v6: `fd61:${j}::fe` },
      appLink: { host: `s${j}`, dev: 'app', v4: `10.62.0.1${j}`, v6: `fd62::1${j}` },
      unique: uniqueAddr(j),
    }),
  ) as [ServerPlan, ServerPlan];
  return {
    prefix: opts.prefix,
    namespaces,
    paths,
    servers,
    vip: VIP,
    app: { v4: '10.62.0.1', v6: 'fd62::1' },
    appBridge: 'br0',
    hashSeed: opts.hashSeed ?? DEFAULT_HASH_SEED,
    loAddrs: opts.loAddrs ?? true,
  };
}
