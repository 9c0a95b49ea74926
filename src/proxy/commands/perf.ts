import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import { runClient } from '../perf/client.js';
import { checkAnnounce, checkCongestionFlag, checkSchedulerFlags } from '../perf/mptcp-options.js';
import { checkPlotFile, writePlot } from '../perf/plot.js';
import { LiveProgress } from '../perf/progress.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_PORT, MAX_STREAMS, parseSize, tryParseSize } from '../perf/protocol.js';
import { PerfServer } from '../perf/server.js';
import { openPerfStack, type StackChoice } from '../perf/stack-factory.js';

interface CommonOptions extends GlobalOptions {
  port: number;
  interval: number;
  json: boolean;
  bind: string | undefined;
  stack: StackChoice;
  tun: string | undefined;
  addr: string[] | undefined;
  routes: boolean;
  offload: boolean;
  mptcp: boolean;
  checksum: boolean;
  scheduler: string | undefined;
  backup: string[] | undefined;
  congestion: string | undefined;
}

interface ClientArgs extends CommonOptions {
  host: string;
  time: number;
  bytes: string | undefined;
  reverse: boolean;
  parallel: number;
  length: string;
  'connect-timeout': number;
  plot: string | undefined;
  live: boolean | undefined;
}

interface ServerArgs extends CommonOptions {
  'one-off': boolean;
  announce: string[] | undefined;
  'c-flag': boolean;
}

function common<T>(y: Argv<T>) {
  return y
    .option('port', {
      alias: 'p',
      type: 'number',
      default: DEFAULT_PORT,
      describe: 'Server port (iperf3: -p)',
    })
    .option('interval', {
      alias: 'i',
      type: 'number',
      default: 1,
      describe: 'Seconds between interval reports; 0 turns them off (iperf3: -i)',
    })
    .option('json', {
      alias: 'J',
      type: 'boolean',
      default: false,
      describe: 'Print one JSON report like iperf3 -J',
    })
    .option('bind', {
      alias: 'B',
      type: 'string',
      describe: 'Local address to bind (server: listen on; client: source)',
    })
    .option('stack', {
      choices: ['kernel', 'user'] as const,
      default: 'kernel' as StackChoice,
      describe: "TCP stack: 'kernel' (Node's sockets) or 'user' (mptun's userspace TCP on a TUN)",
    })
    .option('tun', {
      type: 'string',
      describe: 'With --stack user: the TUN interface to open (created if missing)',
    })
    .option('addr', {
      type: 'string',
      array: true,
      // One value per flag: otherwise `--addr 10.0.0.2 -1` would swallow the -1 as an address.
      nargs: 1,
      describe: "With --stack user: the stack's own address, IP[/PREFIX] (repeatable)",
    })
    .option('routes', {
      type: 'boolean',
      default: true,
      describe: 'With --stack user: route --addr into the TUN on this host; --no-routes leaves routing alone',
    })
    .option('offload', {
      type: 'boolean',
      default: true,
      describe: 'With --stack user: TUN with virtio-net headers, checksum offload and TSO (64 KB segments)',
    })
    .option('mptcp', {
      type: 'boolean',
      default: false,
      describe:
        'With --stack user: Multipath TCP (RFC 8684). Client: the initial subflow leaves from the first --addr, joins go to announced addresses from every --addr (and to the server address from the others when the server did not set C). Server: accept MPTCP (plain TCP clients still get TCP)',
    })
    .option('checksum', {
      type: 'boolean',
      default: false,
      describe: 'With --mptcp: require DSS checksums (MP_CAPABLE A flag; the peer may also ask for them)',
    })
    .option('scheduler', {
      type: 'string',
      describe:
        "With --mptcp: which subflow carries our next data: 'lowest-rtt' (default, as Linux), 'round-robin', or 'redundant' (every byte on every subflow: lower latency under loss, no aggregation). Each honours --backup",
    })
    .option('backup', {
      type: 'string',
      array: true,
      nargs: 1,
      describe:
        'With --mptcp: this local address (one of --addr; repeatable) is a backup path: its subflows are MP_PRIO backups (B flag on the join, or MP_PRIO), and neither end sends data on them while a subflow on another address works',
    })
    .option('congestion', {
      type: 'string',
      describe:
        "With --mptcp: the subflows' congestion control: 'lia' (RFC 6356), 'olia' or 'balia' (coupled: all subflows together take no more than one TCP flow at a shared bottleneck), or 'cubic' / 'newreno' (uncoupled, per subflow). Default: olia",
    })
    .check((a) => {
      if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) return '--port must be 1-65535';
      if (!(a.interval === 0 || (a.interval >= 0.1 && a.interval <= 60)))
        return '--interval must be 0 (off) or 0.1-60 seconds';
      if (a.stack === 'user') {
        if (!a.tun) return '--stack user needs --tun NAME';
        if (!a.addr || a.addr.length === 0) return '--stack user needs at least one --addr IP[/PREFIX]';
      } else if (a.tun !== undefined || a.addr !== undefined) {
        return '--tun and --addr go with --stack user';
      }
      if (a.mptcp && a.stack !== 'user')
        return "--mptcp needs --stack user (Node's kernel sockets cannot open MPTCP; for the kernel's MPTCP run iperf3 under 'mptcpize run')";
      if (a.checksum && !a.mptcp) return '--checksum goes with --mptcp';
      if (a.mptcp && a.bind !== undefined && !(a.addr ?? []).some((x) => x.split('/')[0] === a.bind))
        return `--bind ${a.bind} must be one of the --addr addresses with --mptcp (it picks the initial subflow's source)`;
      const sched = checkSchedulerFlags(a.scheduler, a.backup ?? [], a.addr ?? [], a.mptcp);
      if (sched !== undefined) return sched;
      const cong = checkCongestionFlag(a.congestion, a.mptcp);
      if (cong !== undefined) return cong;
      return true;
    });
}

