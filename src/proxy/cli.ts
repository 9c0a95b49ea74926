import yargs, { type Argv } from 'yargs';
import { MptunError } from '../errors.js';
import { createLogger, LOG_LEVELS, type Logger } from '../log.js';
import { selfcheckCommand } from './commands/selfcheck.js';

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
    .demandCommand(1, 'Name a command: see the list above.')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 110));
}

/** Parses argv, runs the command and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let failed = false;
  const cli = buildCli(argv).fail((msg, err) => {
    failed = true;
    if (err) throw err;
    process.stderr.write(`mptun: ${msg}\nRun 'mptun --help' for usage.\n`);
  });
  try {
    await cli.parseAsync();
    return failed ? 2 : ((process.exitCode as number | undefined) ?? 0);
  } catch (err) {
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
