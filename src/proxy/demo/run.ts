/**
 * `mptun demo`: the testbed (src/proxy/testbed) with mptun servers in s1 and s2 in front of
 * stock iperf3 servers on app, stock iperf3 as the unmodified app on cli: single-path plain TCP
 * first, then through `mptun client` over both paths, then both side by side while the VIP's
 * anycast route flips to one site. Prints the table, writes the chart, tears everything down,
 * also on failure and Ctrl-C (the namespaces go, and with them every route, rule, nftables
 * table and TUN the proxies made).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { deleteNamespaces, listNamespaces, runCommand, setVipRoute, testbedUp } from '../testbed/build.js';
import { rateText, type Site, type TestbedPlan, testbedPlan } from '../testbed/plan.js';
import { readState, removeState, statePath, writeState } from '../testbed/state.js';
import { NsProcess } from './procs.js';
import {
  type DemoResult,
  demoHtml,
  type FlipResult,
  type IperfResult,
  parseClientStats,
  parseIperf,
  parseServerLog,
} from './report.js';

export interface DemoOptions {
  prefix: string;
  stateDir: string;
  /** tbf rates of the two paths, bit/s. */
  rate1: number;
  rate2: number;
  /** Seconds of each measured transfer. */
  seconds: number;
  /** Seconds of the side-by-side transfers across the flip (the flip comes at a third of it). */
  flipSeconds: number;
  /** The chart page (.html), or undefined for none. */
  plot: string | undefined;
  /** A directory for each process's output (stdout, then stderr), or undefined. */
  logs?: string | undefined;
  log: Logger;
  /** Lines for the user (progress and the table). */
  print: (line: string) => void;
  signal: AbortSignal;
}

/** Seconds past its length after which an iperf3 run counts as stalled and is stopped. */
const IPERF_GRACE_SEC = 15;

/** Ports of the two backend iperf3 servers on app (one test at a time each). */
export const DEMO_PORTS = [5201, 5202] as const;

/** Whether `mptun client` exists in this tree: the demo never stands in for it. */
export function clientAvailable(): boolean {
  const dir = new URL('../commands/', import.meta.url);
  return ['client.ts', 'client.js'].some((f) => existsSync(fileURLToPath(new URL(f, dir))));
}

export class DemoAborted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'DemoAborted';
  }
}

function check(signal: AbortSignal): void {
  if (signal.aborted) throw new DemoAborted();
}

