/**
 * `mptun server` flags: documented in --help, and every mistake rejected before anything
 * starts, exit 2 with a message that names the fix. The processes run a few at a time (each
 * takes seconds to start on a loaded machine; one after the other they took minutes).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { main } from '../src/proxy/cli.js';
import { parseBackend, validateServerFlags } from '../src/proxy/server/config.js';

interface Exit {
  status: number | null;
  stdout: string;
  stderr: string;
}

let running = 0;
const queue: (() => void)[] = [];
/** `mptun server ARGS`, at most 4 at once. */
async function mptun(...args: string[]): Promise<Exit> {
  if (running >= 4) await new Promise<void>((resolve) => queue.push(resolve));
  running++;
  try {
    return await new Promise<Exit>((resolve) => {
      execFile(
        process.execPath,
        ['bin/mptun.js', 'server', ...args],
        { encoding: 'utf8' },
        (err, stdout, stderr) =>
          resolve({
            status: err === null ? 0 : typeof err.code === 'number' ? err.code : null,
            stdout,
            stderr,
          }),
      );
    });
  } finally {
    running--;
    queue.shift()?.();
  }
}

const BASE = ['--tun', 'ptun0', '--vip', '10.100.0.100', '--unique', '10.100.1.1'];

/** `main(['server', ...args])` here, with what it writes to stderr (only for failing argv: no handler runs). */
async function inProcess(args: readonly string[]): Promise<Exit> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const status = await main(['server', ...args]);
    return { status, stdout: '', stderr };
  } finally {
    process.stderr.write = write;
  }
}

const help = mptun('--help');

test('--help documents every flag, PROXY v2, converter mode and the config file', async () => {
  const r = await help;
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
    '--proxy-protocol',
    '--converter',
    '--allow',
    '--psk-file',
    '--pcap',
    '--config',
  ])
    assert.match(r.stdout, new RegExp(flag));
  assert.match(r.stdout, /--no-routes/);
  assert.match(r.stdout, /PROXY protocol v2 header/);
  assert.match(r.stdout, /no --allow: refuses to start/);
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
  [[...BASE, '--converter', '5124'], /--converter needs at least one --allow CIDR\[:PORTS\].*open relay/],
  [
    [...BASE, '--config', '/nonexistent/mptun.yaml'],
    /--config \/nonexistent\/mptun\.yaml: cannot read it \(ENOENT\)/,
  ],
] as const) {
  // A few as real processes (the exit status); the rest through the same main() in this process.
  const list: readonly string[] = args;
  const spawned = list.includes('--frobnicate') || list.includes('--config') || list[0] === '--vip';
  const run = spawned ? mptun(...args) : undefined;
  test(`mptun server ${args.join(' ')}: exit 2, ${message}`, async () => {
    const r = run === undefined ? await inProcess(args) : await run;
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
    { listen: 5001, backend: { host: '127.0.0.1', port: 5001 }, proxyProtocol: false },
    { listen: 5011, backend: { host: '::1', port: 5011 }, proxyProtocol: false },
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
