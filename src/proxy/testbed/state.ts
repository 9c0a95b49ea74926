/**
 * The testbed's state file: what `up` built (its plan) and the VIP's current route, so `down`
 * removes exactly that and `anycast` knows the addresses. One JSON file per prefix in the state
 * directory (/run/mptun by default: tmpfs, gone after a reboot like the namespaces themselves).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../errors.js';
import type { VipMode } from './build.js';
import type { TestbedPlan } from './plan.js';

export const DEFAULT_STATE_DIR = '/run/mptun';
export const STATE_VERSION = 1;

export interface TestbedState {
  version: typeof STATE_VERSION;
  plan: TestbedPlan;
  vipRoute: VipMode;
  createdAt: string;
}

export function statePath(dir: string, prefix: string): string {
  return join(dir, `testbed-${prefix}.json`);
}

/** Writes the state atomically (a temporary file renamed over it). */
export async function writeState(dir: string, state: TestbedState): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = statePath(dir, state.plan.prefix);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, path);
  return path;
}

/** The recorded state for `prefix`, or undefined when there is none. */
export async function readState(dir: string, prefix: string): Promise<TestbedState | undefined> {
  const path = statePath(dir, prefix);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${path} is not JSON; remove it and the namespaces ${prefix}-* by hand`, {
      cause: err,
    });
  }
  const s = state as Partial<TestbedState>;
  if (s.version !== STATE_VERSION || s.plan?.prefix !== prefix || typeof s.plan.namespaces !== 'object') {
    throw new InvalidArgumentError(
      `${path} is not a testbed state file of this mptun version; remove it and the namespaces ${prefix}-* by hand`,
    );
  }
  return s as TestbedState;
}

export async function removeState(dir: string, prefix: string): Promise<void> {
  await rm(statePath(dir, prefix), { force: true });
}
