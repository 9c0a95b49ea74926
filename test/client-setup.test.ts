/**
 * `mptun client` setup failures on a real host (a namespace with two veth paths): a failure
 * halfway through the plumbing exits 1 naming the fix and removes what it had made; a gateway
 * that cannot be learnt is reported before anything is made.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type TwoPathLab, twoPathTopology } from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const TUN = 'mpt-cli';
const DST = '10.70.0.1';
let t: TwoPathLab;

function hostState(ns: string): string {
  return [
    lab.exec(ns, 'ip', '-o', 'link', 'show').replace(/\s+link\/.*$/gm, ''),
    lab.exec(ns, 'ip', '-o', 'addr', 'show'),
    lab.exec(ns, 'ip', 'rule', 'show'),
    lab.exec(ns, 'ip', 'route', 'show', 'table', 'all'),
    lab.exec(ns, 'nft', 'list', 'ruleset'),
    lab.exec(ns, 'sysctl', '-n', 'net.ipv4.ip_forward'),
  ].join('\n');
}

before(() => {
  t = twoPathTopology(lab, { tag: 'clif' });
  lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
});

test('a setup that fails halfway (its nftables table exists) exits 1 naming the fix and leaves nothing', async () => {
  lab.exec(t.cli, 'nft', 'add', 'table', 'ip', 'mptun_client_mpt_cli');
  const state = hostState(t.cli);
  const run = startMptun(lab, t.cli, [
    'client',
    '--tun',
    TUN,
    '--intercept',
    `${DST}/32`,
    '--path',
    'p1',
    '--path',
    `p2=${t.paths[1].far.v4}`,
  ]);
  const { code } = await run.done(20_000);
  assert.equal(code, 1, run.stdout() + run.stderr());
  assert.match(
    run.stderr(),
    /nftables table ip mptun_client_mpt_cli exists already.*nft delete table ip mptun_client_mpt_cli/,
  );
  // The TUN, its address, both paths' routes and rules were made before the check: all gone.
  assert.equal(hostState(t.cli), state);
  lab.exec(t.cli, 'nft', 'delete', 'table', 'ip', 'mptun_client_mpt_cli');
});

test('a path whose gateway cannot be learnt exits 1 naming the fix, before making anything', async () => {
  const state = hostState(t.cli);
  const run = startMptun(lab, t.cli, [
    'client',
    '--tun',
    TUN,
    '--intercept',
    `${DST}/32`,
    '--path',
    'p1',
    '--path',
    'p2',
  ]);
  const { code } = await run.done(20_000);
  assert.equal(code, 1, run.stdout() + run.stderr());
  assert.match(run.stderr(), /--path p2: no route via a gateway on p2 .*--path p2=GATEWAY/);
  assert.equal(hostState(t.cli), state);
});

test('an interface that does not exist exits 1 naming it', async () => {
  const run = startMptun(lab, t.cli, ['client', '--tun', TUN, '--intercept', `${DST}/32`, '--path', 'wlan9']);
  const { code } = await run.done(20_000);
  assert.equal(code, 1, run.stdout() + run.stderr());
  assert.match(run.stderr(), /--path wlan9: no such interface here/);
});
