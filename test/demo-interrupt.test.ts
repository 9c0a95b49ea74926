/**
 * `mptun demo`: flags checked before anything runs (exit 2 naming the fix), and Ctrl-C while
 * the servers run tears everything down (exit 130, no namespace of its prefix, no state file).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { statePath } from '../src/proxy/testbed/state.js';
import { leftovers, mptun, runPrefix, scrub, tempStateDir } from './support/testbed-run.js';

const prefix = runPrefix('dint');
const dir = tempStateDir();
after(() => scrub(prefix, dir));

test('--help lists the flags; bad flags exit 2 naming the fix', () => {
  const help = mptun('demo', '--help');
  assert.equal(help.status, 0);
  for (const flag of ['--prefix', '--state-dir', '--rate1', '--rate2', '--time', '--flip-time', '--plot'])
    assert.match(help.stdout, new RegExp(flag));
  // Each case is a process start (a few seconds here): three cover the kinds of check.
  const cases: [string[], RegExp][] = [
    [['--rate1', 'fast'], /--rate1: 'fast' is not a rate/],
    [['--flip-time', '1'], /--flip-time must be 3-60 seconds/],
    [['--plot', 'x.svg'], /--plot x\.svg: the chart is an HTML page/],
  ];
  for (const [args, re] of cases) {
    const r = mptun('demo', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('Ctrl-C while the proxies run: exit 130, nothing of the prefix left', async () => {
  const child = spawn(
    process.execPath,
    ['bin/mptun.js', 'demo', '--prefix', prefix, '--state-dir', dir, '-t', '5'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  const guard = setTimeout(() => child.kill('SIGKILL'), 50_000);
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      // The plain TCP run has started: servers and backends are up.
      if (/run 1: plain TCP/.test(out)) resolve();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    void closed.then(() => reject(new Error(`demo exited first:\n${out}\n${err}`)));
  });
  assert.ok(existsSync(statePath(dir, prefix)), 'the state file exists while it runs');
  child.kill('SIGINT');
  const code = await closed;
  clearTimeout(guard);
  assert.equal(code, 130, `${out}\n${err}`);
  assert.match(err, /demo: SIGINT, tearing everything down/);
  assert.match(err, new RegExp(`demo: interrupted; nothing of '${prefix}' is left`));
  assert.doesNotMatch(out, /mptun demo: testbed/, 'no table after an interrupt');
  assert.deepEqual(await leftovers(prefix), []);
  assert.equal(existsSync(statePath(dir, prefix)), false);
});
