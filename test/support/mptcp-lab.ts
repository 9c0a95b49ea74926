/**
 * The kernel-MPTCP lab: network-namespace topologies, kernel MPTCP configuration, observation
 * (MIB counters, sockets and subflows, captures, tshark fields) and kernel peers, for tests that
 * run the Linux kernel's MPTCP against itself or against our userspace MPTCP.
 *
 * Everything is made through a NetnsLab, so names carry the run's prefix and `lab.cleanup()`
 * removes the namespaces (and with them the veths, routes and endpoints) and kills, by PID, every
 * process started here — also when a test fails. Waits are on events (a line a process prints, a
 * netlink event the peer sees); where the kernel offers no event (a counter), a bounded retry.
 *
 * Topologies (DESIGN.md §4):
 *
 *   twoPathTopology:        cli ─p1─ srv        path k: 10.50.k.1/24, fd50:k::1/64 (cli)
 *                               ─p2─                     10.50.k.2/24, fd50:k::2/64 (srv)
 *
 *   loadBalancerTopology:   cli ─p1─ lb ─s1─ s1 (VIP + unique address 1)
 *                               ─p2─    ─s2─ s2 (VIP + unique address 2)
 *     cli path k ⇄ lb:   10.60.k.1 / 10.60.k.254 (/24), fd60:k::1 / fd60:k::fe (/64)
 *     lb ⇄ server j:     10.61.j.254 / 10.61.j.2 (/24), fd61:j::fe / fd61:j::2 (/64)
 *     VIP:               10.99.0.1, fd99::1 on every server;  unique j: 10.98.0.j, fd98::j
 *   `lb` is a stateless L4 balancer: an ECMP route for the VIP over the servers hashed on the
 *   five-tuple (policy 3, fields 0x37, fixed seed), no conntrack, no nftables. `cli` routes by
 *   source address (a table per path), so a subflow bound to path k's address leaves on path k.
 *   An `app` host (the legacy service behind the servers) will hang off the servers on 10.62.0.0/24;
 *   nothing here uses that range.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { NetnsLab } from './netns.js';
import { type Run, start } from './perf-lab.js';

const execFileAsync = promisify(execFile);

/** The kernel peer script (see its docstring for the line protocol). */
export const MPTCP_PEER = fileURLToPath(new URL('./mptcp-peer.py', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Deterministic payloads (the same stream mptcp-peer.py sends)
// ---------------------------------------------------------------------------------------------

const CHUNK = 1 << 20;

function labChunk(seed: number, k: number): Buffer {
  return createHash('shake128', { outputLength: CHUNK }).update(`mptun-lab:${seed}:${k}`).digest();
}

/**
 * The deterministic byte stream for `seed`, `length` bytes: chunk k is the first MiB of
 * SHAKE128("mptun-lab:<seed>:<k>"). mptcp-peer.py sends exactly this, so a userspace peer can
 * send or check the same bytes.
 */
export function labBytes(seed: number, length: number): Buffer {
  return Buffer.concat([...labChunks(seed, length)], length);
}

/** labBytes(seed, length) a chunk (1 MiB) at a time, for peers that stream it. */
export function* labChunks(seed: number, length: number): Generator<Buffer> {
  for (let k = 0; k * CHUNK < length; k++)
    yield labChunk(seed, k).subarray(0, Math.min(CHUNK, length - k * CHUNK));
}

/** SHA-256 (hex) of labBytes(seed, length), without holding the whole stream. */
export function labSha256(seed: number, length: number): string {
  const h = createHash('sha256');
  for (const c of labChunks(seed, length)) h.update(c);
  return h.digest('hex');
}

/** A peer process's line on stdout: words separated by spaces. */
export function say(...words: (string | number)[]): void {
  process.stdout.write(`${words.join(' ')}\n`);
}

/** A peer process's fatal error: the message on stderr, exit status 2. */
export function fail(msg: string): never {
  process.stderr.write(`${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Topologies
// ---------------------------------------------------------------------------------------------

/** One host's addresses on a link (no prefix length). */
export interface HostAddrs {
  v4: string;
  v6: string;
}

/** One end of a link: its namespace, device and addresses. */
export interface LinkEnd extends HostAddrs {
  ns: string;
  dev: string;
}

export interface Link {
  a: LinkEnd;
  b: LinkEnd;
}

const V4_PREFIX = 24;
const V6_PREFIX = 64;

/**
 * Adds a namespace `<tag>-<name>` (or `<name>`) to the lab, for the topologies here and for
 * hosts a later test adds to one of them (e.g. `app`). IPv6 duplicate-address detection is off, so link-local addresses are
 * usable at once too (a router forwarding IPv6 solicits its next hop from its link-local
 * address, and waits out a tentative one), and no router solicitations clutter captures.
 */
export function labNamespace(lab: NetnsLab, tag: string, name: string): string {
  const ns = lab.add(tag === '' ? name : `${tag}-${name}`);
  sysctl(
    lab,
    ns,
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
    'net.ipv6.conf.all.router_solicitations=0',
    'net.ipv6.conf.default.router_solicitations=0',
  );
  return ns;
}

function sysctl(lab: NetnsLab, ns: string, ...settings: string[]): void {
  lab.exec(ns, 'sysctl', '-qw', ...settings);
}

/**
 * A veth pair between `a` and `b` with an IPv4 /24 and an IPv6 /64 on each end. IPv6 addresses
 * are `nodad`, so they are usable at once (no tentative state to wait out). Returns both ends.
 */
export function link(lab: NetnsLab, a: LinkEnd, b: LinkEnd): Link {
  execFileSync('ip', [
    'link',
    'add',
    a.dev,
    'netns',
    a.ns,
    'type',
    'veth',
    'peer',
    'name',
    b.dev,
    'netns',
    b.ns,
  ]);
  // Up before the addresses: an IPv6 address added to a link that is still down does not answer
  // neighbour solicitations until addrconf catches up, a second or more later.
  for (const end of [a, b]) lab.exec(end.ns, 'ip', 'link', 'set', end.dev, 'up');
  for (const end of [a, b]) {
    lab.exec(end.ns, 'ip', 'addr', 'add', `${end.v4}/${V4_PREFIX}`, 'dev', end.dev);
    lab.exec(end.ns, 'ip', '-6', 'addr', 'add', `${end.v6}/${V6_PREFIX}`, 'dev', end.dev, 'nodad');
  }
  return { a: { ...a }, b: { ...b } };
}

/** One of the two paths between `cli` and `srv` (or `cli` and `lb`): `index` is 1 or 2. */
export interface Path {
  index: number;
  /** The client's end (device `p<index>` in `cli`). */
  cli: LinkEnd;
  /** The far end: the server in twoPathTopology, the balancer in loadBalancerTopology. */
  far: LinkEnd;
}

export interface TwoPathLab {
  cli: string;
  srv: string;
  /** paths[0] is path 1 (the main route's), paths[1] path 2. */
  paths: [Path, Path];
}

export interface TopologyOptions {
  /** Prefix for the namespace names (`<tag>-cli`), so one NetnsLab can hold several topologies. */
  tag?: string;
}

/**
 * Namespaces `cli` and `srv` joined by two veth pairs, path 1 (`p1`) and path 2 (`p2`), each
 * with IPv4 and IPv6 addresses on both ends (see the file comment). The paths are directly
 * connected subnets, so each address is reached over its own path with no routes to add.
 */
export function twoPathTopology(lab: NetnsLab, opts: TopologyOptions = {}): TwoPathLab {
  const tag = opts.tag ?? '';
  const cli = labNamespace(lab, tag, 'cli');
  const srv = labNamespace(lab, tag, 'srv');
  const paths = [1, 2].map((k) => {
    const l = link(
      lab,
      { ns: cli, dev: `p${k}`, v4: `10.50.${k}.1`, v6: `fd50:${k}::1` },
      { ns: srv, dev: `p${k}`, v4: `10.50.${k}.2`, v6: `fd50:${k}::2` },
    );
    return { index: k, cli: l.a, far: l.b };
  }) as [Path, Path];
  return { cli, srv, paths };
}

/** A server behind the balancer. */
export interface LbServer {
  /** `s1`, `s2`, ... */
  name: string;
  ns: string;
  /** The server's end of its link to lb (device `lb` in the server, `s<j>` in lb). */
  link: LinkEnd;
  /** lb's end of that link. */
  lbEnd: LinkEnd;
  /** The server's own address, reachable from cli through lb without balancing. */
  unique: HostAddrs;
}

export interface LbLab {
  cli: string;
  lb: string;
  /** cli's two paths to lb. */
  paths: [Path, Path];
  servers: LbServer[];
  /** The load-balanced address every server holds. */
  vip: HostAddrs;
  /** The fixed net.ipv4.fib_multipath_hash_seed lb hashes with. */
  hashSeed: number;
}

export interface LbOptions extends TopologyOptions {
  /** Servers behind lb (2 by default). */
  servers?: number;
  /** net.ipv4.fib_multipath_hash_seed (fixed, so a run is reproducible). */
  hashSeed?: number;
  /**
   * Put the VIP and the unique address on each server's `lo` (true by default: kernel servers).
   * A userspace server routes them into its TUN instead, so it passes false and adds routes.
   */
  serviceAddrs?: boolean;
}

export const LB_VIP: HostAddrs = { v4: '10.99.0.1', v6: 'fd99::1' };

/** Server j's unique address. */
export function lbUnique(j: number): HostAddrs {
  return { v4: `10.98.0.${j}`, v6: `fd98::${j}` };
}

/**
 * The load-balancer topology of DESIGN.md §4 (see the file comment for the address plan): `cli`
 * with two paths to `lb`, `lb` with an ECMP route for the VIP over the servers hashed on the
 * five-tuple (fib_multipath_hash_policy 3, fields 0x37: both addresses, protocol, both ports;
 * a fixed seed), routes to each unique address, no conntrack and no nftables. Each server holds
 * the VIP and its unique address and routes everything else back through lb; cli routes by
 * source address (policy table 100+k for path k), so replies and subflows stay on their path.
 */
export function loadBalancerTopology(lab: NetnsLab, opts: LbOptions = {}): LbLab {
  const tag = opts.tag ?? '';
  const count = opts.servers ?? 2;
  const hashSeed = opts.hashSeed ?? 0x6d707475;
  const cli = labNamespace(lab, tag, 'cli');
  const lb = labNamespace(lab, tag, 'lb');
  sysctl(
    lab,
    lb,
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
    'net.ipv4.fib_multipath_hash_policy=3',
    'net.ipv4.fib_multipath_hash_fields=0x37',
    'net.ipv6.fib_multipath_hash_policy=3',
    'net.ipv6.fib_multipath_hash_fields=0x37',
    `net.ipv4.fib_multipath_hash_seed=${hashSeed}`,
  );
  const paths = [1, 2].map((k) => {
    const l = link(
      lab,
      { ns: cli, dev: `p${k}`, v4: `10.60.${k}.1`, v6: `fd60:${k}::1` },
      { ns: lb, dev: `p${k}`, v4: `10.60.${k}.254`, v6: `fd60:${k}::fe` },
    );
    return { index: k, cli: l.a, far: l.b };
  }) as [Path, Path];
  for (const p of paths) {
    const table = String(100 + p.index);
    for (const [fam, self, gw] of [
      ['-4', p.cli.v4, p.far.v4],
      ['-6', p.cli.v6, p.far.v6],
    ] as const) {
      lab.exec(cli, 'ip', fam, 'route', 'add', 'default', 'via', gw, 'dev', p.cli.dev, 'table', table);
      lab.exec(cli, 'ip', fam, 'rule', 'add', 'from', self, 'lookup', table, 'priority', table);
    }
  }
  // Everything else (unbound sockets) leaves on path 1.
  lab.exec(cli, 'ip', 'route', 'add', 'default', 'via', paths[0].far.v4, 'dev', 'p1');
  lab.exec(cli, 'ip', '-6', 'route', 'add', 'default', 'via', paths[0].far.v6, 'dev', 'p1');

  const servers: LbServer[] = [];
  for (let j = 1; j <= count; j++) {
    const name = `s${j}`;
    const ns = labNamespace(lab, tag, name);
    const l = link(
      lab,
      { ns: lb, dev: name, v4: `10.61.${j}.254`, v6: `fd61:${j}::fe` },
      { ns, dev: 'lb', v4: `10.61.${j}.2`, v6: `fd61:${j}::2` },
    );
    const unique = lbUnique(j);
    if (opts.serviceAddrs ?? true) {
      for (const a of [`${LB_VIP.v4}/32`, `${unique.v4}/32`])
        lab.exec(ns, 'ip', 'addr', 'add', a, 'dev', 'lo');
      for (const a of [`${LB_VIP.v6}/128`, `${unique.v6}/128`]) {
        lab.exec(ns, 'ip', '-6', 'addr', 'add', a, 'dev', 'lo');
      }
    }
    lab.exec(ns, 'ip', 'route', 'add', 'default', 'via', l.a.v4, 'dev', 'lb');
    lab.exec(ns, 'ip', '-6', 'route', 'add', 'default', 'via', l.a.v6, 'dev', 'lb');
    lab.exec(lb, 'ip', 'route', 'add', `${unique.v4}/32`, 'via', l.b.v4, 'dev', name);
    lab.exec(lb, 'ip', '-6', 'route', 'add', `${unique.v6}/128`, 'via', l.b.v6, 'dev', name);
    servers.push({ name, ns, link: l.b, lbEnd: l.a, unique });
  }
  const hops = (fam: 'v4' | 'v6') =>
    servers.flatMap((s) => ['nexthop', 'via', s.link[fam], 'dev', s.lbEnd.dev]);
  lab.exec(lb, 'ip', 'route', 'add', `${LB_VIP.v4}/32`, ...hops('v4'));
  lab.exec(lb, 'ip', '-6', 'route', 'add', `${LB_VIP.v6}/128`, ...hops('v6'));
  return { cli, lb, paths, servers, vip: LB_VIP, hashSeed };
}

// ---------------------------------------------------------------------------------------------
// Kernel MPTCP configuration
// ---------------------------------------------------------------------------------------------

/** The net.mptcp sysctls, by their kernel names (Documentation/networking/mptcp-sysctl.rst). */
export interface MptcpSysctls {
  enabled?: boolean;
  checksum_enabled?: boolean;
  /** 0: the server's MP_CAPABLE carries the C flag (no joins to the initial address and port). */
  allow_join_initial_addr_port?: boolean;
  /** Seconds between ADD_ADDR retransmissions. */
  add_addr_timeout?: number;
  close_timeout?: number;
  blackhole_timeout?: number;
  stale_loss_cnt?: number;
  syn_retrans_before_tcp_fallback?: number;
  /** `kernel` or `userspace`. */
  path_manager?: string;
  scheduler?: string;
}

/** Sets net.mptcp.* sysctls in `ns` (booleans as 0/1). */
export function setMptcpSysctls(lab: NetnsLab, ns: string, values: MptcpSysctls): void {
  const settings = Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `net.mptcp.${k}=${typeof v === 'boolean' ? (v ? 1 : 0) : v}`);
  if (settings.length > 0) sysctl(lab, ns, ...settings);
}

/** `ip mptcp limits set subflows N add_addr_accepted M` in `ns`. */
export function setMptcpLimits(lab: NetnsLab, ns: string, subflows: number, addAddrAccepted: number): void {
  lab.exec(
    ns,
    'ip',
    'mptcp',
    'limits',
    'set',
    'subflows',
    String(subflows),
    'add_addr_accepted',
    String(addAddrAccepted),
  );
}

export type EndpointFlag = 'signal' | 'subflow' | 'backup' | 'fullmesh';

export interface MptcpEndpoint {
  addr: string;
  id?: number;
  port?: number;
  dev?: string;
  flags: EndpointFlag[];
}

/** `ip mptcp endpoint add ADDR [id N] [port P] [dev D] FLAGS...` in `ns`. */
export function addMptcpEndpoint(lab: NetnsLab, ns: string, ep: MptcpEndpoint): void {
  const args = ['mptcp', 'endpoint', 'add', ep.addr];
  if (ep.id !== undefined) args.push('id', String(ep.id));
  if (ep.port !== undefined) args.push('port', String(ep.port));
  if (ep.dev !== undefined) args.push('dev', ep.dev);
  lab.exec(ns, 'ip', ...args, ...ep.flags);
}

/** Removes every MPTCP endpoint of `ns`. */
export function flushMptcpEndpoints(lab: NetnsLab, ns: string): void {
  lab.exec(ns, 'ip', 'mptcp', 'endpoint', 'flush');
}

/** `ip mptcp endpoint show` of `ns`, as text (for failure messages). */
export function showMptcpEndpoints(lab: NetnsLab, ns: string): string {
  return lab.exec(ns, 'ip', 'mptcp', 'endpoint', 'show');
}

export interface MptcpConfig {
  sysctls?: MptcpSysctls;
  limits?: { subflows: number; addAddrAccepted: number };
  /** Flush the endpoints before adding `endpoints`. */
  flush?: boolean;
  endpoints?: MptcpEndpoint[];
}

/** Applies a whole kernel MPTCP configuration to `ns`: sysctls, limits, flush, endpoints. */
export function configureMptcp(lab: NetnsLab, ns: string, config: MptcpConfig): void {
  if (config.sysctls) setMptcpSysctls(lab, ns, config.sysctls);
  if (config.limits) setMptcpLimits(lab, ns, config.limits.subflows, config.limits.addAddrAccepted);
  if (config.flush) flushMptcpEndpoints(lab, ns);
  for (const ep of config.endpoints ?? []) addMptcpEndpoint(lab, ns, ep);
}

// ---------------------------------------------------------------------------------------------
// Observation: counters, sockets, captures, tshark
// ---------------------------------------------------------------------------------------------

export type Counters = Record<string, number>;

/**
 * Every counter of /proc/net/netstat (and /proc/net/snmp) read inside `ns`, grouped by their
 * line's name: `{ MPTcpExt: { MPJoinAckRx: 1, ... }, TcpExt: {...}, Tcp: {...}, ... }`.
 */
export function netstat(lab: NetnsLab, ns: string): Record<string, Counters> {
  const text = lab.exec(ns, 'cat', '/proc/net/netstat', '/proc/net/snmp');
  const groups: Record<string, Counters> = {};
  const lines = text.split('\n');
  // The files pair a line of names with a line of values, both led by "<Group>:".
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    const group = names[0]?.replace(/:$/, '');
    if (!group || values[0] !== names[0]) continue;
    const rec: Counters = {};
    for (let k = 1; k < names.length; k++) rec[names[k]!] = Number(values[k]);
    groups[group] = rec;
  }
  return groups;
}

/** The MPTcpExt counters of `ns` by kernel name (MPCapableSYNTX, MPJoinAckRx, ...). */
export function mptcpCounters(lab: NetnsLab, ns: string): Counters {
  return netstat(lab, ns)['MPTcpExt'] ?? {};
}

/** after − before for every counter in `after` (missing in `before` counts as 0). */
export function counterDelta(before: Counters, after: Counters): Counters {
  const d: Counters = {};
  for (const [k, v] of Object.entries(after)) d[k] = v - (before[k] ?? 0);
  return d;
}

/** Sum of counter `name` over several records (e.g. every server's delta). */
export function sumCounter(records: Counters[], name: string): number {
  return records.reduce((sum, r) => sum + (r[name] ?? 0), 0);
}

/** Only the non-zero counters (for failure messages). */
export function nonZero(c: Counters): Counters {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== 0));
}

export interface SockAddr {
  addr: string;
  port: number;
}

function parseSockAddr(s: string): SockAddr {
  const at = s.lastIndexOf(':');
  // "[fd50:1::1]:5000", "10.50.2.1%p2:47557", "*:5000".
  const addr = s
    .slice(0, at)
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  return { addr, port: Number(s.slice(at + 1)) };
}

interface SsRecord {
  state: string;
  local: SockAddr;
  peer: SockAddr;
  /** The detail words after the address line ("key:value" and bare words). */
  words: string[];
}

/** Runs `ss -H <flags> [filter]` in `ns` and groups each socket's lines. */
function ssRecords(lab: NetnsLab, ns: string, flags: string, filter: string[]): SsRecord[] {
  const text = lab.exec(ns, 'ss', '-H', flags, ...filter);
  const records: SsRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (/^\s/.test(line)) {
      records.at(-1)?.words.push(...line.trim().split(/\s+/));
      continue;
    }
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    records.push({ state: f[0]!, local: parseSockAddr(f[3]!), peer: parseSockAddr(f[4]!), words: [] });
  }
  return records;
}

function keyValues(words: string[]): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const w of words) {
    const at = w.indexOf(':');
    if (at > 0) kv[w.slice(0, at)] = w.slice(at + 1);
  }
  return kv;
}

/** An MPTCP socket as `ss -M` shows it (the connection, not its subflows). */
export interface MptcpSocket {
  state: string;
  local: SockAddr;
  peer: SockAddr;
  /** Subflows besides the first (the kernel's mptcpi_subflows). */
  subflows: number;
  addAddrAccepted: number;
  /** The local token (hex), if shown. */
  token: string | undefined;
  /** Every key:value ss printed (subflows_max, write_seq, snd_una, rcv_nxt, ...). */
  info: Record<string, string>;
}

/** The MPTCP sockets of `ns` (`ss -Mni`), optionally narrowed by an ss filter expression. */
export function mptcpSockets(lab: NetnsLab, ns: string, filter: string[] = []): MptcpSocket[] {
  return ssRecords(lab, ns, '-Mni', filter).map((r) => {
    const info = keyValues(r.words);
    return {
      state: r.state,
      local: r.local,
      peer: r.peer,
      subflows: Number(info['subflows'] ?? 0),
      addAddrAccepted: Number(info['add_addr_accepted'] ?? 0),
      token: info['token'],
      info,
    };
  });
}

/** The MPTCP side of a TCP socket that is a subflow (ss's tcp-ulp-mptcp block). */
export interface SubflowInfo {
  /** ss's letters: M/m MP_CAPABLE (remote/local), J/j MP_JOIN, B/b backup, e fully established, c connected. */
  flags: string;
  /** Opened with MP_JOIN (an extra subflow) rather than MP_CAPABLE. */
  join: boolean;
  remoteToken: string;
  remoteId: number;
  localToken: string;
  localId: number;
}

export interface TcpSocket {
  state: string;
  local: SockAddr;
  peer: SockAddr;
  bytesSent: number;
  bytesAcked: number;
  bytesReceived: number;
  /** Set when the socket is an MPTCP subflow. */
  mptcp: SubflowInfo | undefined;
  info: Record<string, string>;
}

/**
 * The TCP sockets of `ns` (`ss -tni`, established ones unless the filter says otherwise), with
 * byte counts and, for MPTCP subflows, their flags, tokens and address ids.
 */
export function tcpSockets(lab: NetnsLab, ns: string, filter: string[] = []): TcpSocket[] {
  return ssRecords(lab, ns, '-tni', filter).map((r) => {
    const ulp = r.words.indexOf('tcp-ulp-mptcp');
    const tcpWords = ulp < 0 ? r.words : r.words.slice(0, ulp);
    const info = keyValues(tcpWords);
    let mptcp: SubflowInfo | undefined;
    if (ulp >= 0) {
      const m = keyValues(r.words.slice(ulp + 1));
      const flags = m['flags'] ?? '';
      const tok = /^([0-9a-f]+)\(id:(\d+)\)\/([0-9a-f]+)\(id:(\d+)\)$/.exec(m['token'] ?? '');
      mptcp = {
        flags,
        join: /[Jj]/.test(flags),
        remoteToken: tok?.[1] ?? '',
        remoteId: Number(tok?.[2] ?? -1),
        localToken: tok?.[3] ?? '',
        localId: Number(tok?.[4] ?? -1),
      };
    }
    return {
      state: r.state,
      local: r.local,
      peer: r.peer,
      bytesSent: Number(info['bytes_sent'] ?? 0),
      bytesAcked: Number(info['bytes_acked'] ?? 0),
      bytesReceived: Number(info['bytes_received'] ?? 0),
      mptcp,
      info,
    };
  });
}

/** The subflows of `ns`, i.e. the TCP sockets that carry the tcp-ulp-mptcp block. */
export function mptcpSubflows(lab: NetnsLab, ns: string, filter: string[] = []): TcpSocket[] {
  return tcpSockets(lab, ns, filter).filter((s) => s.mptcp !== undefined);
}

/**
 * Waits, with bounded retries, until `probe` returns a value that `ok` accepts (for state the
 * kernel gives no event for, such as a counter that a softirq bumps after the packet that made
 * a peer print its line). Returns the last value; throws with it after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  probe: () => T,
  ok: (v: T) => boolean,
  timeoutMs = 5_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let v = probe();
  let wait = 5;
  while (!ok(v)) {
    if (Date.now() > until)
      throw new Error(`${what}: not reached within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 100);
    v = probe();
  }
  return v;
}

export interface CaptureOptions {
  /** The interface in `ns` to capture on. */
  iface: string;
  /** The pcap file to write (tcpdump's pcap format). */
  file: string;
  /** A pcap filter; the capture also admits its own marker datagram when `markerTo` is set. */
  filter?: string;
  /** Bytes kept per packet (tcpdump -s; 0: whole packets). Headers only: e.g. 200. */
  snaplen?: number;
  /**
   * An address reached over `iface` (the peer's end of the link). stop() then sends one UDP
   * datagram there and waits until the capture has printed it, so everything sent before it is
   * in the file — an event, not a guess at how long tcpdump needs.
   */
  markerTo?: string;
}

export const MARKER_PORT = 9;

export interface Capture {
  run: Run;
  file: string;
  /** Stops the capture (after the marker when there is one) and waits until tcpdump exited. */
  stop(): Promise<void>;
}

/**
 * Starts tcpdump in `ns` on one interface and resolves once it is capturing (its "listening on"
 * line). Each packet is written and flushed before tcpdump prints its line (-U --print), which
 * is what the marker relies on. Killed by lab.cleanup() if a test never stops it.
 */
export async function startCapture(lab: NetnsLab, ns: string, opts: CaptureOptions): Promise<Capture> {
  let filter = opts.filter ?? '';
  if (opts.markerTo !== undefined) {
    const marker = `udp and dst port ${MARKER_PORT} and dst host ${opts.markerTo}`;
    filter = filter === '' ? marker : `(${filter}) or (${marker})`;
  }
  const args = [
    '-i',
    opts.iface,
    '-w',
    opts.file,
    '-U',
    '--immediate-mode',
    '-Z',
    'root',
    '--print',
    '-l',
    '-n',
  ];
  args.push('-s', String(opts.snaplen ?? 0));
  if (filter !== '') args.push(filter);
  const run = start(lab, ns, 'tcpdump', args);
  await run.waitFor(/listening on/, 10_000);
  return {
    run,
    file: opts.file,
    async stop() {
      if (opts.markerTo !== undefined) {
        // bash's /dev/udp: one datagram, without a Python start-up.
        lab.exec(ns, 'bash', '-c', `printf mptun-lab-marker > /dev/udp/${opts.markerTo}/${MARKER_PORT}`);
        await run.waitFor(new RegExp(`> ${escapeRe(opts.markerTo)}\\.${MARKER_PORT}: UDP`), 10_000);
      }
      run.child.kill('SIGINT');
      const { code } = await run.done(10_000);
      if (code !== 0) throw new Error(`tcpdump on ${opts.iface} exited ${code}:\n${run.stderr()}`);
    },
  };
}

export interface TsharkOptions {
  /** Wireshark preferences (`-o name:value`), e.g. `{ 'tcp.relative_sequence_numbers': 'FALSE' }`. */
  prefs?: Record<string, string>;
  /** Two-pass analysis (-2), for fields that depend on later packets. */
  twoPass?: boolean;
}

/**
 * `tshark -r file -Y filter -T fields -e f1 -e f2 ...`: one record per matching packet, keyed
 * by field name. A field with several occurrences in a packet is joined with ','; an absent
 * field is ''.
 */
export async function tsharkFields<F extends string>(
  file: string,
  displayFilter: string,
  fields: readonly F[],
  opts: TsharkOptions = {},
): Promise<Record<F, string>[]> {
  const args = [
    '-n',
    '-r',
    file,
    '-Y',
    displayFilter,
    '-T',
    'fields',
    '-E',
    'occurrence=a',
    '-E',
    'aggregator=,',
  ];
  if (opts.twoPass) args.push('-2');
  for (const [k, v] of Object.entries(opts.prefs ?? {})) args.push('-o', `${k}:${v}`);
  for (const f of fields) args.push('-e', f);
  // Asynchronous, so several files can be read at once (tshark takes a second to start).
  const { stdout: text } = await execFileAsync('tshark', args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? ''])) as Record<F, string>;
    });
}

