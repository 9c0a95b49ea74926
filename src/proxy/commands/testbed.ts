import type { Argv, CommandModule } from 'yargs';
import { HostCommandError, InvalidArgumentError } from '../../errors.js';
import { commandContext, type GlobalOptions } from '../cli.js';
import {
  deleteNamespaces,
  listNamespaces,
  namespacePids,
  setVipRoute,
  TestbedInterrupted,
  testbedUp,
  type VipMode,
} from '../testbed/build.js';
import { describeTestbed, testbedJson } from '../testbed/format.js';
import { checkPrefix, DEFAULT_HASH_SEED, DEFAULT_PREFIX, parseRate, testbedPlan } from '../testbed/plan.js';
import { DEFAULT_STATE_DIR, readState, removeState, statePath, writeState } from '../testbed/state.js';

interface CommonArgs extends GlobalOptions {
  prefix: string;
  'state-dir': string;
}

interface UpArgs extends CommonArgs {
  rate1: string | undefined;
  rate2: string | undefined;
  'hash-seed': number;
  'lo-addrs': boolean;
  json: boolean;
}

interface AnycastArgs extends CommonArgs {
  site: VipMode;
}

interface ShowArgs extends CommonArgs {
  json: boolean;
}

function common<T>(y: Argv<T>) {
  return y
    .option('prefix', {
      type: 'string',
      default: DEFAULT_PREFIX,
      describe:
        'Namespace name prefix: the testbed is <prefix>-cli, -lb, -s1, -s2, -app (one testbed per prefix)',
    })
    .option('state-dir', {
      type: 'string',
      default: DEFAULT_STATE_DIR,
      describe: 'Directory of the state file (testbed-<prefix>.json) that records what up built',
    })
    .check((a) => checkPrefix(a.prefix) ?? true);
}

/** The recorded testbed for these flags, or an error naming the fix. */
async function recorded(args: CommonArgs) {
  const state = await readState(args['state-dir'], args.prefix);
  if (state === undefined) {
    throw new InvalidArgumentError(
      `no testbed '${args.prefix}' is recorded in ${statePath(args['state-dir'], args.prefix)}; run 'mptun testbed up --prefix ${args.prefix}' (or pass the --prefix and --state-dir it was made with)`,
    );
  }
  return state;
}

