/**
 * `mptun perf --scheduler NAME` and `--backup ADDR`: documented in --help (both ends), and flags
 * that cannot work rejected before anything starts (exit 2, a message naming the fix).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { checkSchedulerFlags } from '../src/proxy/perf/mptcp-options.js';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', 'perf', ...args], { encoding: 'utf8' });
}

const USER = ['--stack', 'user', '--tun', 'schedcli0', '--addr', '10.0.0.1', '--addr', '10.0.0.2/24'];

test('--help documents --scheduler (its names) and --backup on client and server', () => {
  for (const side of [['server'], ['client', '10.0.0.9']]) {
    const r = mptun(...side, '--help');
    assert.equal(r.status, 0, r.stderr);
    const text = r.stdout.replace(/\s+/g, ' ');
    assert.match(text, /--scheduler .*'lowest-rtt' \(default, as Linux\), 'round-robin', or 'redundant'/);
    assert.match(text, /--backup .*local address \(one of --addr; repeatable\)/);
  }
});

for (const [args, message] of [
  [['client', '10.0.0.9', ...USER, '--scheduler', 'redundant'], /--scheduler goes with --mptcp/],
  [['server', ...USER, '--backup', '10.0.0.2'], /--backup goes with --mptcp/],
  [
    ['client', '10.0.0.9', ...USER, '--mptcp', '--scheduler', 'backup'],
    /--scheduler 'backup': use one of lowest-rtt, round-robin, redundant \(backup subflows come from --backup, with any scheduler/,
  ],
  [
    ['server', ...USER, '--mptcp', '--backup', '10.0.0.7'],
    /--backup 10\.0\.0\.7 is not one of the stack's addresses; add --addr 10\.0\.0\.7/,
  ],
  [['client', '10.0.0.9', ...USER, '--mptcp', '--backup', 'lte0'], /--backup 'lte0': not an address/],
] as const) {
  test(`perf ${args.join(' ')}: exit 2`, () => {
    const r = mptun(...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  });
}

test('checkSchedulerFlags: every name, a backup with or without its prefix in --addr', () => {
  for (const name of ['lowest-rtt', 'round-robin', 'redundant'])
    assert.equal(checkSchedulerFlags(name, [], ['10.0.0.1'], true), undefined);
  assert.equal(checkSchedulerFlags(undefined, ['10.0.0.2'], ['10.0.0.1/24', '10.0.0.2/24'], true), undefined);
  assert.equal(checkSchedulerFlags(undefined, ['fd00::2'], ['10.0.0.1', 'fd00::2/64'], true), undefined);
  assert.match(checkSchedulerFlags('rr', [], ['10.0.0.1'], true) ?? '', /use one of/);
  assert.equal(checkSchedulerFlags(undefined, [], [], false), undefined);
});
