/**
 * `mptun server` flags: documented in --help (with what is not there yet), and every mistake
 * rejected before anything starts, exit 2 with a message that names the fix.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parseBackend, validateServerFlags } from '../src/proxy/server/config.js';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', 'server', ...args], { encoding: 'utf8' });
}

const BASE = ['--tun', 'ptun0', '--vip', '10.100.0.100', '--unique', '10.100.1.1'];

test('--help documents every flag and says PROXY v2 and converter mode are not there yet', () => {
  const r = mptun('--help');
  assert.equal(r.status, 0);
  for (const flag of [
    '--tun',
    '--vip',
    '--unique',
    '--announce',
    '--listen',
    '--backend',
    '--c-flag',
    '--checksum',
    '--routes',
    '--drain-timeout',
    '--backend-timeout',
  ])
    assert.match(r.stdout, new RegExp(flag));
  assert.match(r.stdout, /--no-routes/);
  assert.match(r.stdout, /Not yet: the PROXY protocol v2 header .*converter mode/s);
});

for (const [args, message] of [
  [['--vip', '10.0.0.1', '--listen', '1', '--backend', 'a:1'], /--tun NAME is required/],
  [['--tun', 't0', '--listen', '1', '--backend', 'a:1'], /--vip IP is required/],
  [
    ['--tun', 't0', '--vip', '10.0.0.1/32', '--listen', '1', '--backend', 'a:1'],
    /--vip '10\.0\.0\.1\/32': not an IP address/,
  ],
  [[...BASE, '--unique', 'nope', '--listen', '1', '--backend', 'a:1'], /--unique 'nope': not an IP address/],
  [
    [...BASE, '--backend', '10.20.0.2:5001'],
    /--backend 10\.20\.0\.2:5001 has no --listen: give one --listen PORT per --backend/,
  ],
  [[...BASE, '--listen', '5001'], /--listen 5001 has no --backend/],
  [BASE, /--listen PORT and --backend HOST:PORT are required/],
  [[...BASE, '--listen', '5001', '--backend', 'a:1', '--backend', 'b:2'], /--backend b:2 has no --listen/],
  [[...BASE, '--listen', '0', '--backend', 'a:1'], /--listen '0': the port must be 1-65535/],
  [
    [...BASE, '--listen', '1', '--backend', 'a:1', '--listen', '1', '--backend', 'a:2'],
    /--listen 1 is given twice/,
  ],
  [[...BASE, '--listen', '1', '--backend', '10.20.0.2'], /--backend '10\.20\.0\.2': use HOST:PORT/],
  [[...BASE, '--listen', '1', '--backend', '10.20.0.2:99999'], /the port must be 1-65535/],
  [
    [...BASE, '--announce', '10.100.1.7', '--listen', '1', '--backend', 'a:1'],
    /10\.100\.1\.7 is not one of this server's addresses; add --unique 10\.100\.1\.7/,
  ],
  [
    [...BASE, '--announce', '10.100.0.100', '--listen', '1', '--backend', 'a:1'],
    /announcing the VIP without a port/,
  ],
  [[...BASE, '--unique', '10.100.0.100', '--listen', '1', '--backend', 'a:1'], /is the --vip/],
  [
    [...BASE, '--listen', '1', '--backend', 'a:1', '--drain-timeout', '-1'],
    /--drain-timeout must be 0-3600 seconds/,
  ],
  [[...BASE, '--listen', '1', '--backend', 'a:1', '--frobnicate'], /Unknown argument/],
] as const) {
  test(`mptun server ${args.join(' ')}: exit 2, ${message}`, () => {
    const r = mptun(...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /mptun server --help/);
  });
}

test('the typed config: announce defaults to every unique address, pairs in order, seconds to ms', () => {
  const r = validateServerFlags({
    tun: 'ptun0',
    vip: '10.100.0.100',
    unique: ['10.100.1.1', 'fd00:1::1'],
    listen: [5001, 5011],
    backend: ['127.0.0.1:5001', '[::1]:5011'],
    'drain-timeout': 2.5,
  });
  assert.ok('config' in r, JSON.stringify(r));
  assert.deepEqual(r.config.announce, [{ address: '10.100.1.1' }, { address: 'fd00:1::1' }]);
  assert.deepEqual(r.config.routes, [
    { listen: 5001, backend: { host: '127.0.0.1', port: 5001 } },
    { listen: 5011, backend: { host: '::1', port: 5011 } },
  ]);
  assert.equal(r.config.drainTimeoutMs, 2500);
  assert.equal(r.config.cFlag, true);
  assert.equal(r.config.hostRoutes, true);
  // The VIP with a per-server port (a balancer that routes on the destination port), and none.
  const beamer = validateServerFlags({
    tun: 't',
    vip: '10.100.0.100',
    announce: ['10.100.0.100:6001'],
    listen: [1],
    backend: ['svc.example:80'],
  });
  assert.ok('config' in beamer, JSON.stringify(beamer));
  assert.deepEqual(beamer.config.announce, [{ address: '10.100.0.100', port: 6001 }]);
  const none = validateServerFlags({
    tun: 't',
    vip: '10.0.0.1',
    announce: [],
    listen: [1],
    backend: ['h:1'],
  });
  assert.ok('config' in none);
  assert.deepEqual(none.config.announce, []);
});

test('parseBackend: names, IPv4, bracketed IPv6; the rest refused', () => {
  assert.deepEqual(parseBackend('db.internal:5432'), { host: 'db.internal', port: 5432 });
  assert.deepEqual(parseBackend('[fd00::2]:80'), { host: 'fd00::2', port: 80 });
  for (const bad of ['fd00::2:80', '[10.0.0.1]:80', 'host:', ':80', 'a b:1', 'host:1:2'])
    assert.ok('error' in parseBackend(bad), bad);
});