// ---------------------------------------------------------------------------------------------
// Kernel peers (mptcp-peer.py)
// ---------------------------------------------------------------------------------------------

export interface ServerOptions {
  host: string;
  port: number;
  /** Plain TCP instead of IPPROTO_MPTCP. */
  tcp?: boolean;
  /** Connections to serve (1 by default; 0: until killed). */
  conns?: number;
  /** Bytes to send back on each connection, deterministic from `seed`. */
  send?: number;
  seed?: number;
}

export interface ClientOptions {
  host: string;
  port: number;
  bytes: number;
  seed?: number;
  tcp?: boolean;
  bind?: string;
  /** Connections, one after the other. */
  count?: number;
  /** Extra subflows whose outcome (established or closed) to wait for, per connection. */
  subflows?: number;
  /** Wait for them right after connecting (so data uses them) or after sending (default). */
  subflowsWhen?: 'connected' | 'sent';
  /** Stop before closing each connection until release() (so a test can look at it live). */
  hold?: boolean;
  /** Seconds for any one wait in the peer (15 by default). */
  timeout?: number;
  /** Run the program under another, e.g. ['mptcpize', 'run'] (a plain TCP program made MPTCP). */
  wrap?: string[];
}

export interface SubflowOutcome {
  kind: 'established' | 'closed';
  src: SockAddr;
  dst: SockAddr;
  error: number;
}

