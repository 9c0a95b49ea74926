/**
 * Helpers for the `mptun perf` tests: run mptun and iperf3 inside NetnsLab namespaces, wait for
 * a line of their output (an event, not a sleep) and collect what they printed.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { NetnsLab } from './netns.js';

export const MPTUN_BIN = fileURLToPath(new URL('../../bin/mptun.js', import.meta.url));

export interface Run {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in stdout+stderr; rejects if the process exits first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves when the process exits (killed after `timeoutMs`). */
  done(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `cmd args` in `ns` and collects its output from the first byte. */
export function start(lab: NetnsLab, ns: string, cmd: string, args: string[]): Run {
  const child = lab.spawn(ns, cmd, args);
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      resolve({ code, signal });
      wake();
    });
  });
  let finished = false;
  exited.then(() => {
    finished = true;
    wake();
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out) ?? re.exec(err);
          if (m) {
            cleanup();
            resolve(m);
          } else if (finished) {
            cleanup();
            reject(new Error(`${cmd} exited before printing ${re}:\n${out}\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${cmd} did not print ${re} within ${timeoutMs} ms:\n${out}\n${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async done(timeoutMs = 60_000) {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export function startMptun(lab: NetnsLab, ns: string, args: string[]): Run {
  return start(lab, ns, process.execPath, [MPTUN_BIN, '--log-level', 'info', ...args]);
}

/**
 * Waits until something listens on TCP `port` in `ns`. iperf3 -s -J prints nothing when it is
 * ready, so this asks `ss`, a bounded number of times.
 */
export async function waitForListen(
  lab: NetnsLab,
  ns: string,
  port: number,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (lab.exec(ns, 'ss', '-Hltn', `sport = :${port}`).trim() !== '') return;
    await delay(20);
  }
  throw new Error(`nothing listened on port ${port} in ${ns} within ${timeoutMs} ms`);
}

/** A parsed -J report: tests read deep fields of iperf3's and our JSON without declaring them all. */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON documents in tests
export type Report = Record<string, any>;

/** Parses a process's stdout as one JSON document, with its output in the error if it is not. */
export function json(run: Run): Report {
  try {
    return JSON.parse(run.stdout());
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message}):\n${run.stdout()}\n${run.stderr()}`);
  }
}
