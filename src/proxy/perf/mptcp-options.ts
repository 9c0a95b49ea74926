/**
 * `mptun perf --mptcp`: the settings a userspace stack applies to its MPTCP connections, and the
 * parsing of `--announce IP[:PORT]`. Kept apart from user-stack.ts so the CLI can validate flags
 * without loading the TUN binding.
 */
import { isIP } from 'node:net';
import { PerfError } from '../../errors.js';
import { addressEqual, tryParseAddress } from '../../stack/iface/address.js';
import {
  isMptcpCongestionName,
  MPTCP_CONGESTION_NAMES,
  type MptcpCongestionName,
} from '../../stack/mptcp/coupled-cc.js';
import { isSchedulerName, SCHEDULER_NAMES, type SchedulerName } from '../../stack/mptcp/sched.js';

export interface PerfMptcpOptions {
  /** Server: set the C flag in MP_CAPABLE ("no joins to this address and port"). */
  cFlag: boolean;
  /** Server: addresses to announce with ADD_ADDR (each one of the stack's own). */
  announce: AnnouncedAddress[];
  /** Require DSS checksums (MP_CAPABLE's A flag). */
  checksum: boolean;
  /** `--scheduler`: which subflow carries the next data (default lowest-rtt). */
  scheduler?: SchedulerName;
  /** `--backup ADDR`: our addresses (of --addr) whose subflows are MP_PRIO backups. */
  backup?: string[];
  /** `--congestion`: the subflows' congestion control (coupled or not; default MptcpConfig's). */
  congestion?: MptcpCongestionName;
}

/** Checks `--congestion NAME`; returns the problem as a message naming the choices. */
export function checkCongestionFlag(congestion: string | undefined, mptcp: boolean): string | undefined {
  if (congestion === undefined) return undefined;
  if (!mptcp) return '--congestion goes with --mptcp';
  return congestionNameProblem(congestion);
}

/** `--congestion NAME` (perf and both proxies): the problem, naming the choices, or undefined. */
export function congestionNameProblem(congestion: string): string | undefined {
  if (!isMptcpCongestionName(congestion))
    return `--congestion '${congestion}': use one of ${MPTCP_CONGESTION_NAMES.join(', ')} (lia, olia, balia are coupled across the subflows; cubic, newreno run per subflow)`;
  return undefined;
}

/** `--scheduler NAME` (perf and both proxies): the problem, naming the choices, or undefined. */
export function schedulerNameProblem(scheduler: string): string | undefined {
  if (!isSchedulerName(scheduler))
    return `--scheduler '${scheduler}': use one of ${SCHEDULER_NAMES.join(', ')} (backup subflows come from --backup, with any scheduler)`;
  return undefined;
}

/**
 * Checks `--scheduler` and `--backup` (each one of the stack's `--addr` values, IP[/PREFIX]);
 * returns the first problem as a message naming the fix.
 */
export function checkSchedulerFlags(
  scheduler: string | undefined,
  backup: readonly string[],
  addrs: readonly string[],
  mptcp: boolean,
): string | undefined {
  if (scheduler !== undefined && !mptcp) return '--scheduler goes with --mptcp';
  if (backup.length > 0 && !mptcp) return '--backup goes with --mptcp';
  const named = scheduler === undefined ? undefined : schedulerNameProblem(scheduler);
  if (named !== undefined) return named;
  const own = addrs.map((a) => tryParseAddress(a.split('/')[0] ?? ''));
  for (const text of backup) {
    const ip = tryParseAddress(text);
    if (ip === undefined) return `--backup '${text}': not an address; give one of the --addr addresses`;
    if (!own.some((o) => o !== undefined && addressEqual(o, ip)))
      return `--backup ${text} is not one of the stack's addresses; add --addr ${text} (a backup is a local address whose subflows carry data only when no other path can)`;
  }
  return undefined;
}

/** The proxies' --scheduler and --congestion, checked (undefined ones: the engine's defaults). */
export function engineFlags(f: {
  scheduler?: string | undefined;
  congestion?: string | undefined;
}): { scheduler?: SchedulerName; congestion?: MptcpCongestionName } | { error: string } {
  const problem =
    (f.scheduler === undefined ? undefined : schedulerNameProblem(f.scheduler)) ??
    (f.congestion === undefined ? undefined : congestionNameProblem(f.congestion));
  if (problem !== undefined) return { error: problem };
  return {
    ...(f.scheduler === undefined ? {} : { scheduler: f.scheduler as SchedulerName }),
    ...(f.congestion === undefined ? {} : { congestion: f.congestion as MptcpCongestionName }),
  };
}

export interface AnnouncedAddress {
  address: string;
  port?: number;
}

/**
 * Parses `IP`, `IP:PORT` (IPv4), `IPV6` or `[IPV6]:PORT`; otherwise `{ error }`, a message that
 * names the accepted forms.
 */
export function parseAnnounce(text: string): AnnouncedAddress | { error: string } {
  const forms = 'use IP, IPv4:PORT, IPv6 or [IPv6]:PORT';
  let address = text;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) {
    address = bracket[1] ?? '';
    portText = bracket[2];
  } else if (isIP(text) === 0) {
    const at = text.lastIndexOf(':');
    if (at > 0 && text.indexOf(':') === at) {
      address = text.slice(0, at);
      portText = text.slice(at + 1);
    }
  }
  if (isIP(address) === 0) return { error: `--announce '${text}': not an address; ${forms}` };
  if (bracket && isIP(address) !== 6)
    return { error: `--announce '${text}': brackets are for IPv6; ${forms}` };
  if (portText === undefined) return { address };
  const port = Number(portText);
  if (portText.trim() === '' || !Number.isInteger(port) || port < 1 || port > 65535)
    return { error: `--announce '${text}': the port must be 1-65535` };
  return { address, port };
}

/**
 * Checks `--announce` values against the stack's `--addr` values (IP[/PREFIX]): a server can only
 * announce an address it owns. Returns the first problem as a message naming the fix.
 */
export function checkAnnounce(announce: readonly string[], addrs: readonly string[]): string | undefined {
  const own = addrs.map((a) => tryParseAddress(a.split('/')[0] ?? ''));
  for (const text of announce) {
    const a = parseAnnounce(text);
    if ('error' in a) return a.error;
    const ip = tryParseAddress(a.address);
    if (ip === undefined || !own.some((o) => o !== undefined && addressEqual(o, ip)))
      return `--announce ${text}: ${a.address} is not one of the stack's addresses; add --addr ${a.address} (a server announces its own unique address)`;
  }
  return undefined;
}

/** The parsed announcements; throws PerfError (the CLI has checked them already). */
export function parseAnnouncements(announce: readonly string[]): AnnouncedAddress[] {
  return announce.map((text) => {
    const a = parseAnnounce(text);
    if ('error' in a) throw new PerfError(a.error);
    return a;
  });
}

/** An announcement in the form `--announce` takes. */
export function announceText(a: AnnouncedAddress): string {
  if (a.port === undefined) return a.address;
  return isIP(a.address) === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
