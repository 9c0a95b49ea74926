import yargs, { type Argv } from 'yargs';
import { MptunError } from '../errors.js';
import { createLogger, LOG_LEVELS, type Logger } from '../log.js';
import { clientCommand } from './commands/client.js';
import { demoCommand } from './commands/demo.js';
import { perfCommand } from './commands/perf.js';
import { selfcheckCommand } from './commands/selfcheck.js';
import { serverCommand } from './commands/server.js';
import { testbedCommand } from './commands/testbed.js';

/** Options every command accepts. */
export interface GlobalOptions {
  'log-level': (typeof LOG_LEVELS)[number];
}

/** What a command handler receives besides its own parsed flags. */
export interface CommandContext {
  log: Logger;
}

export function buildCli(argv: string[]): Argv {
  return yargs(argv)
    .scriptName('mptun')
    .usage('$0 <command> [options]\n\nUserspace Multipath TCP (RFC 8684) proxy for load-balanced services.')
    .option('log-level', {
      choices: LOG_LEVELS,
      default: 'info' as const,
      describe: 'Log verbosity (pretty on a terminal, JSON lines otherwise)',
    })
    .command(selfcheckCommand)
    .command(perfCommand)
    .command(serverCommand)
    .command(clientCommand)
    .command(testbedCommand)
    .command(demoCommand)
    .demandCommand(1, 'Name a command.')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 110));
}

/** A usage mistake (unknown flag, bad value): reported with a pointer to --help, exit code 2. */
class UsageError extends Error {}

/** Parses argv, runs the command and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // Throwing from the fail handler stops yargs before any command handler runs.
  const cli = buildCli(argv).fail((msg, err) => {
    // yargs passes a check's message as `msg` (sometimes also as a string `err`), its own
    // validation errors as YError, and anything a builder or handler threw as itself.
    const error = err as unknown;
    if (error instanceof Error && error.name !== 'YError') throw error;
    throw new UsageError(msg ?? String(error ?? 'invalid usage'));
  });
  try {
    await cli.parseAsync();
    return (process.exitCode as number | undefined) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      const command = argv.find((a) => !a.startsWith('-'));
      const help = command ? `mptun ${command} --help` : 'mptun --help';
      process.stderr.write(`mptun: ${err.message}\nRun '${help}' for usage.\n`);
      return 2;
    }
    if (err instanceof MptunError) {
      process.stderr.write(`mptun: ${err.message} (${err.code})\n`);
      return 1;
    }
    throw err;
  }
}

/** Logger for a command, from the global --log-level. */
export function commandContext(args: GlobalOptions): CommandContext {
  return { log: createLogger(args['log-level']) };
}
