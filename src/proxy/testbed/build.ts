/**
 * Builds and removes the testbed of plan.ts with iproute2 and tc. Everything lives inside the
 * testbed's own namespaces (veth pairs are created straight into them), so removing those
 * namespaces removes every device, address, route, rule and qdisc `up` made; nothing in the
 * caller's namespace is touched.
 *
 * `up` runs one command at a time and checks its abort signal between them; on any failure or
 * abort it deletes the namespaces it created (and only those) before it rethrows.
 */
import { execFile } from 'node:child_process';
import { HostCommandError, InvalidArgumentError } from '../../errors.js';
import {
  HASH_FIELDS,
  HASH_POLICY,
  HOSTS,
  type HostName,
  type LinkEnd,
  type Site,
  type TestbedPlan,
  V4_PREFIX,
  V6_PREFIX,
} from './plan.js';

/** Runs one host command (argv[0] is the program) and resolves with its stdout. */
export type Runner = (argv: readonly string[]) => Promise<string>;

/** The default runner: execFile, a failure becomes a HostCommandError with the command and its stderr. */
export const runCommand: Runner = (argv) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    execFile(cmd!, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(new HostCommandError(`'${argv.join(' ')}' failed: ${why}`, { cause: err }));
      } else resolve(stdout);
    });
  });

/** One step of `up`: a command, and the namespace it creates if it is `ip netns add`. */
export interface Step {
  argv: string[];
  creates?: string;
}

/** The VIP's route in lb: ECMP over both servers, or one server site (anycast). */
export type VipMode = 'ecmp' | Site;

/** A tbf queue: about 20 ms at the rate, bursts of 5 ms (at least 32 KB, so 64 KB TSO frames pass split). */
export function tbfArgs(bps: number): string[] {
  const burst = Math.max(32 * 1024, Math.ceil((bps / 8) * 0.005));
  return ['root', 'tbf', 'rate', `${bps}bit`, 'burst', String(burst), 'latency', '20ms'];
}

