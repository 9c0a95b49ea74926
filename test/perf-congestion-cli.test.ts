/**
 * `mptun perf --congestion NAME`: documented in --help (both ends), validated before anything
 * starts (exit 2, a message naming the choices), and goes with --mptcp only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { checkCongestionFlag } from '../src/proxy/perf/mptcp-options.js';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', 'perf', ...args], { encoding: 'utf8' });
}

const USER = ['--stack', 'user', '--tun', 'conglcli0', '--addr', '10.0.0.1', '--addr', '10.0.0.2/24'];

test('--help documents --congestion and its names on client and server', () => {
  for (const side of [['server'], ['client', '10.0.0.9']]) {
    const r = mptun(...side, '--help');
    assert.equal(r.status, 0, r.stderr);
    const text = r.stdout.replace(/\s+/g, ' ');
    assert.match(text, /--congestion .*'lia' \(RFC 6356\), 'olia' or 'balia' \(coupled/);
    assert.match(text, /'cubic' \/ 'newreno' \(uncoupled, per subflow\)/);
  }
});

for (const [args, message] of [
  [['client', '10.0.0.9', ...USER, '--congestion', 'lia'], /--congestion goes with --mptcp/],
  [
    ['client', '10.0.0.9', ...USER, '--mptcp', '--congestion', 'bbr'],
    /--congestion 'bbr': use one of lia, olia, balia, cubic, newreno/,
  ],
  [['server', ...USER, '--mptcp', '--congestion', 'LIA'], /--congestion 'LIA': use one of lia, olia, balia/],
] as const) {
  test(`perf ${args.join(' ')}: exit 2`, () => {
    const r = mptun(...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  });
}

test('checkCongestionFlag: every name passes with --mptcp', () => {
  for (const name of ['lia', 'olia', 'balia', 'cubic', 'newreno'])
    assert.equal(checkCongestionFlag(name, true), undefined);
  assert.equal(checkCongestionFlag(undefined, false), undefined);
  assert.match(checkCongestionFlag('reno', true) ?? '', /use one of/);
});
