/**
 * The whole proxy chain in the demo's topology (src/proxy/testbed: cli ─p1/p2─ lb ─ s1, s2 ─ app),
 * built two ways on one testbed, so both can be measured in the same run:
 *
 * - mptun: app in cli → `mptun client` (TUN, both paths) → ECMP lb → `mptun server` on s1/s2
 *   (VIP + unique address in its TUN, C flag, ADD_ADDR) → the backend on app, plain TCP.
 * - kernel: app in cli → a Node relay under `mptcpize run` (test/support/tcp-relay.mjs) on
 *   127.0.0.1, connecting out with kernel MPTCP from path 1's address → ECMP lb → a Node relay
 *   under mptcpize on s1/s2 (VIP + unique address on lo, allow_join_initial_addr_port=0, a
 *   `signal` endpoint for the unique address) → the same backend. cli has a `subflow fullmesh`
 *   endpoint on each path, so the kernel joins the announced address from both, as our client
 *   does: three subflows per connection on each chain.
 *
 * The mptun servers and client keep running throughout; the kernel chain holds the VIP and the
 * unique addresses on the servers' lo only while it runs (`kernelAddrs`): the local table wins
 * over the route into the mptun server's TUN. The kernel relay in cli binds path 1's address, so
 * the policy rule for it takes it past the mptun client's interception route.
 *
 * Backends on app (plain TCP): iperf3 -s on IPERF_PORT, and the lab's kernel peer
 * (mptcp-peer.py server --tcp) on SHA_PORT, which checks the received bytes' SHA-256 and sends
 * seeded bytes back. The mptun chain listens on the same ports; the kernel chain's relays on
 * those + RELAY_OFFSET. Everything is removed by close(), also on failure.
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  deleteNamespaces,
  listNamespaces,
  runCommand,
  tbfArgs,
  testbedUp,
} from '../../src/proxy/testbed/build.js';
import { type TestbedPlan, testbedPlan } from '../../src/proxy/testbed/plan.js';
import {
  type Counters,
  configureMptcp,
  labSha256,
  mptcpCounters,
  startClient,
  startServer,
} from './mptcp-lab.js';
import type { NetnsLab } from './netns.js';
import { json, MPTUN_BIN, type Run, start } from './perf-lab.js';

export const TCP_RELAY = fileURLToPath(new URL('./tcp-relay.mjs', import.meta.url));
export const IPERF_PORT = 5201;
export const SHA_PORT = 7001;
export const RELAY_OFFSET = 100;

export type Chain = 'mptun' | 'kernel';

export interface ChainOptions {
  /** tbf rate of each path in bit/s (both ends); undefined: unshaped. */
  rate?: number;
  /** Run the mptun chain (false: only the kernel chain, for the relay test). */
  mptun?: boolean;
  /** Bytes the SHA-256 backend sends back on each connection (16 MiB by default). */
  shaDown?: number;
  /**
   * net.ipv4.tcp_congestion_control for every namespace (default: inherited from the host). A
   * namespace may only set one listed in the host's net.ipv4.tcp_allowed_congestion_control.
   */
  kernelCongestion?: string;
  /** The mptun processes' --log-level (info by default; debug logs each subflow at close). */
  logLevel?: 'info' | 'debug';
}

/** One line tcp-relay.mjs prints per connection. */
export interface RelayLine {
  msg: 'relayed' | 'relay failed';
  port: number;
  up?: number;
  down?: number;
  error?: string;
}

/** Seed of the bytes the SHA-256 backend sends. */
export const SHA_DOWN_SEED = 77;

export interface IperfResult {
  mbps: number;
  /** The sender's retransmissions as iperf3 reports them (cli's TCP towards the chain). */
  retransmits: number;
  /** Bytes the receiving iperf3 counted. */
  bytes: number;
  /**
   * CPU time the chain's proxy processes ran during the test, and the time they waited on a run
   * queue for a CPU (/proc/PID/schedstat), summed over them (mptun: client and both servers;
   * kernel: the three relays, whose kernel MPTCP work in softirq is partly charged elsewhere).
   */
  proxyCpuMs: number;
  proxyWaitMs: number;
  wallMs: number;
  /**
   * Share of the machine's CPU time the hypervisor gave to others during the test (/proc/stat
   * steal): on a shared VM the proxies, which need the CPUs more than the kernel chain's relays
   * do, lose most by it.
   */
  stealShare: number;
}

