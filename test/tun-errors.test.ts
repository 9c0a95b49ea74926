import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { InterfaceError } from '../src/errors.js';
import { openTun, validateInterfaceName } from '../src/stack/device/tun-device.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
let ns = '';

before(() => {
  ns = lab.add('tunerr');
});
after(() => lab.cleanup());

/** Runs test/support/open-tun-child.ts under `wrapper` (argv prefix) and returns its verdict. */
function openInChild(wrapper: string[], ...args: string[]): { ok: boolean; name?: string; message?: string } {
  const argv = [...wrapper, process.execPath, '--import', 'tsx', 'test/support/open-tun-child.ts', ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('TUN errors say what is wrong', () => {
  test('bad names are refused before touching the kernel', () => {
    for (const name of ['', 'a/b', 'has space', 'tab\tx', 'a:b', 'sixteen-chars-xx', '..']) {
      assert.throws(() => validateInterfaceName(name), InterfaceError, JSON.stringify(name));
      assert.throws(() => openTun({ name, netns: ns }), /invalid interface name/);
    }
    assert.doesNotThrow(() => validateInterfaceName('fifteen-chars-x'));
  });

  test('a TUN another process holds is busy', async (t) => {
    const first = openTun({ name: 'mpt-busy', netns: ns });
    t.after(() => first.close());
    assert.throws(() => openTun({ name: 'mpt-busy', netns: ns }), {
      name: 'InterfaceError',
      code: 'MPTUN_ERR_INTERFACE',
      message: /TUN 'mpt-busy' in network namespace '.*' is busy/,
    });
  });

  test('an interface that is not a TUN is refused', () => {
    lab.exec(ns, 'ip', 'tuntap', 'add', 'mpt-tap', 'mode', 'tap');
    for (const name of ['lo', 'mpt-tap']) {
      assert.throws(() => openTun({ name, netns: ns }), {
        name: 'InterfaceError',
        message: new RegExp(`interface '${name}' .* is not a TUN`),
      });
    }
  });

  test('--tun NAME attaches to an existing persistent TUN and leaves it in place', async () => {
    lab.exec(ns, 'ip', 'tuntap', 'add', 'mpt-pers', 'mode', 'tun');
    const dev = openTun({ name: 'mpt-pers', netns: ns, offload: true, mtu: 1400 });
    assert.equal(dev.created, false);
    assert.equal(dev.mtu, 1400);
    await dev.close();
    assert.match(lab.exec(ns, 'ip', 'link', 'show', 'mpt-pers'), /mtu 1400/);
    // A fresh name is created, and goes away on close.
    const fresh = openTun({ name: 'mpt-fresh', netns: ns });
    assert.equal(fresh.created, true);
    assert.match(lab.exec(ns, 'ip', '-o', 'link', 'show', 'mpt-fresh'), /UP/);
    await fresh.close();
    assert.doesNotMatch(lab.exec(ns, 'ip', '-o', 'link', 'show'), /mpt-fresh/);
  });

  test('an unknown network namespace is refused', () => {
    assert.throws(() => openTun({ name: 'mpt-x', netns: `${lab.prefix}-missing` }), {
      name: 'InvalidArgumentError',
      message: /network namespace .* cannot be entered \(ENOENT\)/,
    });
  });

  test('without CAP_NET_ADMIN: PermissionError', () => {
    const r = openInChild(['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin'], 'mpt-nocap');
    assert.equal(r.ok, false);
    assert.equal(r.name, 'PermissionError');
    assert.match(r.message ?? '', /CAP_NET_ADMIN/);
  });

  test('without /dev/net/tun: TunUnavailableError', () => {
    // A private mount namespace where /dev/net is an empty tmpfs.
    const r = openInChild([
      'unshare',
      '--mount',
      'sh',
      '-c',
      'mount -t tmpfs none /dev/net && exec "$@"',
      'sh',
    ]);
    assert.equal(r.ok, false);
    assert.equal(r.name, 'TunUnavailableError');
    assert.match(r.message ?? '', /\/dev\/net\/tun is not usable \(ENOENT\).*modprobe tun/);
  });
});
