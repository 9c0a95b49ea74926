/**
 * Host network plumbing through iproute2: namespaces, addresses, routes. Every command runs
 * synchronously (setup and teardown only, never on a packet path) and a failure becomes a
 * HostCommandError carrying the command and its stderr.
 */
import { execFileSync } from 'node:child_process';
import { HostCommandError } from '../errors.js';

/** Runs `ip ARGS` in `netns` (a name under /var/run/netns, or a path) or the current namespace. */
export function ip(netns: string | undefined, ...args: string[]): string {
  const argv =
    netns === undefined
      ? ['ip', ...args]
      : netns.includes('/')
        ? ['nsenter', `--net=${netns}`, 'ip', ...args]
        : ['ip', '-n', netns, ...args];
  return run(argv);
}

export function run(argv: string[]): string {
  const [cmd, ...args] = argv;
  try {
    return execFileSync(cmd!, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim() ?? '';
    throw new HostCommandError(`'${argv.join(' ')}' failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
  }
}

export function addNetns(name: string): void {
  ip(undefined, 'netns', 'add', name);
  ip(name, 'link', 'set', 'lo', 'up');
}

export function deleteNetns(name: string): void {
  ip(undefined, 'netns', 'delete', name);
}

export function netnsExists(name: string): boolean {
  return ip(undefined, 'netns', 'list')
    .split('\n')
    .some((line) => line.split(' ')[0] === name);
}

/** `ip addr add CIDR dev DEV` (e.g. '10.0.0.1/32'). */
export function addAddress(netns: string | undefined, dev: string, cidr: string): void {
  ip(netns, 'addr', 'add', cidr, 'dev', dev);
}

/** `ip route add PREFIX dev DEV [src SRC]`. */
export function addRoute(netns: string | undefined, prefix: string, dev: string, src?: string): void {
  ip(netns, 'route', 'add', prefix, 'dev', dev, ...(src === undefined ? [] : ['src', src]));
}
