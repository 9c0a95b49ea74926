import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { test } from 'node:test';
import { waitForChild } from './support/child.js';

function netnsList(): string {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
}

test('mptun selfcheck round-trips ping and UDP through a TUN and cleans up', async () => {
  const child = spawn(process.execPath, ['bin/mptun.js', 'selfcheck', '--count', '3'], { stdio: 'pipe' });
  const r = await waitForChild(child, 60_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    /ICMP echo \(kernel ping\): +3 sent, 3 received, rtt min\/avg\/max [\d.]+\/[\d.]+\/[\d.]+ ms/,
  );
  assert.match(r.stdout, /UDP echo \(kernel socket\): +3 sent, 3 received, 3 intact, rtt/);
  assert.match(r.stdout, /selfcheck passed/);
  assert.doesNotMatch(netnsList(), new RegExp(`mptun-selfcheck-${child.pid}-`));
});

test('mptun selfcheck cleans up when interrupted', async () => {
  const child = spawn(process.execPath, ['bin/mptun.js', 'selfcheck', '--count', '100'], { stdio: 'pipe' });
  const result = waitForChild(child, 60_000);
  // Interrupt once the namespace and TUN exist (the JSON log line says so).
  let ns = '';
  let buffered = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    const m = /"netns":"(mptun-selfcheck-[^"]+)"/.exec(buffered);
    if (m && ns === '') {
      ns = m[1]!;
      child.kill('SIGINT');
    }
  });
  const r = await result;
  assert.notEqual(ns, '', r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT, cleaning up/);
  assert.doesNotMatch(netnsList(), new RegExp(ns));
});

test('mptun selfcheck without privileges says what it needs', async () => {
  const child = spawn(
    'setpriv',
    ['--inh-caps=-all', '--bounding-set=-all', process.execPath, 'bin/mptun.js', 'selfcheck'],
    {
      stdio: 'pipe',
    },
  );
  const r = await waitForChild(child, 60_000);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /run it as root .*\(MPTUN_ERR_PERMISSION\)/);
});