/** [steal, total] jiffies of all CPUs since boot (/proc/stat's first line). */
function cpuSteal(): [number, number] {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return [fields[7] ?? 0, total];
}

/** [ns on CPU, ns waiting on a run queue] of a process. */
function schedstat(pid: number | undefined): [number, number] {
  if (pid === undefined) return [0, 0];
  const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  return [run ?? 0, wait ?? 0];
}

export interface ShaResult {
  up: { bytes: number; sha256: string; expected: string };
  down: { bytes: number; sha256: string; expected: string };
  ok: boolean;
}

export class ChainLab {
  readonly plan: TestbedPlan;
  private readonly procs: Run[] = [];
  private built = false;
  private kernelOn = false;
  private relays: Run[] = [];
  mptunServers: Run[] = [];
  mptunClient: Run | undefined;
  readonly shaDown: number;
  /** The kernel's congestion control in the testbed's namespaces. */
  kernelCongestion = '';

  private constructor(
    private readonly lab: NetnsLab,
    tag: string,
    readonly opts: ChainOptions,
  ) {
    this.plan = testbedPlan({
      prefix: `${lab.prefix}-${tag}`,
      rate1: opts.rate,
      rate2: opts.rate,
      loAddrs: false,
    });
    this.shaDown = opts.shaDown ?? 16 * 1024 * 1024;
  }

