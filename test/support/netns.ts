import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * Private network namespaces for tests. Each test run gets its own prefix so parallel runs never
 * collide; everything made here is removed by `cleanup()` (call it from `after`/`t.after`, so it
 * also runs on failure). Only processes started through `spawn` here are killed, by PID.
 */
export class NetnsLab {
  readonly prefix = `mptun-t${process.pid}-${randomBytes(2).toString('hex')}`;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** Creates a namespace named `<prefix>-<name>` with loopback up; returns its full name. */
  add(name: string): string {
    const ns = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.exec(ns, 'ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** Runs a command inside `ns` and returns its stdout; throws with stderr on failure. */
  exec(ns: string, cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', stdio: 'pipe' });
  }

  /** Starts a long-running command inside `ns`; it is killed by cleanup() if still running. */
  spawn(ns: string, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...options });
    this.children.push(child);
    return child;
  }

  /** Connects `a` and `b` with a veth pair, addresses given as CIDR (e.g. 10.9.0.1/24). */
  veth(a: string, aAddr: string, b: string, bAddr: string, name = 'veth0'): void {
    const peer = `${name}p`;
    execFileSync('ip', ['link', 'add', name, 'netns', a, 'type', 'veth', 'peer', 'name', peer, 'netns', b]);
    this.exec(a, 'ip', 'addr', 'add', aAddr, 'dev', name);
    this.exec(b, 'ip', 'addr', 'add', bAddr, 'dev', peer);
    this.exec(a, 'ip', 'link', 'set', name, 'up');
    this.exec(b, 'ip', 'link', 'set', peer, 'up');
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    }
    for (const ns of this.namespaces.splice(0)) {
      execFileSync('ip', ['netns', 'delete', ns]);
    }
  }
}
