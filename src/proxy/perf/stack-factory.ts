/** Builds the PerfStack that `--stack` names. */
import type { Logger } from '../../log.js';
import type { MptcpCongestionName } from '../../stack/mptcp/coupled-cc.js';
import type { SchedulerName } from '../../stack/mptcp/sched.js';
import { parseAnnouncements } from './mptcp-options.js';
import { KernelStack, type PerfStack } from './stack.js';

export type StackChoice = 'kernel' | 'user';

export interface StackArgs {
  stack: StackChoice;
  tun?: string | undefined;
  addr?: string[] | undefined;
  routes: boolean;
  offload: boolean;
  /** `--mptcp` (with --stack user): connections offer MPTCP, listeners accept it. */
  mptcp?: boolean | undefined;
  /** Server: `--announce IP[:PORT]` values. */
  announce?: string[] | undefined;
  /** Server: the C flag (`--no-c-flag` turns it off). */
  'c-flag'?: boolean | undefined;
  /** Require DSS checksums. */
  checksum?: boolean | undefined;
  /** `--scheduler NAME` and `--backup ADDR` values (checked by the CLI). */
  scheduler?: string | undefined;
  backup?: string[] | undefined;
  /** `--congestion NAME` (checked by the CLI). */
  congestion?: string | undefined;
}

export async function openPerfStack(args: StackArgs, log: Logger): Promise<PerfStack> {
  if (args.stack === 'kernel') return new KernelStack();
  const { openUserStack } = await import('./user-stack.js');
  return openUserStack(
    {
      tun: args.tun!,
      addresses: args.addr ?? [],
      routes: args.routes,
      offload: args.offload,
      ...(args.mptcp
        ? {
            mptcp: {
              cFlag: args['c-flag'] ?? true,
              announce: parseAnnouncements(args.announce ?? []),
              checksum: args.checksum ?? false,
              ...(args.scheduler === undefined ? {} : { scheduler: args.scheduler as SchedulerName }),
              ...(args.backup === undefined ? {} : { backup: args.backup }),
              ...(args.congestion === undefined
                ? {}
                : { congestion: args.congestion as MptcpCongestionName }),
            },
          }
        : {}),
    },
    log,
  );
}
