/**
 * Schedulers: which subflow the connection gives its next data to. A scheduler only picks; the
 * connection does the pushing (Linux's split: mptcp_subflow_get_send vs __mptcp_push_pending).
 * One scheduler instance per connection (round-robin keeps a cursor), made by `createScheduler`
 * from MptcpConfig.scheduler.
 *
 * - 'lowest-rtt' (default, as Linux's): the subflow with the lowest smoothed RTT that has room.
 * - 'round-robin': the next subflow after the last one picked that has room (subflows without
 *   room are skipped, as the out-of-tree multipath-tcp.org roundrobin scheduler does).
 * - 'redundant': every byte on every subflow. `pick` is lowest-rtt's (that subflow takes new
 *   data first); `redundant: true` tells the connection to give each other subflow, as its room
 *   allows, a copy of what it has not carried yet and the peer has not DATA_ACKed yet. The first
 *   copy to be DATA_ACKed wins; the receiver drops the later ones as duplicates.
 *
 * Backup (MP_PRIO, RFC 8684 §3.3.8) is not a scheduler of its own but a rule every scheduler
 * honours (`candidates`): while some regular subflow is usable (it may carry data and is not
 * stale), only regular subflows are considered, even when none of them has room right now; the
 * backup subflows are considered only when no regular subflow is usable. So a backup path carries
 * no data while a regular path works, and takes over as soon as the regular one goes stale (its
 * RTO fired while another subflow could carry data), without waiting for its death. We chose a
 * rule over a 'backup' scheduler because a user wants a backup path whatever the scheduler of
 * the regular ones, and Linux's scheduler treats backup subflows the same way.
 */

export const SCHEDULER_NAMES = ['lowest-rtt', 'round-robin', 'redundant'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

export function isSchedulerName(name: string): name is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(name);
}

/** What a scheduler may look at of a subflow. */
export interface ScheduledSubflow {
  /** Smoothed RTT (ms), undefined before the first sample. */
  readonly srtt: number | undefined;
  /** Bytes its windows would send now beyond what it holds unsent (0 when it may not send). */
  readonly sendRoom: number;
  /** MP_PRIO backup (ours or the peer's): carries data only when no regular subflow can. */
  readonly isBackup: boolean;
  /** Its RTO fired while another subflow could carry data: no new data until it is ACKed. */
  readonly stale: boolean;
  /** Open, not reset, and (for a join) fully established. */
  canCarryData(): boolean;
}

export interface Scheduler {
  readonly name: SchedulerName;
  /** Every other candidate gets a copy of the data (see the file comment). */
  readonly redundant: boolean;
  /** The subflow to carry the next data among those with room; undefined: none now. */
  pick<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined;
}

/** RTT assumed for a subflow without a sample yet (ms): new subflows get a try, not priority. */
const UNKNOWN_RTT_MS = 1000;

function usable(s: ScheduledSubflow): boolean {
  return !s.stale && s.canCarryData();
}

/**
 * The subflows a scheduler may give data to (with or without room now): the usable regular ones,
 * or, when there is none, the usable backup ones.
 */
export function candidates<T extends ScheduledSubflow>(subflows: readonly T[]): T[] {
  const regular = subflows.filter((s) => !s.isBackup && usable(s));
  return regular.length > 0 ? regular : subflows.filter((s) => s.isBackup && usable(s));
}

/** Whether a usable regular subflow exists (then backups are no candidates). Allocation-free. */
function regularUsable(subflows: readonly ScheduledSubflow[]): boolean {
  for (const s of subflows) if (!s.isBackup && usable(s)) return true;
  return false;
}

/** Whether data now goes to backup subflows (no regular subflow is usable, a backup one is). */
export function usingBackup(subflows: readonly ScheduledSubflow[]): boolean {
  if (regularUsable(subflows)) return false;
  for (const s of subflows) if (s.isBackup && usable(s)) return true;
  return false;
}

/** lowest-rtt's pick; without allocating (it runs for every chunk pushed). */
function lowestRtt<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined {
  const backups = !regularUsable(subflows);
  let best: T | undefined;
  let bestRtt = Number.POSITIVE_INFINITY;
  for (const s of subflows) {
    if (s.isBackup !== backups || !usable(s) || s.sendRoom <= 0) continue;
    const rtt = s.srtt ?? UNKNOWN_RTT_MS;
    if (rtt < bestRtt) {
      best = s;
      bestRtt = rtt;
    }
  }
  return best;
}

class LowestRttScheduler implements Scheduler {
  readonly name = 'lowest-rtt';
  readonly redundant = false;
  pick<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined {
    return lowestRtt(subflows);
  }
}

class RoundRobinScheduler implements Scheduler {
  readonly name = 'round-robin';
  readonly redundant = false;
  /** The subflow picked last (by identity: subflows come and go). */
  private last: ScheduledSubflow | undefined;

  pick<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined {
    const c = candidates(subflows);
    if (c.length === 0) return undefined;
    const at = this.last === undefined ? -1 : c.indexOf(this.last as T);
    for (let i = 1; i <= c.length; i++) {
      const s = c[(at + i + c.length) % c.length]!;
      if (s.sendRoom > 0) {
        this.last = s;
        return s;
      }
    }
    return undefined;
  }
}

class RedundantScheduler implements Scheduler {
  readonly name = 'redundant';
  readonly redundant = true;
  pick<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined {
    return lowestRtt(subflows);
  }
}

/** A fresh scheduler for one connection. */
export function createScheduler(name: SchedulerName = 'lowest-rtt'): Scheduler {
  switch (name) {
    case 'lowest-rtt':
      return new LowestRttScheduler();
    case 'round-robin':
      return new RoundRobinScheduler();
    case 'redundant':
      return new RedundantScheduler();
  }
}

/** The default scheduler (stateless, so one instance may be shared). */
export const lowestRttScheduler: Scheduler = new LowestRttScheduler();