const upCommand: CommandModule<GlobalOptions, UpArgs> = {
  command: 'up',
  describe: 'Build the testbed (namespaces cli, lb, s1, s2, app; DESIGN.md §4) and print what it built',
  builder: (y) =>
    common(y)
      .option('rate1', {
        type: 'string',
        describe:
          "Shape path 1 (p1) with tbf at this rate each way, tc's notation: 50mbit, 1gbit (default: unshaped)",
      })
      .option('rate2', {
        type: 'string',
        describe: 'Shape path 2 (p2) likewise (default: unshaped)',
      })
      .option('hash-seed', {
        type: 'number',
        default: DEFAULT_HASH_SEED,
        describe:
          "lb's net.ipv4.fib_multipath_hash_seed (fixed, so which server a five-tuple reaches is reproducible)",
      })
      .option('lo-addrs', {
        type: 'boolean',
        default: true,
        describe:
          "Put the VIP and each server's unique address on its lo (kernel servers); --no-lo-addrs leaves them unbound, to route them into an mptun server's TUN",
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print what was built as JSON (the state file plus its path)',
      })
      .check((a) => {
        for (const flag of ['rate1', 'rate2'] as const) {
          const v = a[flag];
          if (v === undefined) continue;
          const r = parseRate(String(v));
          if (typeof r !== 'number') return `--${flag}: ${r.error}`;
        }
        const seed = a['hash-seed'];
        if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
          return '--hash-seed must be an integer 0-4294967295';
        return true;
      }),
  handler: async (args) => {
    const { log } = commandContext(args);
    const rate = (v: string | undefined) => (v === undefined ? undefined : (parseRate(v) as number));
    const plan = testbedPlan({
      prefix: args.prefix,
      rate1: rate(args.rate1),
      rate2: rate(args.rate2),
      hashSeed: args['hash-seed'],
      loAddrs: args['lo-addrs'],
    });
    const dir = args['state-dir'];
    if ((await readState(dir, args.prefix)) !== undefined) {
      throw new InvalidArgumentError(
        `testbed '${args.prefix}' is already up (${statePath(dir, args.prefix)}); run 'mptun testbed down --prefix ${args.prefix}' first, or choose another --prefix`,
      );
    }
    const abort = new AbortController();
    const interrupted = (signal: NodeJS.Signals) => {
      if (!abort.signal.aborted) process.stderr.write(`testbed: ${signal}, removing what was built\n`);
      abort.abort();
    };
    process.on('SIGINT', interrupted);
    process.on('SIGTERM', interrupted);
    try {
      await testbedUp(plan, {
        signal: abort.signal,
        onStep: (step, i, total) => {
          if (step.creates !== undefined) log.info({ ns: step.creates }, 'testbed: namespace');
          else if (log.isLevelEnabled('debug')) log.debug({ step: i + 1, of: total }, step.argv.join(' '));
        },
        onCleanupError: (err) => log.warn({ err }, 'testbed: could not list namespaces for the cleanup'),
      });
      const state = {
        version: 1 as const,
        plan,
        vipRoute: 'ecmp' as const,
        createdAt: new Date().toISOString(),
      };
      let path: string;
      try {
        path = await writeState(dir, state);
      } catch (err) {
        await deleteNamespaces(Object.values(plan.namespaces));
        throw err;
      }
      if (abort.signal.aborted) {
        await deleteNamespaces(Object.values(plan.namespaces));
        await removeState(dir, plan.prefix);
        throw new TestbedInterrupted();
      }
      process.stdout.write(args.json ? testbedJson(state, path) : describeTestbed(state, path));
    } catch (err) {
      if (err instanceof TestbedInterrupted) {
        process.stderr.write(`testbed: interrupted; nothing of '${args.prefix}' is left\n`);
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

const downCommand: CommandModule<GlobalOptions, CommonArgs> = {
  command: 'down',
  describe: 'Remove exactly what up built (its namespaces, and with them every link, route and qdisc)',
  builder: (y) => common(y),
  handler: async (args) => {
    const { log } = commandContext(args);
    const state = await recorded(args);
    // Finish the teardown even if Ctrl-C comes in the middle of it.
    const ignore = () => process.stderr.write('testbed: finishing the teardown first\n');
    process.on('SIGINT', ignore);
    try {
      const existing = await listNamespaces();
      const names = Object.values(state.plan.namespaces).filter((n) => existing.has(n));
      for (const gone of Object.values(state.plan.namespaces).filter((n) => !existing.has(n)))
        log.warn({ ns: gone }, 'testbed: namespace was already gone');
      for (const ns of names) {
        const pids = await namespacePids(ns);
        if (pids.length > 0) {
          log.warn(
            { ns, pids },
            'testbed: processes still run in this namespace and keep its devices alive; end them to free it',
          );
        }
      }
      const failed = await deleteNamespaces(names);
      if (failed.length > 0) {
        throw new HostCommandError(
          `could not remove ${failed.map((f) => f.ns).join(', ')}: ${failed.map((f) => f.error).join('; ')}`,
        );
      }
      await removeState(args['state-dir'], args.prefix);
      process.stdout.write(
        `testbed '${args.prefix}' removed (${names.join(' ') || 'no namespaces were left'})\n`,
      );
    } finally {
      process.off('SIGINT', ignore);
    }
  },
};

const anycastCommand: CommandModule<GlobalOptions, AnycastArgs> = {
  command: 'anycast <site>',
  describe:
    "Route the VIP in lb to one server site only (s1 or s2), as anycast moving between sites; 'ecmp' restores the balancing",
  builder: (y) =>
    common(y).positional('site', {
      choices: ['s1', 's2', 'ecmp'] as const,
      demandOption: true,
      describe: 'Server site that gets every new packet for the VIP, or ecmp for both',
    }) as unknown as Argv<AnycastArgs>,
  handler: async (args) => {
    const state = await recorded(args);
    await setVipRoute(state.plan, args.site);
    await writeState(args['state-dir'], { ...state, vipRoute: args.site });
    process.stdout.write(
      `testbed '${args.prefix}': VIP ${state.plan.vip.v4} ${state.plan.vip.v6} now routed ${args.site === 'ecmp' ? 'over s1 and s2 (ECMP)' : `to ${args.site} only`}\n`,
    );
  },
};

const showCommand: CommandModule<GlobalOptions, ShowArgs> = {
  command: 'show',
  describe: 'Print what up built (from the state file)',
  builder: (y) => common(y).option('json', { type: 'boolean', default: false, describe: 'Print it as JSON' }),
  handler: async (args) => {
    const state = await recorded(args);
    const path = statePath(args['state-dir'], args.prefix);
    process.stdout.write(args.json ? testbedJson(state, path) : describeTestbed(state, path));
  },
};

export const testbedCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: 'testbed',
  describe:
    'The test topology in network namespaces: a client with two paths, a stateless ECMP load balancer, two servers sharing a VIP, the service host',
  builder: (y) =>
    y
      .command(upCommand)
      .command(downCommand)
      .command(anycastCommand)
      .command(showCommand)
      .demandCommand(
        1,
        "Name a testbed subcommand: 'up', 'down', 'anycast s1|s2|ecmp' or 'show'.",
      ) as unknown as Argv<GlobalOptions>,
  handler: () => undefined,
};
