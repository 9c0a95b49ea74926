/**
 * The demo's child processes: each runs inside one testbed namespace (`ip netns exec`), its
 * output collected from the first byte, with a wait for a line (an event, not a sleep) and a
 * stop by its own PID (SIGTERM, then SIGKILL after a grace period).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HostCommandError } from '../../errors.js';

export const MPTUN_BIN = fileURLToPath(new URL('../../../bin/mptun.js', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class NsProcess {
  private out = '';
  private err = '';
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;
  readonly child: ChildProcess;

  constructor(
    readonly label: string,
    readonly ns: string,
    cmd: string,
    args: readonly string[],
  ) {
    this.child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.out += d;
      this.wake();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.err += d;
      this.wake();
    });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('error', (e) => {
        this.err += `spawn failed: ${e.message}\n`;
        this.exit = { code: 127, signal: null };
        resolve(this.exit);
        this.wake();
      });
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.wake();
      });
    });
  }

  static mptun(label: string, ns: string, args: readonly string[]): NsProcess {
    return new NsProcess(label, ns, process.execPath, [MPTUN_BIN, ...args]);
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** The first match of `re` in stdout or stderr; rejects when the process exits first or on timeout. */
  waitFor(re: RegExp, timeoutMs: number, signal?: AbortSignal): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        signal?.removeEventListener('abort', check);
        f();
      };
      const check = () => {
        const m = re.exec(this.out) ?? re.exec(this.err);
        if (m) return done(() => resolve(m));
        if (signal?.aborted) return done(() => reject(signal.reason as Error));
        if (!this.running)
          return done(() =>
            reject(new HostCommandError(`${this.label} exited before it was ready:\n${this.tail()}`)),
          );
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new HostCommandError(`${this.label} was not ready within ${timeoutMs} ms:\n${this.tail()}`),
            ),
          ),
        timeoutMs,
      );
      this.waiters.add(check);
      signal?.addEventListener('abort', check, { once: true });
      check();
    });
  }

  /** The last lines of its output, for error messages. */
  tail(lines = 12): string {
    return `${this.out}${this.err}`.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Resolves when it exits; an abort stops it first. */
  async done(signal?: AbortSignal): Promise<Exit> {
    if (signal === undefined) return this.exited;
    const onAbort = () => void this.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.exited;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** SIGTERM to this process (ip netns exec passes it on by exec'ing), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<Exit> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