/** What a peer printed about one connection. */
export interface PeerConnection {
  index: number;
  /** The peer's own end on the client, the remote end on the server. */
  addr: SockAddr | undefined;
  proto: 'mptcp' | 'fallback' | 'tcp' | undefined;
  token: string | undefined;
  subflows: SubflowOutcome[];
  sent: { bytes: number; sha256: string } | undefined;
  received: { bytes: number; sha256: string } | undefined;
  /** Extra subflows MPTCP_INFO counted just before close. */
  finalSubflows: number | undefined;
  closed: boolean;
}

export interface Peer {
  run: Run;
  /** Waits for the line `<step> <index> ...` (or `<step> ...` without an index); returns its words. */
  step(step: string, index?: number, timeoutMs?: number): Promise<string[]>;
  /** Every connection the peer reported so far, by index. */
  connections(): PeerConnection[];
  /** Lets a held connection (`hold`) go on to close. */
  release(): void;
  /** Waits for a clean exit (status 0); throws with the peer's output otherwise. */
  done(timeoutMs?: number): Promise<void>;
  /** Ends the peer (SIGTERM to its PID) and waits until it exited: a server with conns 0. */
  stop(): Promise<void>;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parsePeer(text: string): PeerConnection[] {
  const conns = new Map<number, PeerConnection>();
  const get = (i: number) => {
    let c = conns.get(i);
    if (!c) {
      c = {
        index: i,
        addr: undefined,
        proto: undefined,
        token: undefined,
        subflows: [],
        sent: undefined,
        received: undefined,
        finalSubflows: undefined,
        closed: false,
      };
      conns.set(i, c);
    }
    return c;
  };
  for (const line of text.split('\n')) {
    const w = line.trim().split(' ');
    const i = Number(w[1]);
    if (!Number.isInteger(i)) continue;
    const kv = keyValues(w.map((x) => x.replace('=', ':')));
    switch (w[0]) {
      case 'accepted':
      case 'connected': {
        const c = get(i);
        c.addr = { addr: w[2] ?? '', port: Number(w[3]) };
        c.proto = kv['proto'] as PeerConnection['proto'];
        c.token = kv['token'] === 'none' ? undefined : kv['token'];
        break;
      }
      case 'subflow':
        get(i).subflows.push({
          kind: w[2] === 'established' ? 'established' : 'closed',
          src: { addr: w[3] ?? '', port: Number(w[4]) },
          dst: { addr: w[5] ?? '', port: Number(w[6]) },
          error: Number(kv['error'] ?? 0),
        });
        break;
      case 'sent':
        get(i).sent = { bytes: Number(w[2]), sha256: w[3] ?? '' };
        break;
      case 'received':
        get(i).received = { bytes: Number(w[2]), sha256: w[3] ?? '' };
        break;
      case 'info':
        get(i).finalSubflows = Number(kv['subflows']);
        break;
      case 'closed':
        get(i).closed = true;
        break;
    }
  }
  return [...conns.values()].sort((a, b) => a.index - b.index);
}

function peer(lab: NetnsLab, ns: string, cmd: string[]): Peer {
  const [bin, ...args] = cmd as [string, ...string[]];
  const run = start(lab, ns, bin, args);
  return {
    run,
    async step(step, index, timeoutMs = 20_000) {
      const re = new RegExp(`^${escapeRe(step)}${index === undefined ? '' : ` ${index}`}(?: .*)?$`, 'm');
      const m = await run.waitFor(re, timeoutMs);
      return m[0].split(' ');
    },
    connections: () => parsePeer(run.stdout()),
    release() {
      run.child.stdin?.write('\n');
    },
    async done(timeoutMs = 30_000) {
      const { code, signal } = await run.done(timeoutMs);
      if (code !== 0) {
        throw new Error(`${cmd.join(' ')} ended with ${code ?? signal}:\n${run.stdout()}\n${run.stderr()}`);
      }
    },
    async stop() {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGTERM');
      await run.done(10_000);
    },
  };
}

/**
 * Starts a kernel server in `ns` and resolves once it listens. It receives each connection to
 * EOF, prints the byte count and SHA-256, sends `send` bytes back and closes.
 */
export async function startServer(lab: NetnsLab, ns: string, opts: ServerOptions): Promise<Peer> {
  const args = ['python3', MPTCP_PEER, 'server', '--host', opts.host, '--port', String(opts.port)];
  if (opts.tcp) args.push('--tcp');
  args.push(
    '--conns',
    String(opts.conns ?? 1),
    '--send',
    String(opts.send ?? 0),
    '--seed',
    String(opts.seed ?? 0),
  );
  const p = peer(lab, ns, args);
  await p.step('listening');
  return p;
}

/**
 * Starts a kernel client in `ns` (it begins connecting at once). Wait on its steps (`connected`,
 * `subflow`, `subflows`, `sent`, `holding`, `received`, `closed`, `done`) or on done().
 */
export function startClient(lab: NetnsLab, ns: string, opts: ClientOptions): Peer {
  const args = [
    ...(opts.wrap ?? []),
    'python3',
    MPTCP_PEER,
    'client',
    '--host',
    opts.host,
    '--port',
    String(opts.port),
  ];
  args.push(
    '--bytes',
    String(opts.bytes),
    '--seed',
    String(opts.seed ?? 0),
    '--count',
    String(opts.count ?? 1),
  );
  if (opts.tcp) args.push('--tcp');
  if (opts.bind !== undefined) args.push('--bind', opts.bind);
  if (opts.subflows !== undefined) {
    args.push('--subflows', String(opts.subflows), '--subflows-when', opts.subflowsWhen ?? 'sent');
  }
  if (opts.hold) args.push('--hold');
  if (opts.timeout !== undefined) args.push('--timeout', String(opts.timeout));
  return peer(lab, ns, args);
}
