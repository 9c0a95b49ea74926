/**
 * Path following for `mptun client --path IFACE`: watches the paths' interfaces and tells the
 * stack when a path's address can no longer carry subflows, and when it can again.
 *
 * `ip -o monitor link address` runs as a child process (in the client's own network namespace);
 * each line it prints that names one of the paths' interfaces makes the watcher look at that
 * interface again (`ip -o link show` and `ip -o addr show`), coalesced per tick. A path family is
 * up when the link is administratively up with carrier (UP and LOWER_UP, no NO-CARRIER) and the
 * interface holds an address of that family (a global one for IPv6). On a change the owner's
 * `onChange` runs; the client then calls `TcpStack.setAddressState` for the path's private stack
 * address (the engine resets its subflows and sends REMOVE_ADDR; on up it re-creates them) after
 * restoring the path's table route, which the kernel removed with the link.
 *
 * Nothing is polled: an event that happened before the monitor subscribed is caught by the look
 * taken right after it starts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../log.js';
import { run } from '../host-net.js';

export interface PathState {
  /** Link up with carrier. */
  link: boolean;
  /** Up and holding an IPv4 address. */
  v4: boolean;
  /** Up and holding a global IPv6 address. */
  v6: boolean;
}

/** What an interface looks like right now (a missing interface is all down). */
export function probeInterface(iface: string): PathState {
  let link: string;
  let addrs: string;
  try {
    link = run(['ip', '-o', 'link', 'show', 'dev', iface]);
    addrs = run(['ip', '-o', 'addr', 'show', 'dev', iface]);
  } catch (err) {
    // An interface that does not exist (any more) is a path that is down; anything else is news.
    if (/does not exist|Cannot find device/.test((err as Error).message))
      return { link: false, v4: false, v6: false };
    throw err;
  }
  return parseState(link, addrs);
}

/** The state from `ip -o link show dev X` and `ip -o addr show dev X` output. */
export function parseState(link: string, addrs: string): PathState {
  const flags = /<([^>]*)>/.exec(link)?.[1]?.split(',') ?? [];
  const up = flags.includes('UP') && flags.includes('LOWER_UP') && !flags.includes('NO-CARRIER');
  const lines = addrs.split('\n');
  const v4 = lines.some((l) => /\sinet\s/.test(l) && !/\stentative\b/.test(l));
  const v6 = lines.some((l) => /\sinet6\s/.test(l) && /\sscope global\b/.test(l) && !/\btentative\b/.test(l));
  return { link: up, v4: up && v4, v6: up && v6 };
}

/** The interface a monitor line is about: `3: p2: <...>`, `Deleted 3: p2    inet ...`. */
export function monitorLineIface(line: string): string | undefined {
  return /^(?:Deleted\s+)?\d+:\s+([^\s:@]+)/.exec(line.trim())?.[1];
}

export interface LinkWatchOptions {
  ifaces: readonly string[];
  log: Logger;
  /** A path's state changed (also called once per path at start when it is not all up). */
  onChange: (iface: string, state: PathState, before: PathState) => void;
  /** For tests: how an interface is looked at. */
  probe?: (iface: string) => PathState;
}

export class LinkWatch {
  private readonly states = new Map<string, PathState>();
  private readonly dirty = new Set<string>();
  private child: ChildProcess | undefined;
  private scheduled = false;
  private stopped = false;
  private readonly probe: (iface: string) => PathState;

  constructor(private readonly o: LinkWatchOptions) {
    this.probe = o.probe ?? probeInterface;
    for (const i of o.ifaces) this.states.set(i, { link: true, v4: true, v6: true });
  }

  /** Starts the monitor; the paths are looked at once right away. */
  start(): void {
    const child = spawn('ip', ['-o', 'monitor', 'link', 'address'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', (err) => {
      this.o.log.warn(
        { err: err.message },
        'client: cannot watch the path interfaces (ip monitor); paths going down are not followed',
      );
    });
    child.once('exit', (code, signal) => {
      if (!this.stopped)
        this.o.log.warn(
          { code, signal, stderr: stderr.trim() },
          'client: ip monitor exited; paths going down are no longer followed',
        );
    });
    for (const i of this.o.ifaces) this.mark(i);
  }

  /** One line of `ip -o monitor link address`. */
  onLine(line: string): void {
    const iface = monitorLineIface(line);
    if (iface !== undefined && this.states.has(iface)) this.mark(iface);
  }

  private mark(iface: string): void {
    this.dirty.add(iface);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (const i of [...this.dirty]) {
        this.dirty.delete(i);
        this.check(i);
      }
    });
  }

  private check(iface: string): void {
    if (this.stopped) return;
    const before = this.states.get(iface);
    if (before === undefined) return;
    let now: PathState;
    try {
      now = this.probe(iface);
    } catch (err) {
      this.o.log.warn({ iface, err: (err as Error).message }, 'client: cannot look at a path interface');
      return;
    }
    if (now.link === before.link && now.v4 === before.v4 && now.v6 === before.v6) return;
    this.states.set(iface, now);
    this.o.onChange(iface, now, before);
  }

  /** The last state seen of `iface`. */
  state(iface: string): PathState | undefined {
    return this.states.get(iface);
  }

  stop(): void {
    this.stopped = true;
    const child = this.child;
    this.child = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}