  /** Builds the testbed, starts the backends, the mptun proxies (unless opts.mptun is false). */
  static async create(lab: NetnsLab, tag: string, opts: ChainOptions = {}): Promise<ChainLab> {
    const c = new ChainLab(lab, tag, opts);
    try {
      await c.setUp();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get ns(): TestbedPlan['namespaces'] {
    return this.plan.namespaces;
  }

  private exec(ns: string, ...argv: string[]): string {
    return this.lab.exec(ns, ...(argv as [string, ...string[]]));
  }

  private track(run: Run): Run {
    this.procs.push(run);
    return run;
  }

  private async setUp(): Promise<void> {
    this.built = true;
    await testbedUp(this.plan);
    const { ns, plan } = this;
    for (const s of plan.servers) this.exec(ns[s.name], 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // The kernel's TCP (and MPTCP subflows) run the namespace's default congestion control: the
    // host's (BBR on this machine), since a namespace may only pick one from the host's
    // net.ipv4.tcp_allowed_congestion_control, and Node's sockets cannot choose their own.
    const cc = this.opts.kernelCongestion;
    if (cc !== undefined)
      for (const n of Object.values(ns))
        this.exec(n, 'sysctl', '-qw', `net.ipv4.tcp_congestion_control=${cc}`);
    this.kernelCongestion = this.exec(ns.cli, 'sysctl', '-n', 'net.ipv4.tcp_congestion_control').trim();
    // Kernel MPTCP: the servers set C and announce their unique address; cli joins it from each path.
    for (const s of plan.servers) {
      configureMptcp(this.lab, ns[s.name], {
        sysctls: { enabled: true, allow_join_initial_addr_port: false },
        limits: { subflows: 4, addAddrAccepted: 0 },
        flush: true,
        endpoints: [{ addr: s.unique.v4, flags: ['signal'] }],
      });
    }
    configureMptcp(this.lab, ns.cli, {
      sysctls: { enabled: true },
      limits: { subflows: 4, addAddrAccepted: 2 },
      flush: true,
      endpoints: plan.paths.map((p) => ({ addr: p.cli.v4, dev: p.cli.dev, flags: ['subflow', 'fullmesh'] })),
    });

    const iperf = this.track(
      start(this.lab, ns.app, 'iperf3', ['-s', '-p', String(IPERF_PORT), '--forceflush']),
    );
    await iperf.waitFor(/Server listening/);
    const sha = await startServer(this.lab, ns.app, {
      host: '0.0.0.0',
      port: SHA_PORT,
      tcp: true,
      conns: 0,
      send: this.shaDown,
      seed: SHA_DOWN_SEED,
    });
    this.track(sha.run);

    if (this.opts.mptun ?? true) await this.startMptun();
  }

  private async startMptun(): Promise<void> {
    const { ns, plan } = this;
    const ports = [IPERF_PORT, SHA_PORT];
    this.mptunServers = plan.servers.map((s) =>
      this.track(
        this.startMptunProcess(ns[s.name], [
          'server',
          '--tun',
          'mptch0',
          '--vip',
          plan.vip.v4,
          '--unique',
          s.unique.v4,
          ...ports.flatMap((p) => ['--listen', String(p), '--backend', `${plan.app.v4}:${p}`]),
          '--drain-timeout',
          '2',
        ]),
      ),
    );
    this.mptunClient = this.track(
      this.startMptunProcess(ns.cli, [
        'client',
        '--tun',
        'mptcc0',
        '--intercept',
        `${plan.vip.v4}/32`,
        ...plan.paths.flatMap((p) => ['--path', `${p.cli.dev}=${p.lb.v4}`]),
        '--drain-timeout',
        '2',
      ]),
    );
    await Promise.all(this.mptunServers.map((s) => s.waitFor(/"msg":"server: listening"/, 60_000)));
    await this.mptunClient.waitFor(/"msg":"client: intercepting"/, 60_000);
  }

  private startMptunProcess(ns: string, args: string[]): Run {
    return start(this.lab, ns, process.execPath, [
      MPTUN_BIN,
      '--log-level',
      this.opts.logLevel ?? 'info',
      ...args,
    ]);
  }

  /** Puts the VIP and the unique addresses on the servers' lo (kernel chain) or takes them off. */
  kernelAddrs(on: boolean): void {
    if (on === this.kernelOn) return;
    for (const s of this.plan.servers) {
      for (const a of [this.plan.vip.v4, s.unique.v4])
        this.exec(this.ns[s.name], 'ip', 'addr', on ? 'add' : 'del', `${a}/32`, 'dev', 'lo');
    }
    this.kernelOn = on;
  }

  /** Starts the kernel chain's relays (and puts the addresses on lo); idempotent. */
  async startKernel(): Promise<void> {
    this.kernelAddrs(true);
    if (this.relays.length > 0) return;
    const { ns, plan } = this;
    const ports = [IPERF_PORT, SHA_PORT];
    const relay = (host: string, args: string[]) =>
      this.track(start(this.lab, host, 'mptcpize', ['run', process.execPath, TCP_RELAY, ...args]));
    this.relays = [
      ...plan.servers.map((s) =>
        relay(
          ns[s.name],
          ports.flatMap((p) => ['--forward', `0.0.0.0:${p + RELAY_OFFSET}=${plan.app.v4}:${p}`]),
        ),
      ),
      relay(ns.cli, [
        ...ports.flatMap((p) => [
          '--forward',
          `127.0.0.1:${p + RELAY_OFFSET}=${plan.vip.v4}:${p + RELAY_OFFSET}`,
        ]),
        '--local',
        plan.paths[0].cli.v4,
      ]),
    ];
    await Promise.all(this.relays.map((r) => r.waitFor(/relay: listening/)));
  }

  /** Takes the VIP and unique addresses off the servers' lo again (the relays stay, idle). */
  stopKernel(): void {
    this.kernelAddrs(false);
  }

  /** The relays' per-connection lines (client relay last). */
  relayLines(): { host: string; lines: RelayLine[] }[] {
    const hosts = [...this.plan.servers.map((s) => s.name), 'cli'];
    return this.relays.map((r, i) => ({
      host: hosts[i] ?? '?',
      lines: r
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as RelayLine),
    }));
  }

  /** Where the app in cli connects for `chain` and backend port `port`. */
  target(chain: Chain, port: number): { host: string; port: number } {
    return chain === 'mptun'
      ? { host: this.plan.vip.v4, port }
      : { host: '127.0.0.1', port: port + RELAY_OFFSET };
  }

  /** Readies `chain`: the kernel's relays and lo addresses, or the lo addresses off for mptun. */
  async use(chain: Chain): Promise<void> {
    if (chain === 'kernel') await this.startKernel();
    else if (this.mptunClient === undefined) throw new Error('this ChainLab runs no mptun chain');
    else this.stopKernel();
  }

  /** Stock iperf3 in cli through `chain` for `seconds` (`reverse`: the backend sends). */
  async iperf(chain: Chain, seconds: number, reverse = false): Promise<IperfResult> {
    await this.use(chain);
    const t = this.target(chain, IPERF_PORT);
    const args = [
      '-c',
      t.host,
      '-p',
      String(t.port),
      '-t',
      String(seconds),
      '-J',
      '--connect-timeout',
      '5000',
    ];
    if (reverse) args.push('-R');
    const pids = (chain === 'mptun' ? [this.mptunClient, ...this.mptunServers] : this.relays).map(
      (r) => r?.child.pid,
    );
    const before = pids.map(schedstat);
    const stealBefore = cpuSteal();
    const t0 = performance.now();
    const run = start(this.lab, this.ns.cli, 'iperf3', args);
    const { code } = await run.done((seconds + 30) * 1000);
    const wallMs = performance.now() - t0;
    const after = pids.map(schedstat);
    const stealAfter = cpuSteal();
    const stealShare = (stealAfter[0] - stealBefore[0]) / Math.max(1, stealAfter[1] - stealBefore[1]);
    const spent = (k: 0 | 1) => after.reduce((sum, a, i) => sum + a[k] - (before[i]?.[k] ?? 0), 0) / 1e6;
    const report = json(run);
    if (code !== 0 || report.end?.sum_received === undefined)
      throw new Error(`iperf3 through the ${chain} chain failed (${code}): ${report.error ?? run.stderr()}`);
    return {
      mbps: Number(report.end.sum_received.bits_per_second) / 1e6,
      retransmits: Number(report.end.sum_sent?.retransmits ?? 0),
      bytes: Number(report.end.sum_received.bytes),
      proxyCpuMs: spent(0),
      proxyWaitMs: spent(1),
      wallMs,
      stealShare,
    };
  }

  /**
   * One connection through `chain`: cli sends `up` seeded bytes (seed `seed`), the backend checks
   * their SHA-256 and sends `opts.shaDown` seeded bytes (seed SHA_DOWN_SEED) back, which cli
   * checks. With `whileOpen`, the client holds the connection open before closing until that
   * callback's promise settles (for a look at the live connection).
   */
  async sha(chain: Chain, up: number, seed = 1, whileOpen?: () => Promise<void>): Promise<ShaResult> {
    await this.use(chain);
    const backend = this.procs[1]!;
    const index = backend.stdout().match(/^accepted /gm)?.length ?? 0;
    const t = this.target(chain, SHA_PORT);
    const client = startClient(this.lab, this.ns.cli, {
      host: t.host,
      port: t.port,
      bytes: up,
      seed,
      tcp: true,
      hold: whileOpen !== undefined,
      timeout: 60,
    });
    if (whileOpen !== undefined) {
      await client.step('holding', 0, 60_000);
      try {
        await whileOpen();
      } finally {
        client.release();
      }
    }
    await client.done(120_000);
    const m = await backend.waitFor(new RegExp(`^received ${index} (\\d+) ([0-9a-f]+)$`, 'm'), 10_000);
    const got = client.connections()[0]?.received ?? { bytes: -1, sha256: '' };
    const down = this.shaDown;
    const r: ShaResult = {
      up: { bytes: Number(m[1]), sha256: m[2] ?? '', expected: labSha256(seed, up) },
      down: { bytes: got.bytes, sha256: got.sha256, expected: labSha256(SHA_DOWN_SEED, down) },
      ok: false,
    };
    r.ok =
      r.up.bytes === up &&
      r.up.sha256 === r.up.expected &&
      r.down.bytes === down &&
      r.down.sha256 === r.down.expected;
    return r;
  }

  /** MPTcpExt counters of every host that runs MPTCP (cli, s1, s2). */
  counters(): Record<'cli' | 's1' | 's2', Counters> {
    return {
      cli: mptcpCounters(this.lab, this.ns.cli),
      s1: mptcpCounters(this.lab, this.ns.s1),
      s2: mptcpCounters(this.lab, this.ns.s2),
    };
  }

  /** Shapes both paths (both ends) to `rate` bit/s, or removes the shaping (undefined). */
  shape(rate: number | undefined): void {
    for (const p of this.plan.paths) {
      for (const end of [p.cli, p.lb]) {
        const ns = this.ns[end.host];
        if (rate === undefined) this.exec(ns, 'tc', 'qdisc', 'del', 'dev', end.dev, 'root');
        else this.exec(ns, 'tc', 'qdisc', 'replace', 'dev', end.dev, ...tbfArgs(rate));
      }
    }
  }

  async close(): Promise<void> {
    for (const r of this.procs)
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
    await Promise.all(this.procs.map((r) => r.done(20_000)));
    if (!this.built) return;
    const existing = await listNamespaces(runCommand);
    const failed = await deleteNamespaces(Object.values(this.ns).filter((n) => existing.has(n)));
    if (failed.length > 0) throw new Error(`could not remove ${JSON.stringify(failed)}`);
  }
}