const clientCommand: CommandModule<GlobalOptions, ClientArgs> = {
  command: 'client <host>',
  describe: 'Run a test against an iperf3 server (stock iperf3 -s or mptun perf server)',
  builder: (y) =>
    common(y)
      .positional('host', { type: 'string', demandOption: true, describe: 'Server address or name' })
      .option('time', {
        alias: 't',
        type: 'number',
        default: 10,
        describe: 'Test length in seconds (iperf3: -t)',
      })
      .option('bytes', {
        alias: 'n',
        type: 'string',
        describe: 'Transfer this many bytes instead of a timed test; K/M/G suffixes (iperf3: -n)',
      })
      .option('reverse', {
        alias: 'R',
        type: 'boolean',
        default: false,
        describe: 'Reverse: the server sends, we receive (iperf3: -R)',
      })
      .option('parallel', {
        alias: 'P',
        type: 'number',
        default: 1,
        describe: `Parallel data streams, 1-${MAX_STREAMS} (iperf3: -P)`,
      })
      .option('length', {
        alias: 'l',
        type: 'string',
        default: '128K',
        describe: 'Write size for each send; K/M suffixes (iperf3: -l)',
      })
      .option('connect-timeout', {
        type: 'number',
        default: 10_000,
        describe: 'Give up connecting after this many milliseconds',
      })
      .option('plot', {
        type: 'string',
        describe:
          'Write a chart of throughput over time (per interval) to FILE: .svg or .html, self-contained; one line per MPTCP subflow plus the total (kernel stack: the total)',
      })
      .option('live', {
        type: 'boolean',
        describe:
          'One status line updated in place instead of interval lines (default: on when stdout is a terminal and not -J)',
      })
      .check((a) => {
        if (a.plot !== undefined) {
          const why = checkPlotFile(a.plot);
          if (why !== undefined) return why;
          if (a.interval === 0) return '--plot needs interval reports: drop -i 0 (or give -i 0.1-60)';
        }
        if (!(a.time > 0 && a.time <= 86_400)) return '--time must be 0-86400 seconds';
        if (!Number.isInteger(a.parallel) || a.parallel < 1 || a.parallel > MAX_STREAMS)
          return `--parallel must be 1-${MAX_STREAMS}`;
        const bytes = a.bytes === undefined ? 1 : tryParseSize(a.bytes);
        if (bytes === undefined)
          return `--bytes: '${a.bytes}' is not a size: use a number with an optional K, M, G or T suffix`;
        if (!(bytes > 0)) return '--bytes must be positive';
        const len = tryParseSize(a.length);
        if (len === undefined)
          return `--length: '${a.length}' is not a size: use a number with an optional K or M suffix`;
        if (len < 1 || len > 1024 * 1024) return '--length must be 1 byte to 1M';
        if (!(a['connect-timeout'] > 0)) return '--connect-timeout must be positive';
        return true;
      }) as unknown as Argv<ClientArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const stack = await openPerfStack(args, log);
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const live =
      !args.json && args.interval > 0 && (args.live ?? process.stdout.isTTY === true)
        ? new LiveProgress(
            (text) => process.stdout.write(text),
            () => process.stdout.columns ?? 80,
          )
        : undefined;
    const print = live
      ? (line: string) => live.print(line)
      : (line: string) => process.stdout.write(`${line}\n`);
    try {
      const report = await runClient({
        host: args.host,
        port: args.port,
        time: args.time,
        bytes: args.bytes === undefined ? 0 : parseSize(args.bytes),
        reverse: args.reverse,
        parallel: args.parallel,
        blockSize: parseSize(args.length) || DEFAULT_BLOCK_SIZE,
        interval: args.interval,
        json: args.json,
        connectTimeoutMs: args['connect-timeout'],
        ...(live
          ? { intervalLines: false, onInterval: (iv: Record<string, unknown>) => live.update(iv) }
          : {}),
        ...(args.bind === undefined ? {} : { bind: args.bind }),
        stack,
        log,
        print,
        signal: abort.signal,
      });
      if (args.plot !== undefined) {
        const data = await writePlot(
          args.plot,
          `mptun perf client ${args.host}:${args.port}${args.reverse ? ' (reverse)' : ''}, ${stack.description}`,
          report['intervals'] as Record<string, unknown>[],
        );
        const line = `plot: ${args.plot} (${data.series.length} series: total${data.series.length > 1 ? ` and ${data.series.length - 1} subflows` : ''})`;
        if (args.json) process.stderr.write(`${line}\n`);
        else print(line);
      }
      if (args.json) print(JSON.stringify(report, null, 2));
    } catch (err) {
      // iperf3 -J reports errors inside its JSON, so scripts always get a document.
      if (args.json) {
        print(JSON.stringify({ error: (err as Error).message }, null, 2));
        process.exitCode = 1;
      } else {
        throw err;
      }
    } finally {
      live?.finish();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stack.close();
    }
  },
};

