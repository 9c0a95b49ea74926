/**
 * Helpers for the `mptun testbed` tests: a per-run prefix and state directory, the CLI as a
 * child process, and removal of whatever a test's testbed left (by the names its plan gives,
 * never by pattern), also on failure.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteNamespaces, listNamespaces } from '../../src/proxy/testbed/build.js';
import { HOSTS } from '../../src/proxy/testbed/plan.js';

/** A fresh testbed prefix for this run (`mptun-t<pid>-<hex>-<tag>`). */
export function runPrefix(tag: string): string {
  return `mptun-t${process.pid}-${randomBytes(2).toString('hex')}-${tag}`;
}

export function tempStateDir(): string {
  return mkdtempSync(join(tmpdir(), 'mptun-testbed-'));
}

export function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', ...args], { encoding: 'utf8' });
}

/** The testbed namespaces of `prefix` that exist now. */
export async function leftovers(prefix: string): Promise<string[]> {
  const existing = await listNamespaces();
  return HOSTS.map((h) => `${prefix}-${h}`).filter((n) => existing.has(n));
}

/** Removes every testbed namespace of `prefix` that still exists, and the state directory. */
export async function scrub(prefix: string, stateDir: string | undefined): Promise<void> {
  const failed = await deleteNamespaces(await leftovers(prefix));
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
  if (failed.length > 0) throw new Error(`could not remove ${JSON.stringify(failed)}`);
}