/** Every command `up` runs, in order (pure: the plan in, argv lists out). */
export function upSteps(plan: TestbedPlan): Step[] {
  const ns = plan.namespaces;
  const steps: Step[] = [];
  const inNs = (host: HostName, ...argv: string[]) => steps.push({ argv: ['ip', '-n', ns[host], ...argv] });
  const sysctl = (host: HostName, ...settings: string[]) =>
    steps.push({ argv: ['ip', 'netns', 'exec', ns[host], 'sysctl', '-qw', ...settings] });

  for (const host of HOSTS) {
    steps.push({ argv: ['ip', 'netns', 'add', ns[host]], creates: ns[host] });
    inNs(host, 'link', 'set', 'lo', 'up');
    // IPv6 addresses usable at once (a forwarding router solicits from its link-local address
    // and would wait out a tentative one), and no router solicitations.
    sysctl(
      host,
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
      'net.ipv6.conf.all.router_solicitations=0',
      'net.ipv6.conf.default.router_solicitations=0',
    );
  }
  sysctl(
    'lb',
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
    `net.ipv4.fib_multipath_hash_policy=${HASH_POLICY}`,
    `net.ipv4.fib_multipath_hash_fields=0x${HASH_FIELDS.toString(16)}`,
    `net.ipv6.fib_multipath_hash_policy=${HASH_POLICY}`,
    `net.ipv6.fib_multipath_hash_fields=0x${HASH_FIELDS.toString(16)}`,
    `net.ipv4.fib_multipath_hash_seed=${plan.hashSeed}`,
  );

  const addrs = (end: LinkEnd) => {
    inNs(end.host, 'addr', 'add', `${end.v4}/${V4_PREFIX}`, 'dev', end.dev);
    inNs(end.host, '-6', 'addr', 'add', `${end.v6}/${V6_PREFIX}`, 'dev', end.dev, 'nodad');
  };
  /** A veth pair; `bridge` puts b's end into that bridge instead of giving it addresses. */
  const link = (a: LinkEnd, b: { host: HostName; dev: string } | LinkEnd, bridge?: string) => {
    steps.push({
      argv: [
        'ip',
        'link',
        'add',
        a.dev,
        'netns',
        ns[a.host],
        'type',
        'veth',
        'peer',
        'name',
        b.dev,
        'netns',
        ns[b.host],
      ],
    });
    if (bridge !== undefined) inNs(b.host, 'link', 'set', b.dev, 'master', bridge);
    // Up before the addresses: an IPv6 address added to a link that is still down does not
    // answer neighbour solicitations until addrconf catches up, a second or more later.
    inNs(a.host, 'link', 'set', a.dev, 'up');
    inNs(b.host, 'link', 'set', b.dev, 'up');
    addrs(a);
    if (bridge === undefined) addrs(b as LinkEnd);
  };

  // Two paths from cli to lb, each shaped on both ends when a rate is given.
  for (const p of plan.paths) {
    link(p.cli, p.lb);
    if (p.rate !== undefined) {
      for (const end of [p.cli, p.lb]) {
        steps.push({ argv: ['tc', '-n', ns[end.host], 'qdisc', 'add', 'dev', end.dev, ...tbfArgs(p.rate)] });
      }
    }
    // Source-address routing: a socket bound to path k's address leaves on path k.
    for (const [fam, self, gw] of [
      ['-4', p.cli.v4, p.lb.v4],
      ['-6', p.cli.v6, p.lb.v6],
    ] as const) {
      inNs('cli', fam, 'route', 'add', 'default', 'via', gw, 'dev', p.cli.dev, 'table', String(p.table));
      inNs('cli', fam, 'rule', 'add', 'from', self, 'lookup', String(p.table), 'priority', String(p.table));
    }
  }
  // Everything else (unbound sockets) leaves on path 1.
  const [p1] = plan.paths;
  inNs('cli', 'route', 'add', 'default', 'via', p1.lb.v4, 'dev', p1.cli.dev);
  inNs('cli', '-6', 'route', 'add', 'default', 'via', p1.lb.v6, 'dev', p1.cli.dev);

  // The service host: one address on a bridge that both servers' links join.
  inNs('app', 'link', 'add', plan.appBridge, 'type', 'bridge');
  inNs('app', 'link', 'set', plan.appBridge, 'up');
  inNs('app', 'addr', 'add', `${plan.app.v4}/${V4_PREFIX}`, 'dev', plan.appBridge);
  inNs('app', '-6', 'addr', 'add', `${plan.app.v6}/${V6_PREFIX}`, 'dev', plan.appBridge, 'nodad');

  for (const s of plan.servers) {
    link(s.lbEnd, s.uplink);
    link(s.appLink, { host: 'app', dev: s.name }, plan.appBridge);
    if (plan.loAddrs) {
      for (const a of [plan.vip.v4, s.unique.v4]) inNs(s.name, 'addr', 'add', `${a}/32`, 'dev', 'lo');
      for (const a of [plan.vip.v6, s.unique.v6]) inNs(s.name, '-6', 'addr', 'add', `${a}/128`, 'dev', 'lo');
    }
    inNs(s.name, 'route', 'add', 'default', 'via', s.lbEnd.v4, 'dev', s.uplink.dev);
    inNs(s.name, '-6', 'route', 'add', 'default', 'via', s.lbEnd.v6, 'dev', s.uplink.dev);
    // Each unique address is reached without balancing.
    inNs('lb', 'route', 'add', `${s.unique.v4}/32`, 'via', s.uplink.v4, 'dev', s.lbEnd.dev);
    inNs('lb', '-6', 'route', 'add', `${s.unique.v6}/128`, 'via', s.uplink.v6, 'dev', s.lbEnd.dev);
  }
  for (const argv of vipRouteCommands(plan, 'ecmp', 'add')) steps.push({ argv });
  return steps;
}

/** The commands that set lb's VIP routes (both families) for `mode`. */
export function vipRouteCommands(plan: TestbedPlan, mode: VipMode, verb: 'add' | 'replace'): string[][] {
  const lb = plan.namespaces.lb;
  const servers = mode === 'ecmp' ? plan.servers : plan.servers.filter((s) => s.name === mode);
  if (servers.length === 0) throw new InvalidArgumentError(`no server site '${mode}'; use s1 or s2`);
  const via = (fam: 'v4' | 'v6') =>
    servers.length === 1
      ? ['via', servers[0]!.uplink[fam], 'dev', servers[0]!.lbEnd.dev]
      : servers.flatMap((s) => ['nexthop', 'via', s.uplink[fam], 'dev', s.lbEnd.dev]);
  return [
    ['ip', '-n', lb, 'route', verb, `${plan.vip.v4}/32`, ...via('v4')],
    ['ip', '-n', lb, '-6', 'route', verb, `${plan.vip.v6}/128`, ...via('v6')],
  ];
}

