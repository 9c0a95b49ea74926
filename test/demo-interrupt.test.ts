/**
 * `mptun demo`: flags checked before anything runs (exit 2 naming the fix), a prefix in use left
 * alone, and Ctrl-C once the testbed is up and its processes start tears everything down (exit
 * 130, no namespace of its prefix, no state file).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { main } from '../src/proxy/cli.js';
import { statePath } from '../src/proxy/testbed/state.js';
import { leftovers, mptun, runPrefix, scrub, tempStateDir } from './support/testbed-run.js';

const prefix = runPrefix('dint');
const dir = tempStateDir();
after(() => scrub(prefix, dir));

test('--help lists the flags', () => {
  const help = mptun('demo', '--help');
  assert.equal(help.status, 0);
  for (const flag of ['--prefix', '--state-dir', '--rate1', '--rate2', '--time', '--flip-time', '--plot'])
    assert.match(help.stdout, new RegExp(flag));
});

/** Runs the CLI in this process (a process start costs seconds here); returns code and stderr. */
async function inProcess(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  // stdout stays: the test runner reports through it (the demo's progress lines show as comments).
  try {
    const code = await main(argv);
    return { code, stderr };
  } finally {
    process.stderr.write = write;
    process.exitCode = undefined;
  }
}

test('bad flags exit 2 naming the fix, before anything runs', async () => {
  const cases: [string[], RegExp][] = [
    [['--rate1', 'fast'], /--rate1: 'fast' is not a rate/],
    [['--flip-time', '1'], /--flip-time must be 3-60 seconds/],
    [['--plot', 'x.svg'], /--plot x\.svg: the chart is an HTML page/],
  ];
  for (const [args, re] of cases) {
    const r = await inProcess(['--log-level', 'silent', 'demo', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('a prefix in use is refused and its namespaces are left alone', async () => {
  const other = runPrefix('dtaken');
  execFileSync('ip', ['netns', 'add', `${other}-lb`]);
  try {
    const r = await inProcess(['--log-level', 'silent', 'demo', '--prefix', other, '--state-dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`namespace ${other}-lb already exists: prefix '${other}' is in use`));
    assert.deepEqual(await leftovers(other), [`${other}-lb`]);
  } finally {
    execFileSync('ip', ['netns', 'delete', `${other}-lb`]);
  }
});

test('Ctrl-C while the proxies start: exit 130, nothing of the prefix left', async () => {
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
      // The testbed is up and the backends and proxies are being started inside it.
      if (/testbed: up/.test(out)) resolve();
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
