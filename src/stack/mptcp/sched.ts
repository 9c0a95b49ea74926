/**
 * Schedulers: which subflow the connection gives its next data to. A scheduler only picks; the
 * connection does the pushing (Linux's split: mptcp_subflow_get_send vs __mptcp_push_pending).
 */

/** What a scheduler may look at of a subflow. */
export interface ScheduledSubflow {
  /** Smoothed RTT (ms), undefined before the first sample. */
  readonly srtt: number | undefined;
  /** Bytes its windows would send now beyond what it holds unsent. */
  readonly sendRoom: number;
  /** MP_PRIO backup (ours or the peer's): carries data only when no regular subflow can. */
  readonly isBackup: boolean;
}

export interface Scheduler {
  readonly name: string;
  /** The subflow to carry the next data, among those that can send at all; undefined: none now. */
  pick<T extends ScheduledSubflow>(subflows: readonly T[]): T | undefined;
}

/** RTT assumed for a subflow without a sample yet (ms): new subflows get a try, not priority. */
const UNKNOWN_RTT_MS = 1000;

/**
 * The default, as Linux's: the regular subflow with the lowest smoothed RTT that has room in
 * its congestion and receive windows; a backup subflow only when no regular one has room and
 * none is usable at all.
 */
export const lowestRttScheduler: Scheduler = {
  name: 'lowest-rtt',
  pick(subflows) {
    let best: (typeof subflows)[number] | undefined;
    let bestRtt = Number.POSITIVE_INFINITY;
    let backup: (typeof subflows)[number] | undefined;
    let regularExists = false;
    for (const s of subflows) {
      if (!s.isBackup) regularExists = true;
      if (s.sendRoom <= 0) continue;
      if (s.isBackup) {
        backup ??= s;
        continue;
      }
      const rtt = s.srtt ?? UNKNOWN_RTT_MS;
      if (rtt < bestRtt) {
        best = s;
        bestRtt = rtt;
      }
    }
    return best ?? (regularExists ? undefined : backup);
  },
};
