import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', ...args], { encoding: 'utf8' });
}

test('--help lists the commands and the global flags', () => {
  const r = mptun('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /mptun selfcheck/);
  assert.match(r.stdout, /--log-level/);
});

test('an unknown flag is rejected with a message and exit code 2', () => {
  const r = mptun('selfcheck', '--no-such-flag');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Unknown argument/);
  assert.match(r.stderr, /mptun selfcheck --help/);
});

test('a missing command is rejected', () => {
  const r = mptun();
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Name a command/);
});

test('a value a check rejects exits 2 with the check message, before the command runs', () => {
  const r = mptun('selfcheck', '--count', '0');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--count must be 1-100/);
  assert.match(r.stderr, /mptun selfcheck --help/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace');
  assert.doesNotMatch(r.stdout, /selfcheck/, 'the command did not run');
});
