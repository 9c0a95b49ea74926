/**
 * `mptun client --config FILE` (JSON or YAML, the server's loader: keys are the long flag names,
 * flags given on the command line win) and `--pcap FILE`; every bad value exits 2 with a message
 * naming the fix, before anything starts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { main } from '../src/proxy/cli.js';
import { CLIENT_CONFIG_SCHEMA, resolveClientFlags, validateClientFlags } from '../src/proxy/client/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mptun-client-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

function error(r: ReturnType<typeof validateClientFlags>): string {
  assert.ok('error' in r, `expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

/** `main(['client', ...args])` in this process (argv that fails validation only: no handler runs). */
async function inProcess(args: readonly string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { status: await main(['client', ...args]), stderr };
  } finally {
    process.stderr.write = write;
  }
}

const YAML = `# a client with two paths
tun: ptun0
intercept:
  - 10.100.0.100/32
  - 10.20.0.0/16
path: [eth0, wwan0=10.2.0.1]
drain-timeout: 3
connect-timeout: 4
pcap: /tmp/client.pcap
checksum: true
`;

test('a YAML file gives the whole config', () => {
  const r = resolveClientFlags({ config: file('client.yaml', YAML) });
  assert.ok('config' in r, JSON.stringify(r));
  const c = r.config;
  assert.equal(c.tun, 'ptun0');
  assert.deepEqual(
    c.intercept.map((i) => `${i.address}/${i.prefix}`),
    ['10.100.0.100/32', '10.20.0.0/16'],
  );
  assert.deepEqual(c.paths, [
    { iface: 'eth0', gateway: undefined, address: '100.64.1.2' },
    { iface: 'wwan0', gateway: '10.2.0.1', address: '100.64.2.2' },
  ]);
  assert.equal(c.drainTimeoutMs, 3000);
  assert.equal(c.connectTimeoutMs, 4000);
  assert.equal(c.pcap, '/tmp/client.pcap');
  assert.equal(c.checksum, true);
  assert.equal(c.hostRoutes, true);
});

test('JSON works the same, and a single value stands for a one-element list', () => {
  const p = file(
    'client.json',
    JSON.stringify({ tun: 'ptun1', intercept: '10.100.0.100/32', addr: ['10.1.0.3'], routes: false }),
  );
  const r = resolveClientFlags({ config: p });
  assert.ok('config' in r, JSON.stringify(r));
  assert.equal(r.config.hostRoutes, false);
  assert.deepEqual(r.config.addresses, ['10.1.0.3']);
  assert.deepEqual(r.config.paths, []);
});

test('flags given on the command line win over the file', () => {
  const r = resolveClientFlags({
    config: file('over.yaml', YAML),
    tun: 'other0',
    'drain-timeout': 7,
    intercept: ['10.30.0.0/24'],
    checksum: false,
  });
  assert.ok('config' in r, JSON.stringify(r));
  assert.equal(r.config.tun, 'other0');
  assert.equal(r.config.drainTimeoutMs, 7000);
  assert.deepEqual(
    r.config.intercept.map((i) => i.address),
    ['10.30.0.0'],
  );
  assert.equal(r.config.checksum, false);
  assert.equal(r.config.connectTimeoutMs, 4000, 'what the flags leave out still comes from the file');
});

test('the schema holds every settable flag (not config itself)', () => {
  for (const k of [
    'tun',
    'intercept',
    'path',
    'addr',
    'routes',
    'tun-addr',
    'tun-addr6',
    'table-base',
    'offload',
    'checksum',
    'connect-timeout',
    'drain-timeout',
    'server',
    'psk-file',
    'pcap',
    'scheduler',
    'congestion',
    'backup',
  ])
    assert.ok(k in CLIENT_CONFIG_SCHEMA, k);
  assert.ok(!('config' in CLIENT_CONFIG_SCHEMA));
});