const serverCommand: CommandModule<GlobalOptions, ServerArgs> = {
  command: 'server',
  describe: 'Answer iperf3 clients (stock iperf3 -c or mptun perf client), one test at a time',
  builder: (y) =>
    common(y)
      .option('one-off', {
        alias: '1',
        type: 'boolean',
        default: false,
        describe: 'Exit after one test (iperf3: -1)',
      })
      .option('announce', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          "With --mptcp: announce this address with ADD_ADDR, IP[:PORT] or [IPv6]:PORT (repeatable); it must be one of --addr: the server's unique address behind a load balancer",
      })
      .option('c-flag', {
        type: 'boolean',
        default: true,
        describe:
          "With --mptcp: set MP_CAPABLE's C flag (clients must not join the address they connected to: it is load-balanced); --no-c-flag allows those joins, for comparisons",
      })
      .check((a) => {
        if (a.announce !== undefined && !a.mptcp) return '--announce goes with --mptcp';
        if (a['c-flag'] === false && !a.mptcp) return '--no-c-flag goes with --mptcp';
        const why = checkAnnounce(a.announce ?? [], a.addr ?? []);
        return why ?? true;
      }) as unknown as Argv<ServerArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const stack = await openPerfStack(args, log);
    const print = (line: string) => process.stdout.write(`${line}\n`);
    const server = new PerfServer({
      port: args.port,
      ...(args.bind === undefined ? {} : { bind: args.bind }),
      interval: args.interval,
      json: args.json,
      oneOff: args['one-off'],
      stack,
      log,
      print,
    });
    // Signal handlers go in before the listener exists: a signal right after 'listening' is
    // a clean stop, not a kill.
    let onSignal: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => {
      onSignal = () => resolve();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      server.onTestDone((r) => {
        if (!args['one-off']) return;
        if (r instanceof Error) process.exitCode = 1;
        resolve();
      });
    });
    try {
      await server.start();
      await stopped;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await server.close();
      await stack.close();
    }
  },
};

export const perfCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: 'perf',
  describe: "Measure TCP throughput, speaking iperf3's protocol (works with a stock iperf3 at either end)",
  builder: (y) =>
    y
      .command(serverCommand)
      .command(clientCommand)
      .demandCommand(
        1,
        "Name a perf subcommand: 'server' or 'client HOST'.",
      ) as unknown as Argv<GlobalOptions>,
  handler: () => undefined,
};
