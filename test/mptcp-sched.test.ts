/**
 * Schedulers (src/stack/mptcp/sched.ts): pure picking over fake subflows, and the backup rule
 * every scheduler honours (MP_PRIO backups carry data only when no regular subflow is usable).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  candidates,
  createScheduler,
  isSchedulerName,
  SCHEDULER_NAMES,
  type ScheduledSubflow,
  usingBackup,
} from '../src/stack/mptcp/sched.js';
import { DEFAULT_MPTCP_CONFIG } from '../src/stack/mptcp/types.js';

interface Fake extends ScheduledSubflow {
  name: string;
  srtt: number | undefined;
  sendRoom: number;
  isBackup: boolean;
  stale: boolean;
  open: boolean;
}

function sf(name: string, o: Partial<Omit<Fake, 'name' | 'canCarryData'>> = {}): Fake {
  return {
    name,
    srtt: 10,
    sendRoom: 1000,
    isBackup: false,
    stale: false,
    open: true,
    ...o,
    canCarryData() {
      return this.open;
    },
  };
}

describe('scheduler names', () => {
  it('lowest-rtt is the default; every name makes a fresh scheduler of that name', () => {
    assert.equal(DEFAULT_MPTCP_CONFIG.scheduler, 'lowest-rtt');
    assert.deepEqual([...SCHEDULER_NAMES], ['lowest-rtt', 'round-robin', 'redundant']);
    for (const name of SCHEDULER_NAMES) {
      assert.ok(isSchedulerName(name));
      assert.equal(createScheduler(name).name, name);
      assert.notEqual(createScheduler(name), createScheduler(name));
    }
    assert.equal(createScheduler().name, 'lowest-rtt');
    assert.equal(isSchedulerName('backup'), false, 'backup is a rule of every scheduler, not a name');
    assert.equal(isSchedulerName('bogus'), false);
    assert.deepEqual(
      SCHEDULER_NAMES.map((n) => createScheduler(n).redundant),
      [false, false, true],
    );
  });
});

describe('lowest-rtt', () => {
  const s = createScheduler('lowest-rtt');
  it('picks the lowest smoothed RTT among subflows with room', () => {
    const a = sf('a', { srtt: 30 });
    const b = sf('b', { srtt: 5 });
    const c = sf('c', { srtt: 1, sendRoom: 0 });
    assert.equal(s.pick([a, b, c])?.name, 'b');
    assert.equal(s.pick([a, c])?.name, 'a');
    assert.equal(s.pick([c]), undefined);
    assert.equal(s.pick([]), undefined);
  });
  it('a subflow without an RTT sample counts as 1 s: tried, not preferred', () => {
    assert.equal(s.pick([sf('new', { srtt: undefined }), sf('old', { srtt: 200 })])?.name, 'old');
    assert.equal(s.pick([sf('new', { srtt: undefined }), sf('slow', { srtt: 2000 })])?.name, 'new');
  });
  it('never a stale subflow or one that cannot carry data', () => {
    assert.equal(s.pick([sf('stale', { stale: true, srtt: 1 }), sf('b', { srtt: 50 })])?.name, 'b');
    assert.equal(s.pick([sf('closed', { open: false, srtt: 1 }), sf('b', { srtt: 50 })])?.name, 'b');
  });
});

describe('the backup rule (every scheduler)', () => {
  for (const name of SCHEDULER_NAMES) {
    it(`${name}: a backup only when no regular subflow is usable`, () => {
      const s = createScheduler(name);
      const backup = sf('backup', { isBackup: true, srtt: 1 });
      // A usable regular subflow without room: wait for it, do not spill over to the backup.
      assert.equal(s.pick([sf('full', { sendRoom: 0 }), backup]), undefined);
      assert.equal(s.pick([sf('ok', { srtt: 100 }), backup])?.name, 'ok');
      // The regular one went stale (its RTO fired) or died: the backup takes over at once.
      assert.equal(s.pick([sf('stale', { stale: true }), backup])?.name, 'backup');
      assert.equal(s.pick([sf('dead', { open: false }), backup])?.name, 'backup');
      assert.equal(s.pick([backup])?.name, 'backup');
      // Several backups: as among regular ones; a stale backup is no candidate either.
      assert.equal(
        s.pick([sf('b2', { isBackup: true, stale: true }), sf('dead', { open: false })]),
        undefined,
      );
    });
  }
  it('candidates and usingBackup', () => {
    const r = sf('r', { sendRoom: 0 });
    const b = sf('b', { isBackup: true });
    assert.deepEqual(
      candidates([r, b]).map((x) => x.name),
      ['r'],
    );
    assert.equal(usingBackup([r, b]), false);
    r.stale = true;
    assert.deepEqual(
      candidates([r, b]).map((x) => x.name),
      ['b'],
    );
    assert.equal(usingBackup([r, b]), true);
    assert.equal(usingBackup([r]), false);
  });
});

describe('round-robin', () => {
  it('takes turns among subflows with room, skipping full ones, whatever their RTT', () => {
    const s = createScheduler('round-robin');
    const a = sf('a', { srtt: 100 });
    const b = sf('b', { srtt: 1 });
    const c = sf('c', { srtt: 50 });
    const all = [a, b, c];
    assert.deepEqual(
      Array.from({ length: 6 }, () => s.pick(all)?.name),
      ['a', 'b', 'c', 'a', 'b', 'c'],
    );
    b.sendRoom = 0;
    assert.deepEqual(
      Array.from({ length: 4 }, () => s.pick(all)?.name),
      ['a', 'c', 'a', 'c'],
    );
    a.sendRoom = 0;
    c.sendRoom = 0;
    assert.equal(s.pick(all), undefined);
  });
  it('a subflow that went away: the turn goes on from the start', () => {
    const s = createScheduler('round-robin');
    const a = sf('a');
    const b = sf('b');
    assert.equal(s.pick([a, b])?.name, 'a');
    assert.equal(s.pick([b])?.name, 'b');
    assert.equal(s.pick([a, b])?.name, 'a');
  });
});

describe('redundant', () => {
  it('picks as lowest-rtt (the first to take new data); the connection copies to the others', () => {
    const s = createScheduler('redundant');
    assert.equal(s.redundant, true);
    assert.equal(s.pick([sf('slow', { srtt: 90 }), sf('fast', { srtt: 9 })])?.name, 'fast');
  });
});
