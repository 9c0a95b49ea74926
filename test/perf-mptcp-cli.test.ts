/**
 * `mptun perf --mptcp` flags: documented in --help, and combinations that cannot work rejected
 * before anything starts (exit 2, a message naming the fix); `--announce` parsing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { announceText, checkAnnounce, parseAnnounce } from '../src/proxy/perf/mptcp-options.js';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', 'perf', ...args], { encoding: 'utf8' });
}

const USER = ['--stack', 'user', '--tun', 'mptcpcli0', '--addr', '10.0.0.1', '--addr', '10.0.0.2'];

test('--help documents --mptcp, --checksum, and on the server --announce and --no-c-flag', () => {
  const server = mptun('server', '--help');
  assert.equal(server.status, 0);
  for (const flag of ['--mptcp', '--checksum', '--announce', '--c-flag'])
    assert.match(server.stdout, new RegExp(flag));
  assert.match(server.stdout, /--no-c-flag/);
  const client = mptun('client', '--help');
  assert.equal(client.status, 0);
  assert.match(client.stdout, /--mptcp/);
  assert.doesNotMatch(client.stdout, /--announce/, 'announcing is the server side');
});

for (const [args, message] of [
  [['server', '--mptcp'], /--mptcp needs --stack user .*mptcpize run/],
  [['client', '10.0.0.9', '--mptcp'], /--mptcp needs --stack user/],
  [['server', ...USER, '--announce', '10.0.0.2'], /--announce goes with --mptcp/],
  [['server', ...USER, '--no-c-flag'], /--no-c-flag goes with --mptcp/],
  [['client', '10.0.0.9', ...USER, '--checksum'], /--checksum goes with --mptcp/],
  [
    ['server', ...USER, '--mptcp', '--announce', '10.0.0.7'],
    /10\.0\.0\.7 is not one of the stack's addresses; add --addr 10\.0\.0\.7/,
  ],
  [['server', ...USER, '--mptcp', '--announce', '10.0.0.2:0'], /the port must be 1-65535/],
  [
    ['server', ...USER, '--mptcp', '--announce', 'unique'],
    /not an address; use IP, IPv4:PORT, IPv6 or \[IPv6\]:PORT/,
  ],
  [
    ['client', '10.0.0.9', ...USER, '--mptcp', '-B', '10.0.0.5'],
    /--bind 10\.0\.0\.5 must be one of the --addr addresses/,
  ],
  [['client', '10.0.0.9', ...USER, '--mptcp', '--announce', '10.0.0.2'], /Unknown argument: announce/],
] as const) {
  test(`perf ${args.join(' ')}: exit 2`, () => {
    const r = mptun(...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /--help' for usage/);
  });
}

test('parseAnnounce: IPv4, IPv4:PORT, IPv6, [IPv6]:PORT; announceText writes them back', () => {
  assert.deepEqual(parseAnnounce('10.98.0.1'), { address: '10.98.0.1' });
  assert.deepEqual(parseAnnounce('10.98.0.1:5201'), { address: '10.98.0.1', port: 5201 });
  assert.deepEqual(parseAnnounce('fd98::1'), { address: 'fd98::1' });
  assert.deepEqual(parseAnnounce('[fd98::1]:80'), { address: 'fd98::1', port: 80 });
  assert.deepEqual(parseAnnounce('[fd98::1]'), { address: 'fd98::1' });
  for (const bad of [
    '',
    ':80',
    '10.98.0.1:',
    '10.98.0.1:65536',
    '[10.98.0.1]:80',
    'fd98::1:x',
    '[fd98::1]:-1',
  ]) {
    assert.ok('error' in parseAnnounce(bad), bad);
  }
  for (const text of ['10.98.0.1', '10.98.0.1:5201', 'fd98::1', '[fd98::1]:80']) {
    const a = parseAnnounce(text);
    assert.ok(!('error' in a));
    assert.equal(announceText(a), text);
  }
});

test('checkAnnounce compares addresses, not spellings, and ignores --addr prefixes', () => {
  assert.equal(checkAnnounce(['fd98:0::1'], ['fd98::1/64']), undefined);
  assert.equal(checkAnnounce(['10.98.0.1:7000'], ['10.99.0.1', '10.98.0.1/24']), undefined);
  assert.match(checkAnnounce(['10.98.0.2'], ['10.98.0.1/24']) ?? '', /not one of the stack's addresses/);
});
