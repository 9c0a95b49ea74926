/**
 * The graceful-shutdown drain both proxies run: wait up to `drainMs` for every open connection to
 * end by itself, then abort what is still open and wait for those to settle. Shared by `mptun
 * client` and `mptun server` (their close loops were copies).
 */
import type { Logger } from '../log.js';

/** What the drain needs of one open connection: when it ends, and how to cut it. */
export interface Drainable {
  readonly done: Promise<unknown>;
  abort(reason: Error): void;
}

export interface DrainOptions {
  /** Who drains, for the log line and the abort reason (`client`, `server`). */
  what: string;
  drainMs: number;
  log: Logger;
}

/**
 * Drains `open` (read live: a connection that ends is expected to leave it) and returns how many
 * connections had to be aborted when the time ran out.
 */
export async function drainThenAbort(
  open: () => Iterable<Drainable>,
  { what, drainMs, log }: DrainOptions,
): Promise<number> {
  const first = [...open()];
  if (first.length === 0) return 0;
  log.info({ open: first.length, drainMs }, `${what}: draining`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, drainMs);
  });
  await Promise.race([Promise.all(first.map((c) => c.done)), timeout]);
  clearTimeout(timer);
  const left = [...open()];
  for (const c of left) c.abort(new Error(`${what} shutting down: drain timed out`));
  await Promise.all(left.map((c) => c.done));
  return left.length;
}

/** Longest wait for the stack's connections to finish their FIN exchanges after the drain. */
export const SETTLE_MS = 2000;

/**
 * After the drain: lets the stack finish what ended connections still owe (their last bytes,
 * FINs and DATA_FINs acknowledged) before the caller destroys it, for at most SETTLE_MS. A
 * connection still busy then is reset by destroy(); the log line says how many.
 */
export async function settleStack(
  stack: { settle(timeoutMs: number): Promise<string[]> },
  { what, log }: Omit<DrainOptions, 'drainMs'>,
): Promise<void> {
  const busy = await stack.settle(SETTLE_MS);
  if (busy.length > 0)
    log.warn({ busy, settleMs: SETTLE_MS }, `${what}: connections still closing; resetting them`);
}
