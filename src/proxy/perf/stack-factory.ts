/** Builds the PerfStack that `--stack` names. */
import type { Logger } from '../../log.js';
import { KernelStack, type PerfStack } from './stack.js';

export type StackChoice = 'kernel' | 'user';

export interface StackArgs {
  stack: StackChoice;
  tun?: string | undefined;
  addr?: string[] | undefined;
  routes: boolean;
  offload: boolean;
}

export async function openPerfStack(args: StackArgs, log: Logger): Promise<PerfStack> {
  if (args.stack === 'kernel') return new KernelStack();
  const { openUserStack } = await import('./user-stack.js');
  return openUserStack(
    { tun: args.tun!, addresses: args.addr ?? [], routes: args.routes, offload: args.offload },
    log,
  );
}