/** The network namespaces that exist now (`ip netns list`). */
export async function listNamespaces(run: Runner = runCommand): Promise<Set<string>> {
  const text = await run(['ip', 'netns', 'list']);
  return new Set(
    text
      .split('\n')
      .map((l) => l.trim().split(' ')[0] ?? '')
      .filter((n) => n !== ''),
  );
}

/** Thrown (as its cause) when `up` stopped because its signal was aborted. */
export class TestbedInterrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'TestbedInterrupted';
  }
}

export interface UpOptions {
  run?: Runner;
  signal?: AbortSignal;
  /** Called before each step (progress logs). */
  onStep?: (step: Step, index: number, total: number) => void;
  /** Told when listing the namespaces for the rollback failed (it then removes those it recorded). */
  onCleanupError?: (err: unknown) => void;
}

/**
 * Builds `plan`. Refuses (InvalidArgumentError, nothing touched) when any of its namespaces
 * exists already. On a failed step or an abort, deletes the namespaces it created and rethrows
 * (an abort as TestbedInterrupted).
 */
export async function testbedUp(plan: TestbedPlan, opts: UpOptions = {}): Promise<void> {
  const run = opts.run ?? runCommand;
  const existing = await listNamespaces(run);
  const taken = Object.values(plan.namespaces).filter((n) => existing.has(n));
  if (taken.length > 0) {
    throw new InvalidArgumentError(
      `namespace ${taken.join(', ')} already exists: prefix '${plan.prefix}' is in use; run 'mptun testbed down --prefix ${plan.prefix}' if it is a testbed, or choose another --prefix`,
    );
  }
  const steps = upSteps(plan);
  const created: string[] = [];
  try {
    for (const [i, step] of steps.entries()) {
      if (opts.signal?.aborted) throw new TestbedInterrupted();
      opts.onStep?.(step, i, steps.length);
      await run(step.argv);
      if (step.creates !== undefined) created.push(step.creates);
    }
    if (opts.signal?.aborted) throw new TestbedInterrupted();
  } catch (err) {
    // What this run made: the namespaces it recorded, and any of the plan's that appeared since
    // the check above (an `ip netns add` killed by the same Ctrl-C may have made its namespace).
    let made = created;
    try {
      const now = await listNamespaces(run);
      made = Object.values(plan.namespaces).filter((n) => now.has(n) && !existing.has(n));
    } catch (listErr) {
      opts.onCleanupError?.(listErr);
    }
    const failed = await deleteNamespaces(made, run);
    // An `ip` killed by the same Ctrl-C fails its step: that is the interruption, not a failure.
    const cause = opts.signal?.aborted ? new TestbedInterrupted() : err;
    if (failed.length > 0) {
      throw new HostCommandError(
        `testbed up failed and could not remove ${failed.map((f) => f.ns).join(', ')}: ${failed.map((f) => f.error).join('; ')}`,
        { cause },
      );
    }
    throw cause;
  }
}

/** Deletes each namespace (newest first); returns those it could not delete. */
export async function deleteNamespaces(
  names: readonly string[],
  run: Runner = runCommand,
): Promise<{ ns: string; error: string }[]> {
  const failed: { ns: string; error: string }[] = [];
  for (const ns of [...names].reverse()) {
    try {
      await run(['ip', 'netns', 'delete', ns]);
    } catch (err) {
      failed.push({ ns, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return failed;
}

/** PIDs of processes still inside `ns` (`ip netns pids`): they keep its devices alive after delete. */
export async function namespacePids(ns: string, run: Runner = runCommand): Promise<number[]> {
  const text = await run(['ip', 'netns', 'pids', ns]);
  return text
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Points lb's VIP route at `mode` (both servers, or one site). */
export async function setVipRoute(plan: TestbedPlan, mode: VipMode, run: Runner = runCommand): Promise<void> {
  for (const argv of vipRouteCommands(plan, mode, 'replace')) await run(argv);
}
