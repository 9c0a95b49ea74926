import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import { formatDemo } from '../demo/report.js';
import { DemoAborted, runDemo } from '../demo/run.js';
import { checkPrefix, parseRate } from '../testbed/plan.js';
import { DEFAULT_STATE_DIR } from '../testbed/state.js';

interface DemoArgs extends GlobalOptions {
  prefix: string;
  'state-dir': string;
  rate1: string;
  rate2: string;
  time: number;
  'flip-time': number;
  plot: string;
  logs: string | undefined;
}

export const demoCommand: CommandModule<GlobalOptions, DemoArgs> = {
  command: 'demo',
  describe:
    'The one-command demo: testbed up, mptun servers behind the load balancer, stock iperf3 as plain TCP and through mptun client, an anycast flip mid-transfer, a table and a chart, teardown',
  builder: (y) =>
    (y as Argv<GlobalOptions>)
      .option('prefix', {
        type: 'string',
        default: `mptun-demo-${process.pid}`,
        describe: "The testbed's namespace prefix (default: per run)",
      })
      .option('state-dir', {
        type: 'string',
        default: DEFAULT_STATE_DIR,
        describe:
          "Where the testbed's state file goes while the demo runs ('mptun testbed down' finds it there)",
      })
      .option('rate1', { type: 'string', default: '50mbit', describe: "Path p1's tbf rate (tc notation)" })
      .option('rate2', { type: 'string', default: '50mbit', describe: "Path p2's tbf rate (tc notation)" })
      .option('time', {
        alias: 't',
        type: 'number',
        default: 8,
        describe: 'Seconds of each measured transfer (plain TCP, then mptun)',
      })
      .option('flip-time', {
        type: 'number',
        default: 9,
        describe:
          'Seconds of the side-by-side transfers across the anycast flip (the flip comes a third of the way in)',
      })
      .option('plot', {
        type: 'string',
        default: 'mptun-demo.html',
        describe: 'The chart page to write (.html)',
      })
      .option('logs', {
        type: 'string',
        describe:
          "Write each process's output (the proxies' JSON logs, iperf3's reports) to files in this directory",
      })
      .check((a) => {
        const why = checkPrefix(a.prefix);
        if (why !== undefined) return why;
        for (const flag of ['rate1', 'rate2'] as const) {
          const r = parseRate(String(a[flag]));
          if (typeof r !== 'number') return `--${flag}: ${r.error}`;
        }
        if (!(a.time >= 1 && a.time <= 60)) return '--time must be 1-60 seconds';
        if (!(a['flip-time'] >= 3 && a['flip-time'] <= 60)) return '--flip-time must be 3-60 seconds';
        if (!/\.html?$/i.test(a.plot)) return `--plot ${a.plot}: the chart is an HTML page; name it *.html`;
        return true;
      }) as unknown as Argv<DemoArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const abort = new AbortController();
    const interrupted = (signal: NodeJS.Signals) => {
      if (!abort.signal.aborted) process.stderr.write(`demo: ${signal}, tearing everything down\n`);
      abort.abort();
    };
    process.on('SIGINT', interrupted);
    process.on('SIGTERM', interrupted);
    const print = (line: string) => process.stdout.write(`${line}\n`);
    try {
      const result = await runDemo({
        prefix: args.prefix,
        stateDir: args['state-dir'],
        rate1: parseRate(args.rate1) as number,
        rate2: parseRate(args.rate2) as number,
        seconds: args.time,
        flipSeconds: args['flip-time'],
        plot: args.plot,
        logs: args.logs,
        log,
        print,
        signal: abort.signal,
      });
      for (const line of formatDemo(result)) print(line);
      const mptunOk = 'unavailable' in result.mptun || result.mptun.ok;
      if (!result.baseline.ok || !mptunOk) process.exitCode = 1;
    } catch (err) {
      if (err instanceof DemoAborted) {
        process.stderr.write(`demo: interrupted; nothing of '${args.prefix}' is left\n`);
        process.exitCode = 130;
        return;
      }
      throw err;
    } finally {
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
    }
  },
};