/** Runs the demo; always tears down what it built. Throws DemoAborted on Ctrl-C. */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  // Progress lines carry the time since the start.
  const t0 = performance.now();
  const o: DemoOptions = {
    ...options,
    print: (line) => options.print(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}`),
  };
  const plan = testbedPlan({ prefix: o.prefix, rate1: o.rate1, rate2: o.rate2, loAddrs: false });
  const procs: NsProcess[] = [];
  let built = false;
  if ((await readState(o.stateDir, o.prefix)) !== undefined) {
    throw new InvalidArgumentError(
      `testbed '${o.prefix}' is recorded in ${statePath(o.stateDir, o.prefix)}: it is in use; choose another --prefix, or run 'mptun testbed down --prefix ${o.prefix}' if it is left over`,
    );
  }
  try {
    o.print(
      `testbed: building '${o.prefix}' (cli, lb, s1, s2, app; p1 ${rateText(o.rate1)}, p2 ${rateText(o.rate2)})`,
    );
    try {
      await testbedUp(plan, { signal: o.signal });
    } catch (err) {
      if (o.signal.aborted) throw new DemoAborted();
      throw err;
    }
    built = true;
    await writeState(o.stateDir, { version: 1, plan, vipRoute: 'ecmp', createdAt: new Date().toISOString() });
    o.print('testbed: up');
    check(o.signal);
    try {
      return await measure(o, plan, procs);
    } catch (err) {
      // A wait cut short by Ctrl-C rejects with the signal's AbortError: that is the interruption.
      if (o.signal.aborted) throw new DemoAborted();
      throw err;
    }
  } finally {
    // testbedUp removes what it made when it fails, and refuses a prefix in use without touching
    // it: only a testbed this run built is ours to take down.
    if (built) await teardown(o, plan, procs);
  }
}

/**
 * Stops the processes one by one, the last started first: the client before the servers it
 * connects to, the servers before their backends, so each one's last connections finish their
 * close against peers that are still there (stopped together, a server could vanish while the
 * client still owed it a DATA_ACK, and the client's stop would then reset that connection).
 */
async function stopInReverse(procs: NsProcess[]): Promise<void> {
  for (const p of [...procs].reverse()) await p.stop();
}

async function teardown(o: DemoOptions, plan: TestbedPlan, procs: NsProcess[]): Promise<void> {
  // SIGTERM: the proxies remove what they added.
  await stopInReverse(procs);
  if (o.logs !== undefined) {
    try {
      await mkdir(o.logs, { recursive: true });
      for (const [i, p] of procs.entries()) {
        const name = `${String(i + 1).padStart(2, '0')}-${p.label.replace(/[^A-Za-z0-9.]+/g, '-').replace(/-+$/, '')}.log`;
        await writeFile(join(o.logs, name), `${p.stdout}${p.stderr}`);
      }
      o.print(`logs: ${o.logs}`);
    } catch (err) {
      o.log.warn({ err, dir: o.logs }, 'demo: could not write the logs');
    }
  }
  const names = Object.values(plan.namespaces);
  let existing: Set<string>;
  try {
    existing = await listNamespaces();
  } catch (err) {
    o.log.warn({ err }, 'demo: could not list namespaces; deleting every one of the plan');
    existing = new Set(names);
  }
  const left = names.filter((n) => existing.has(n));
  const failed = await deleteNamespaces(left);
  for (const f of failed) o.log.error({ ns: f.ns, err: f.error }, 'demo: could not delete a namespace');
  await removeState(o.stateDir, plan.prefix);
  if (left.length > 0) o.print(`testbed: removed ${left.join(' ')}`);
}

async function measure(o: DemoOptions, plan: TestbedPlan, procs: NsProcess[]): Promise<DemoResult> {
  const ns = plan.namespaces;
  const vip = plan.vip.v4;
  const start = (p: NsProcess) => {
    procs.push(p);
    return p;
  };
  // The servers' TUNs hold the VIP and unique addresses: their namespaces forward to them.
  for (const s of plan.servers)
    await runCommand(['ip', 'netns', 'exec', ns[s.name], 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const backends = DEMO_PORTS.map((port) =>
    start(
      new NsProcess(`iperf3 -s -p ${port} (app)`, ns.app, 'iperf3', [
        '-s',
        '-p',
        String(port),
        '--forceflush',
      ]),
    ),
  );
  for (const b of backends) await b.waitFor(/Server listening on/, 10_000, o.signal);
  const servers = plan.servers.map((s) =>
    start(
      NsProcess.mptun(`mptun server (${s.name})`, ns[s.name], [
        '--log-level',
        'debug',
        'server',
        '--tun',
        'mptd0',
        '--vip',
        vip,
        '--unique',
        s.unique.v4,
        ...DEMO_PORTS.flatMap((p) => ['--listen', String(p), '--backend', `${plan.app.v4}:${p}`]),
        '--drain-timeout',
        '2',
      ]),
    ),
  );
  // The client boots beside the servers (each mptun process spends its first seconds loading).
  const client = clientAvailable()
    ? start(
        NsProcess.mptun('mptun client (cli)', ns.cli, [
          'client',
          '--tun',
          'mptc0',
          '--intercept',
          `${vip}/32`,
          ...plan.paths.flatMap((p) => ['--path', `${p.cli.dev}=${p.lb.v4}`]),
          '--drain-timeout',
          '2',
          // Bytes per subflow twice a second: the chart's subflow lines.
          '--stats-interval',
          '0.5',
        ]),
      )
    : undefined;
  await Promise.all(servers.map((s) => s.waitFor(/"msg":"server: listening"/, 60_000, o.signal)));
  o.print(
    `servers: mptun server on s1 (${plan.servers[0].unique.v4}) and s2 (${plan.servers[1].unique.v4}), VIP ${vip}, backends iperf3 -s on app ${plan.app.v4}:${DEMO_PORTS.join(',')}`,
  );

  const iperf = async (label: string, args: string[], seconds: number): Promise<IperfResult> => {
    const startedAtMs = Date.now();
    const p = start(
      new NsProcess(label, ns.cli, 'iperf3', [
        '-c',
        vip,
        '-J',
        '-t',
        String(seconds),
        '--connect-timeout',
        '5000',
        ...args,
      ]),
    );
    // A transfer that stalls (iperf3 itself waits minutes) is stopped and reported as such.
    let stalled = false;
    const deadline = setTimeout(
      () => {
        stalled = true;
        void p.stop();
      },
      (seconds + IPERF_GRACE_SEC) * 1000,
    );
    const exit = await p.done(o.signal).finally(() => clearTimeout(deadline));
    check(o.signal);
    const r = { ...parseIperf(p.stdout, exit.code), startedAtMs };
    if (!stalled) return r;
    const why = `stopped: not done ${IPERF_GRACE_SEC} s after its ${seconds} s`;
    return { ...r, ok: false, error: r.error === undefined ? why : `${why} (${r.error})` };
  };

  const p1 = plan.paths[0].cli.v4;
  o.print(`run 1: plain TCP, iperf3 -c ${vip} -B ${p1} (path p1 only), ${o.seconds} s`);
  const baseline = await iperf('iperf3 (plain TCP)', ['-B', p1, '-p', String(DEMO_PORTS[0])], o.seconds);
  o.print(
    `  ${baseline.ok ? `${(baseline.bitsPerSecond / 1e6).toFixed(1)} Mbit/s` : `failed: ${baseline.error}`}`,
  );

  let mptun: DemoResult['mptun'];
  let flip: DemoResult['flip'];
  if (client === undefined) {
    const why = "'mptun client' is not in this build yet (src/proxy/commands/client.ts)";
    mptun = { unavailable: why };
    flip = { unavailable: why };
    o.print(`run 2: skipped: ${why}`);
  } else {
    await client.waitFor(/"msg":"client: intercepting"/, 60_000, o.signal);
    o.print(`client: mptun client on cli intercepting ${vip}/32, paths p1 and p2`);
    o.print(`run 2: iperf3 -c ${vip} through mptun client (paths p1 and p2), ${o.seconds} s`);
    mptun = await iperf('iperf3 (mptun)', ['-p', String(DEMO_PORTS[0])], o.seconds);
    o.print(`  ${mptun.ok ? `${(mptun.bitsPerSecond / 1e6).toFixed(1)} Mbit/s` : `failed: ${mptun.error}`}`);
    flip = await flipRun(o, plan, servers, iperf);
  }

  // The servers' logs are complete once they stopped (connection and subflow lines at close).
  await stopInReverse(procs);
  const result: DemoResult = {
    prefix: plan.prefix,
    rates: [rateText(o.rate1), rateText(o.rate2)],
    seconds: o.seconds,
    baseline,
    mptun,
    servers: plan.servers.map((s, i) => ({ name: s.name, log: parseServerLog(servers[i]!.stderr) })),
    ...(flip === undefined ? {} : { flip }),
    ...(client === undefined ? {} : { clientStats: parseClientStats(client.stderr) }),
    ...(o.plot === undefined ? {} : { plot: o.plot }),
  };
  if (o.plot !== undefined) await writeFile(o.plot, demoHtml(result));
  return result;
}

/**
 * Plain TCP (bound to p1, not intercepted) and mptun side by side on the second backend and the
 * first; once both are connected, a third of the way in, the VIP is routed to the site that does
 * NOT hold the plain connection: its packets reach a server that never saw it (reset), while
 * the mptun connection keeps its subflows to its server's unique address.
 */
async function flipRun(
  o: DemoOptions,
  plan: TestbedPlan,
  servers: NsProcess[],
  iperf: (label: string, args: string[], seconds: number) => Promise<IperfResult>,
): Promise<FlipResult> {
  const before = servers.map((s) => parseServerLog(s.stderr).connections.length);
  const p1 = plan.paths[0].cli.v4;
  o.print(
    `run 3: plain TCP and mptun side by side, ${o.flipSeconds} s; the anycast route flips a third of the way in`,
  );
  const startedAt = performance.now();
  const plainRun = iperf('iperf3 (plain TCP, flip)', ['-B', p1, '-p', String(DEMO_PORTS[1])], o.flipSeconds);
  const mptunRun = iperf('iperf3 (mptun, flip)', ['-p', String(DEMO_PORTS[0])], o.flipSeconds);
  // Where the plain data connection went: the second plain TCP connection on port 5202.
  const plainSite = await new Promise<Site | undefined>((resolve) => {
    const look = () =>
      plan.servers.flatMap((s, i) =>
        parseServerLog(servers[i]!.stderr)
          .connections.slice(before[i])
          .filter((c) => c.proto === 'tcp')
          .map(() => s.name),
      );
    // The servers log each accepted connection; a short poll of their output, for at most 5 s.
    const started = performance.now();
    const timer = setInterval(() => {
      const found = look();
      if (found.length >= 2 || performance.now() - started > 5000 || o.signal.aborted) {
        clearInterval(timer);
        resolve(found.at(-1));
      }
    }, 50);
  });
  check(o.signal);
  const flipAt = (o.flipSeconds * 1000) / 3;
  const wait = flipAt - (performance.now() - startedAt);
  if (wait > 0) await delay(wait, undefined, { signal: o.signal }).catch(() => check(o.signal));
  const site: Site = plainSite === 's1' ? 's2' : 's1';
  await setVipRoute(plan, site);
  await writeState(o.stateDir, { version: 1, plan, vipRoute: site, createdAt: new Date().toISOString() });
  const atSec = (performance.now() - startedAt) / 1000;
  o.print(
    `  ${atSec.toFixed(1)} s: VIP ${plan.vip.v4} now routed to ${site} only (mptun testbed anycast ${site})`,
  );
  const [plain, mptun] = await Promise.all([plainRun, mptunRun]);
  return { site, atSec, plain, mptun, plainSite };
}
