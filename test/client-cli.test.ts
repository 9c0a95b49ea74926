/**
 * `mptun client` flags: documented in --help, and every mistake
 * rejected before anything starts (no TUN, no route), exit 2 with a message that names the fix.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { main } from '../src/proxy/cli.js';
import { cidrContains, parseCidr, validateClientFlags } from '../src/proxy/client/config.js';

function mptun(...args: string[]) {
  return spawnSync(process.execPath, ['bin/mptun.js', 'client', ...args], { encoding: 'utf8' });
}

/**
 * `main(['client', ...args])` in this process, with what it wrote to stderr: only for argv that
 * fails validation, so no handler runs (a process per case costs seconds on a loaded machine).
 */
async function inProcess(args: readonly string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const status = await main(['client', ...args]);
    return { status, stderr };
  } finally {
    process.stderr.write = write;
  }
}

const BASE = ['--tun', 'ptun0', '--intercept', '10.100.0.100/32'];

test('--help documents every flag and documents converter mode', () => {
  const r = mptun('--help');
  assert.equal(r.status, 0);
  for (const flag of [
    '--tun',
    '--intercept',
    '--path',
    '--addr',
    '--no-routes',
    '--tun-addr',
    '--table-base',
    '--offload',
    '--checksum',
    '--connect-timeout',
    '--drain-timeout',
    '--server',
  ])
    assert.match(r.stdout, new RegExp(flag));
  assert.match(r.stdout, /Converter mode \(--server IP:PORT, RFC 8803\)/);
});

for (const [args, message] of [
  [['--intercept', '10.0.0.1/32', '--path', 'eth0'], /--tun NAME is required/],
  [['--tun', 'a/b', ...BASE.slice(2), '--path', 'eth0'], /--tun 'a\/b': an interface name/],
  [['--tun', 'ptun0', '--path', 'eth0'], /--intercept CIDR is required/],
  [['--tun', 'ptun0', '--intercept', '10.0.0.1/33', '--path', 'eth0'], /prefix length must be 0-32/],
  [
    ['--tun', 'ptun0', '--intercept', '10.0.0.1/24', '--path', 'eth0'],
    /host bits set; did you mean --intercept 10\.0\.0\.0\/24\?/,
  ],
  [['--tun', 'ptun0', '--intercept', 'example.com', '--path', 'eth0'], /not an IP prefix; use IP\/PREFIX/],
  [
    ['--tun', 'ptun0', '--intercept', 'fd00::/64', '--no-routes', '--addr', '10.1.0.3'],
    /--intercept fd00::\/64: no IPv6 stack address to carry it from; add an IPv6 --addr/,
  ],
  [BASE, /--path IFACE\[=GATEWAY\] is required/],
  [[...BASE, '--addr', '10.1.0.3'], /--addr without --path/],
  [[...BASE, '--no-routes'], /--no-routes needs --addr IP/],
  [[...BASE, '--no-routes', '--path', 'eth0', '--addr', '10.1.0.3'], /--path eth0 with --no-routes/],
  [[...BASE, '--path', 'eth0', '--path', 'eth0'], /--path eth0 is given twice/],
  [[...BASE, '--path', 'eth0=gw'], /the gateway 'gw' is not an IPv4 address/],
  [[...BASE, '--path', 'ptun0'], /--path ptun0 is the --tun/],
  [[...BASE, '--path', 'eth0', '--path', 'wwan0', '--addr', '10.1.0.3'], /1 --addr for 2 --path/],
  [[...BASE, '--no-routes', '--addr', '10.1.0.300'], /--addr '10\.1\.0\.300': not an IPv4 address/],
  [[...BASE, '--no-routes', '--addr', '10.100.0.100'], /address 10\.100\.0\.100 lies inside --intercept/],
  [
    [...BASE, '--path', 'eth0', '--tun-addr', '100.64.1.2'],
    /--tun-addr 100\.64\.1\.2 is also a stack address/,
  ],
  [[...BASE, '--path', 'eth0', '--table-base', '252'], /--table-base must be/],
  [[...BASE, '--path', 'eth0', '--connect-timeout', '0'], /--connect-timeout must be/],
  [[...BASE, '--path', 'eth0', '--drain-timeout', '-1'], /--drain-timeout must be 0-3600/],
  [
    [...BASE, '--path', 'eth0', '--server', 'converter.example:5000'],
    /--server 'converter\.example:5000': give the mptun server's converter as IPv4:PORT/,
  ],
  [
    [...BASE, '--path', 'eth0', '--psk-file', '/nonexistent'],
    /--psk-file is for converter mode; add --server IP:PORT/,
  ],
  [[...BASE, '--path', 'eth0', '--bogus'], /Unknown argument: bogus/],
] as const) {
  test(`exit 2: ${args.join(' ')}`, async () => {
    const r = await inProcess(args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /Run 'mptun client --help' for usage/);
  });
}

test('the real binary exits 2 too, naming the fix', () => {
  const r = mptun('--tun', 'ptun0', '--path', 'eth0');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--intercept CIDR is required/);
});

test('the typed config: default path addresses, gateways, tables, timeouts', () => {
  const r = validateClientFlags({
    tun: 'ptun0',
    intercept: ['10.100.0.100/32', '10.20.0.0/16'],
    path: ['eth0', 'wwan0=10.2.0.1'],
  });
  assert.ok('config' in r, JSON.stringify(r));
  assert.deepEqual(r.config.paths, [
    { iface: 'eth0', gateway: undefined, address: '100.64.1.2' },
    { iface: 'wwan0', gateway: '10.2.0.1', address: '100.64.2.2' },
  ]);
  assert.deepEqual(r.config.addresses, ['100.64.1.2', '100.64.2.2']);
  assert.equal(r.config.tunAddress, '100.64.0.1');
  assert.equal(r.config.hostRoutes, true);
  assert.equal(r.config.connectTimeoutMs, 10_000);
  const wired = validateClientFlags({
    tun: 'ptun0',
    intercept: ['10.100.0.100'],
    addr: ['10.1.0.3', '10.2.0.3'],
    routes: false,
  });
  assert.ok('config' in wired);
  assert.deepEqual(wired.config.addresses, ['10.1.0.3', '10.2.0.3']);
  assert.deepEqual(wired.config.paths, []);
  assert.deepEqual(wired.config.intercept, [{ address: '10.100.0.100', prefix: 32, family: 4 }]);
});

test('prefix matching', () => {
  const c = parseCidr('10.20.0.0/16');
  assert.ok(!('error' in c));
  assert.equal(cidrContains(c, '10.20.255.1'), true);
  assert.equal(cidrContains(c, '10.21.0.1'), false);
  assert.equal(cidrContains(c, 'fd00::1'), false);
  const all = parseCidr('0.0.0.0/0');
  assert.ok(!('error' in all));
  assert.equal(cidrContains(all, '192.0.2.1'), true);
  const v6 = parseCidr('fd00:1::/32', '--x');
  assert.ok(!('error' in v6));
  assert.equal(cidrContains(v6, 'fd00:1:ffff::1'), true);
  assert.equal(cidrContains(v6, 'fd00:2::1'), false);
});
