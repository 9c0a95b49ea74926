/**
 * What the namespace benchmarks share: their namespaces and child processes (removed by
 * `cleanup()`, also on failure), and waiting for a child's output or exit (events, not sleeps).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function waitForOutput(child: ChildProcess, re: RegExp, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${re}: ${out}`)), timeoutMs);
    const onData = (d: string) => {
      out += d;
      if (re.test(out)) done();
    };
    const onExit = (code: number | null) => done(new Error(`exited (${code}) before printing ${re}: ${out}`));
    const done = (err?: Error) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
  });
}

export function exited(child: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Namespaces and child processes of this benchmark; cleanup() removes them all. */
export class Env {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();

  /** `tag` names the suite in the namespaces' per-run prefix (mptun-<tag><pid>-<random>). */
  constructor(tag: string) {
    this.prefix = `mptun-${tag}${process.pid}-${randomBytes(2).toString('hex')}`;
  }

  netns(name: string): string {
    const ns = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.sh(ns, 'ip link set lo up');
    return ns;
  }

  sh(ns: string, script: string): string {
    return execFileSync('ip', ['netns', 'exec', ns, 'sh', '-ec', script], { encoding: 'utf8' });
  }

  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // Always drained (a full pipe would stall the child); shown unless it is iperf3's root warning.
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const text = d.replace(/^Running as user "root".*\n?/m, '');
      if (/\b(error|warn|fail)/i.test(text))
        process.stderr.write(`[${cmd === process.execPath ? 'mptun' : cmd}] ${text}`);
    });
    return child;
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) {
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await done;
    }
    for (const ns of this.namespaces.splice(0)) execFileSync('ip', ['netns', 'delete', ns]);
  }
}
