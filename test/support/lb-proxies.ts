/**
 * mptun's two proxies as the load-balancer lab's tests run them (DESIGN.md §4): the client on
 * `cli` intercepting the VIP over both plumbed paths, a server on one of the server hosts with
 * the VIP, its unique address and a backend per listen port on that host's 127.0.0.1.
 */
import type { LbLab, LbServer } from './mptcp-lab.js';
import type { NetnsLab } from './netns.js';
import { type Run, startMptun } from './perf-lab.js';

/** `mptun client` on t.cli: intercepts t.vip over paths p1 and p2. */
export function startLbClient(lab: NetnsLab, t: LbLab, drainTimeoutS = 2): Run {
  return startMptun(lab, t.cli, [
    ...['client', '--tun', 'mpt-cli', '--intercept', `${t.vip.v4}/32`],
    ...['--path', `p1=${t.paths[0].far.v4}`, '--path', `p2=${t.paths[1].far.v4}`],
    ...['--drain-timeout', String(drainTimeoutS)],
  ]);
}

/** `mptun server` on `s`: each [listen, backend port] pair bridges to 127.0.0.1:backend. */
export function startLbServer(
  lab: NetnsLab,
  t: LbLab,
  s: LbServer,
  ports: readonly (readonly [listen: number, backend: number])[],
  drainTimeoutS = 2,
): Run {
  return startMptun(lab, s.ns, [
    ...['server', '--tun', 'mpt-srv', '--vip', t.vip.v4, '--unique', s.unique.v4],
    ...ports.flatMap(([listen, backend]) => [
      '--listen',
      String(listen),
      '--backend',
      `127.0.0.1:${backend}`,
    ]),
    ...['--drain-timeout', String(drainTimeoutS)],
  ]);
}
