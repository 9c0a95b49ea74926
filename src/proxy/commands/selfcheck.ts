import type { CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';

interface SelfcheckOptions extends GlobalOptions {}

export const selfcheckCommand: CommandModule<GlobalOptions, SelfcheckOptions> = {
  command: 'selfcheck',
  describe: 'Bring up a TUN in a private network namespace and round-trip packets through it',
  handler: async (args) => {
    const { log } = commandContext(args);
    log.info('selfcheck: not implemented yet');
  },
};
