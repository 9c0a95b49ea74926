/**
 * Host network plumbing through iproute2: namespaces, addresses, routes. Every command runs
 * synchronously (setup and teardown only, never on a packet path) and a failure becomes a
 * HostCommandError carrying the command and its stderr.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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

/** Runs `nft -f -` with `script` on stdin (one atomic transaction) in the current namespace. */
export function nftScript(script: string): void {
  try {
    execFileSync('nft', ['-f', '-'], { input: script, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim() ?? '';
    throw new HostCommandError(`'nft -f -' failed${stderr ? `: ${stderr}` : ''}\n${script}`, { cause: err });
  }
}

/** `nft ARGS` in the current namespace. */
export function nft(...args: string[]): string {
  return run(['nft', ...args]);
}

/** The value of sysctl `key` (dotted, e.g. net.ipv4.ip_forward), read from /proc/sys. */
export function readSysctl(key: string): string {
  return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
}

/** Sets sysctl `key` through /proc/sys (a failure is a HostCommandError naming the key). */
export function writeSysctl(key: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, value);
  } catch (err) {
    throw new HostCommandError(`could not set ${key}=${value}: ${(err as Error).message}`, { cause: err });
  }
}
