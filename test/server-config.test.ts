/**
 * `mptun server` settings beyond the basic flags: converter mode (an allowlist is required, rules
 * checked, a pre-shared key read from a file), PROXY protocol v2 per route, --pcap, and --config
 * files (YAML and JSON) merged under the flags (flags win), every problem a message naming the fix.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadConfigFile, mergeConfig } from '../src/proxy/config-file.js';
import { resolveServerFlags, SERVER_CONFIG_SCHEMA, validateServerFlags } from '../src/proxy/server/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mptun-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const BASE = { tun: 'ptun0', vip: '10.100.0.100', unique: ['10.100.1.1'] };

function error(r: ReturnType<typeof validateServerFlags>): string {
  assert.ok('error' in r, `expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

test('converter mode: --allow required (never an open relay), rules parsed, its own port', () => {
  assert.match(
    error(validateServerFlags({ ...BASE, converter: 5124 })),
    /needs at least one --allow.*open relay/,
  );
  const r = validateServerFlags({ ...BASE, converter: 5124, allow: ['10.20.0.0/24:80,443', '[fd00::/64]'] });
  assert.ok('config' in r, JSON.stringify(r));
  assert.equal(r.config.routes.length, 0, 'converter only: no --listen needed');
  assert.equal(r.config.converter?.port, 5124);
  assert.deepEqual(
    r.config.converter?.allow.map((a) => [a.address, a.prefix, a.ports]),
    [
      [
        '10.20.0.0',
        24,
        [
          [80, 80],
          [443, 443],
        ],
      ],
      ['fd00::', 64, []],
    ],
  );
  assert.equal(r.config.converter?.key, undefined);
  assert.match(
    error(validateServerFlags({ ...BASE, converter: 5124, allow: ['10.0.0.0/40'] })),
    /--allow '10\.0\.0\.0\/40': the prefix length/,
  );
  assert.match(
    error(validateServerFlags({ ...BASE, converter: 0, allow: ['10.0.0.0/8'] })),
    /--converter '0': the port must be 1-65535/,
  );
  assert.match(
    error(
      validateServerFlags({
        ...BASE,
        listen: [5124],
        backend: ['a:1'],
        converter: 5124,
        allow: ['10.0.0.0/8'],
      }),
    ),
    /--converter 5124 is also a --listen port/,
  );
  assert.match(
    error(validateServerFlags({ ...BASE, listen: [1], backend: ['a:1'], allow: ['10.0.0.0/8'] })),
    /--allow 10\.0\.0\.0\/8 is for converter mode; add --converter PORT/,
  );
});

test("--scheduler and --congestion: checked against the engine's choices", () => {
  const flags = { ...BASE, listen: [5001], backend: ['127.0.0.1:5001'] };
  const ok = validateServerFlags({ ...flags, scheduler: 'round-robin', congestion: 'lia' });
  assert.ok('config' in ok, JSON.stringify(ok));
  assert.equal(ok.config.scheduler, 'round-robin');
  assert.equal(ok.config.congestion, 'lia');
  assert.match(
    error(validateServerFlags({ ...flags, scheduler: 'minrtt' })),
    /--scheduler 'minrtt': use one of lowest-rtt, round-robin, redundant/,
  );
  assert.match(
    error(validateServerFlags({ ...flags, congestion: 'reno' })),
    /--congestion 'reno': use one of/,
  );
  assert.ok('scheduler' in SERVER_CONFIG_SCHEMA && 'congestion' in SERVER_CONFIG_SCHEMA);
});

test('--psk-file: read before start, at least 16 bytes', () => {
  const good = file('psk', 'this-is-a-long-enough-key\n');
  const r = validateServerFlags({ ...BASE, converter: 5124, allow: ['10.0.0.0/8'], 'psk-file': good });
  assert.ok('config' in r);
  assert.equal(r.config.converter?.key?.toString(), 'this-is-a-long-enough-key');
  const short = file('short', 'abc');
  assert.match(
    error(validateServerFlags({ ...BASE, converter: 5124, allow: ['10.0.0.0/8'], 'psk-file': short })),
    /the key is 3 bytes; use at least 16 \(e\.g\. openssl rand -hex 32/,
  );
  assert.match(
    error(
      validateServerFlags({ ...BASE, converter: 5124, allow: ['10.0.0.0/8'], 'psk-file': join(dir, 'none') }),
    ),
    /--psk-file .*none: cannot read it \(ENOENT\)/,
  );
});

test('--proxy-protocol marks every route; --pcap kept', () => {
  const r = validateServerFlags({
    ...BASE,
    listen: [1, 2],
    backend: ['a:1', 'b:2'],
    'proxy-protocol': true,
    pcap: '/tmp/x.pcap',
  });
  assert.ok('config' in r);
  assert.deepEqual(
    r.config.routes.map((x) => x.proxyProtocol),
    [true, true],
  );
  assert.equal(r.config.pcap, '/tmp/x.pcap');
  assert.match(
    error(validateServerFlags({ ...BASE, listen: [1], backend: ['a:1'], pcap: ' ' })),
    /--pcap FILE: give the path/,
  );
});

test('--config YAML: the long flag names, lists or single values; flags win', () => {
  const yaml = file(
    'server.yaml',
    [
      'tun: ptun9',
      'vip: 10.100.0.100',
      'unique: 10.100.1.1',
      'listen: [5001, 5002]',
      'backend:',
      '  - 127.0.0.1:7001',
      '  - "[::1]:7002"',
      'drain-timeout: 3',
      'proxy-protocol: true',
      'converter: 5124',
      'allow: [10.20.0.0/24]',
    ].join('\n'),
  );
  const r = resolveServerFlags({ config: yaml });
  assert.ok('config' in r, JSON.stringify(r));
  assert.equal(r.config.tun, 'ptun9');
  assert.deepEqual(r.config.unique, ['10.100.1.1']);
  assert.deepEqual(
    r.config.routes.map((x) => [x.listen, x.backend.port, x.proxyProtocol]),
    [
      [5001, 7001, true],
      [5002, 7002, true],
    ],
  );
  assert.equal(r.config.drainTimeoutMs, 3000);
  assert.equal(r.config.converter?.port, 5124);
  // Flags given on the command line win, lists replace the file's.
  const o = resolveServerFlags({
    config: yaml,
    tun: 'other',
    'drain-timeout': 7,
    listen: [6001],
    backend: ['h:1'],
  });
  assert.ok('config' in o, JSON.stringify(o));
  assert.equal(o.config.tun, 'other');
  assert.equal(o.config.drainTimeoutMs, 7000);
  assert.deepEqual(
    o.config.routes.map((x) => x.listen),
    [6001],
  );
});

test('--config JSON, and what a file may not hold', () => {
  const json = file(
    's.json',
    JSON.stringify({ tun: 't', vip: '10.0.0.1', listen: 1, backend: 'h:1', 'c-flag': false }),
  );
  const r = resolveServerFlags({ config: json });
  assert.ok('config' in r, JSON.stringify(r));
  assert.equal(r.config.cFlag, false);
  for (const [name, text, why] of [
    ['bad.json', '{"tun": ', /not valid JSON/],
    ['bad.yaml', 'tun: [unclosed', /not valid YAML/],
    ['list.yaml', '- tun', /one mapping of flag names to values/],
    [
      'unknown.yaml',
      'drainTimeout: 3',
      /unknown key 'drainTimeout' \(did you mean 'drain-timeout'\?\); the keys are the long flag names/,
    ],
    ['type.yaml', 'listen: [five]', /'listen' must be a list, e\.g\. listen: \[5001, 5002\]/],
    [
      'bool.yaml',
      'proxy-protocol: yes please',
      /'proxy-protocol' must be a boolean, e\.g\. proxy-protocol: true or false/,
    ],
  ] as const) {
    const e = error(resolveServerFlags({ config: file(name, text) }));
    assert.match(e, why, name);
    assert.match(e, new RegExp(`--config .*${name.replace('.', '\\.')}`));
  }
  // A value the file holds is validated like the flag: the message names the flag.
  assert.match(
    error(resolveServerFlags({ config: file('v.yaml', 'tun: t\nvip: nope\nlisten: 1\nbackend: h:1') })),
    /--vip 'nope': not an IP address/,
  );
  assert.deepEqual(resolveServerFlags({ config: file('empty.yaml', '') }), validateServerFlags({}));
});

test('config-file API: load checks kinds, merge keeps flags that are set', () => {
  const p = file('api.yaml', 'tun: a\nlisten: 5');
  const l = loadConfigFile(p, SERVER_CONFIG_SCHEMA);
  assert.deepEqual(l, { values: { tun: 'a', listen: [5] } });
  assert.deepEqual(mergeConfig({ tun: 'a', listen: [5] }, { tun: undefined, listen: [6] }), {
    tun: 'a',
    listen: [6],
  });
});

test('mptun server --config with a bad value: exit 2 before anything starts, naming the key', async () => {
  const { main } = await import('../src/proxy/cli.js');
  const bad = file(
    'bad-value.yaml',
    'tun: t\nvip: 10.0.0.1\nlisten: [5001]\nbackend: [h:1]\ndrain-timeout: -3',
  );
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  let status: number;
  try {
    status = await main(['server', '--config', bad]);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(status, 2, stderr);
  assert.match(stderr, /--drain-timeout must be 0-3600 seconds/);
});