test('problems in the file name the fix', () => {
  assert.match(
    error(resolveClientFlags({ config: join(dir, 'missing.yaml') })),
    /--config .*missing\.yaml: cannot read it \(ENOENT\); give the path of a JSON or YAML file/,
  );
  assert.match(
    error(resolveClientFlags({ config: file('bad.json', '{"tun": ') })),
    /--config .*bad\.json: not valid JSON/,
  );
  assert.match(
    error(resolveClientFlags({ config: file('list.yaml', '- tun\n- ptun0\n') })),
    /the file must be one mapping of flag names to values/,
  );
  assert.match(
    error(resolveClientFlags({ config: file('typo.yaml', 'tun: ptun0\ndrain_timeout: 3\n') })),
    /unknown key 'drain_timeout' \(did you mean 'drain-timeout'\?\)/,
  );
  assert.match(
    error(resolveClientFlags({ config: file('type.yaml', 'tun: ptun0\nroutes: maybe\n') })),
    /'routes' must be a boolean, e.g. routes: true or false/,
  );
  // A value of the right type that is wrong is caught by the same checks as the flag.
  assert.match(
    error(
      resolveClientFlags({ config: file('cidr.yaml', 'tun: ptun0\nintercept: 10.0.0.1/24\npath: eth0\n') }),
    ),
    /--intercept '10\.0\.0\.1\/24': host bits set; did you mean --intercept 10\.0\.0\.0\/24\?/,
  );
});

test('--scheduler, --congestion, --backup: checked, named choices; a backup path gives its stack addresses', () => {
  const base = { tun: 'ptun0', intercept: ['10.100.0.100/32'], path: ['eth0', 'wwan0'] };
  const ok = validateClientFlags({ ...base, scheduler: 'redundant', congestion: 'cubic', backup: ['wwan0'] });
  assert.ok('config' in ok, JSON.stringify(ok));
  assert.equal(ok.config.scheduler, 'redundant');
  assert.equal(ok.config.congestion, 'cubic');
  assert.deepEqual(ok.config.backupAddresses, ['100.64.2.2']);
  const plain = validateClientFlags(base);
  assert.ok('config' in plain);
  assert.equal(plain.config.scheduler, undefined, 'the engine default (lowest-rtt) applies');
  assert.deepEqual(plain.config.backupAddresses, []);
  assert.match(
    error(validateClientFlags({ ...base, scheduler: 'fastest' })),
    /--scheduler 'fastest': use one of lowest-rtt, round-robin, redundant/,
  );
  assert.match(
    error(validateClientFlags({ ...base, congestion: 'bbr' })),
    /--congestion 'bbr': use one of lia, olia, balia, cubic, newreno/,
  );
  assert.match(
    error(validateClientFlags({ ...base, backup: ['wlan0'] })),
    /--backup wlan0: name one of the --path interfaces \(eth0, wwan0\)/,
  );
  assert.match(
    error(validateClientFlags({ ...base, backup: ['eth0', 'wwan0'] })),
    /--backup names every path; leave at least one regular path/,
  );
  const wired = {
    tun: 'ptun0',
    intercept: ['10.100.0.100/32'],
    addr: ['10.1.0.3', '10.2.0.3'],
    routes: false,
  };
  const byAddr = validateClientFlags({ ...wired, backup: ['10.2.0.3'] });
  assert.ok('config' in byAddr);
  assert.deepEqual(byAddr.config.backupAddresses, ['10.2.0.3']);
  assert.match(
    error(validateClientFlags({ ...wired, backup: ['10.9.0.3'] })),
    /--backup 10\.9\.0\.3: give one of the --addr addresses \(10\.1\.0\.3, 10\.2\.0\.3\)/,
  );
});

test('--pcap: an empty path is refused', () => {
  assert.match(
    error(validateClientFlags({ tun: 'ptun0', intercept: ['10.1.0.0/16'], path: ['eth0'], pcap: ' ' })),
    /--pcap FILE: give the path of the capture file to write/,
  );
});

for (const [name, text, message] of [
  [
    'drain.yaml',
    'tun: ptun0\nintercept: 10.100.0.100/32\npath: eth0\ndrain-timeout: -1\n',
    /--drain-timeout must be 0-3600/,
  ],
  ['key.yaml', 'tun: ptun0\ninterceptt: 10.100.0.100/32\n', /unknown key 'interceptt'/],
  ['paths.yaml', 'tun: ptun0\nintercept: 10.100.0.100/32\n', /--path IFACE\[=GATEWAY\] is required/],
] as const) {
  test(`exit 2 for a bad config file (${name}), naming the fix`, async () => {
    const r = await inProcess(['--config', file(name, text)]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /Run 'mptun client --help' for usage/);
  });
}

test('exit 2 when a flag on top of a good file is bad', async () => {
  const r = await inProcess(['--config', file('good.yaml', YAML), '--table-base', '252']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--table-base must be/);
});
