import type { Logger } from '../../log.js';

/** A long-running service a command starts and stops. */
export interface Stoppable {
  close(): Promise<unknown>;
}

/**
 * Starts a service and runs it until SIGINT or SIGTERM, then closes it. The signal handlers go in
 * before `start` runs, so a signal right after start (even during setup) is a clean stop.
 */
export async function runUntilSignal(
  what: string,
  log: Logger,
  start: () => Promise<Stoppable>,
): Promise<void> {
  let onSignal: (sig: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = resolve;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  try {
    const service = await start();
    const sig = await stopped;
    log.info({ signal: sig }, `${what}: stopping`);
    await service.close();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
