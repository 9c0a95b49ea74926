/**
 * `mptun testbed`: flags in --help, bad flags exit 2 naming the fix, the plan and its commands
 * (pure), and that an `up` which fails halfway, is refused, or is interrupted by Ctrl-C leaves
 * nothing behind (and never removes what it did not make).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { HostCommandError } from '../src/errors.js';
import { runCommand, testbedUp, upSteps, vipRouteCommands } from '../src/proxy/testbed/build.js';
import { parseRate, rateText, testbedPlan } from '../src/proxy/testbed/plan.js';
import { leftovers, mptun, runPrefix, scrub, tempStateDir } from './support/testbed-run.js';

const prefixes: string[] = [];
const dirs: string[] = [];
function fresh(tag: string) {
  const prefix = runPrefix(tag);
  const dir = tempStateDir();
  prefixes.push(prefix);
  dirs.push(dir);
  return { prefix, dir };
}
after(async () => {
  for (const [i, p] of prefixes.entries()) await scrub(p, dirs[i]);
});

test('--help lists every flag of up, down, anycast and show', () => {
  const up = mptun('testbed', 'up', '--help');
  assert.equal(up.status, 0);
  for (const flag of ['--prefix', '--state-dir', '--rate1', '--rate2', '--hash-seed', '--lo-addrs', '--json'])
    assert.match(up.stdout, new RegExp(flag));
  assert.match(up.stdout, /--no-lo-addrs/);
  for (const sub of ['down', 'show']) {
    const r = mptun('testbed', sub, '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--prefix/);
    assert.match(r.stdout, /--state-dir/);
  }
  const anycast = mptun('testbed', 'anycast', '--help');
  assert.match(anycast.stdout, /"s1", "s2", "ecmp"/);
  const top = mptun('testbed', '--help');
  for (const sub of ['up', 'down', 'anycast', 'show']) assert.match(top.stdout, new RegExp(`testbed ${sub}`));
});

for (const [args, message] of [
  [['up', '--rate1', '50'], /--rate1: '50' is not a rate; write it as tc does, e\.g\. 50mbit/],
  [['up', '--rate2', '10tbit'], /--rate2: '10tbit' is not a rate/],
  [['up', '--rate1', '1kbit'], /out of range \(64kbit-100gbit\)/],
  [['up', '--hash-seed', '-1'], /--hash-seed must be an integer 0-4294967295/],
  [['up', '--prefix', 'a/b'], /--prefix 'a\/b' must start with a letter or digit/],
  [['up', '--prefix', 'x'.repeat(41)], /--prefix must be at most 40 characters/],
  [['up', '--rate'], /Unknown argument/],
  [['anycast', 's3'], /Choices: "s1", "s2", "ecmp"/],
  [['anycast'], /Not enough non-option arguments/],
  [[], /Name a testbed subcommand: 'up', 'down'/],
] as const) {
  test(`testbed ${args.join(' ')}: exit 2`, () => {
    const r = mptun('testbed', ...args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /--help' for usage/);
  });
}

test('down, anycast and show without a recorded testbed exit 1 naming the fix', () => {
  const { prefix, dir } = fresh('none');
  for (const args of [['down'], ['anycast', 's1'], ['show']]) {
    const r = mptun('testbed', ...args, '--prefix', prefix, '--state-dir', dir);
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`no testbed '${prefix}' is recorded .*mptun testbed up --prefix ${prefix}`),
    );
  }
});

test('parseRate and rateText', () => {
  assert.equal(parseRate('50mbit'), 50e6);
  assert.equal(parseRate('1gbit'), 1e9);
  assert.equal(parseRate('1.5Mbit'), 1.5e6);
  assert.equal(parseRate('800kbit'), 800e3);
  for (const bad of ['', '50', 'mbit', '50 mbit', '50mbps', '-1mbit', '200gbit']) {
    assert.ok(typeof parseRate(bad) !== 'number', bad);
  }
  assert.equal(rateText(50e6), '50mbit');
  assert.equal(rateText(1e9), '1gbit');
  assert.equal(rateText(1.5e6), '1500kbit');
});

test('the plan: namespaces by prefix, the VIP ECMP route and the anycast routes, lo addresses optional', () => {
  const plan = testbedPlan({ prefix: 'pfx', rate1: 50e6 });
  assert.deepEqual(Object.values(plan.namespaces), ['pfx-cli', 'pfx-lb', 'pfx-s1', 'pfx-s2', 'pfx-app']);
  const steps = upSteps(plan).map((s) => s.argv.join(' '));
  assert.ok(
    steps.includes(
      'ip -n pfx-lb route add 10.99.0.1/32 nexthop via 10.61.1.2 dev s1 nexthop via 10.61.2.2 dev s2',
    ),
  );
  assert.ok(
    steps.some((s) =>
      s.includes('net.ipv4.fib_multipath_hash_policy=3 net.ipv4.fib_multipath_hash_fields=0x37'),
    ),
  );
  assert.ok(steps.includes('ip -n pfx-s1 addr add 10.99.0.1/32 dev lo'));
  assert.equal(steps.filter((s) => s.startsWith('tc ')).length, 2, 'tbf on both ends of path 1 only');
  // Namespaces come first, and nothing is made outside them.
  assert.deepEqual(
    upSteps(plan)
      .filter((s) => s.creates !== undefined)
      .map((s) => s.creates),
    Object.values(plan.namespaces),
  );
  for (const s of steps)
    assert.match(
      s,
      /^(ip netns add pfx-|ip -n pfx-|ip netns exec pfx-|ip link add .* netns pfx-|tc -n pfx-)/,
    );
  assert.deepEqual(
    vipRouteCommands(plan, 's2', 'replace').map((c) => c.join(' ')),
    [
      'ip -n pfx-lb route replace 10.99.0.1/32 via 10.61.2.2 dev s2',
      'ip -n pfx-lb -6 route replace fd99::1/128 via fd61:2::2 dev s2',
    ],
  );
  const bare = upSteps(testbedPlan({ prefix: 'pfx', loAddrs: false })).map((s) => s.argv.join(' '));
  assert.ok(!bare.some((s) => s.includes('dev lo')), 'VIP and unique addresses left unbound');
});

test('an up that fails halfway removes the namespaces it made and reports the failing command', async () => {
  const { prefix } = fresh('half');
  const plan = testbedPlan({ prefix, rate2: 20e6 });
  let made = 0;
  const failing = async (argv: readonly string[]) => {
    // The second server's link to app: four namespaces exist by then, with links and routes.
    if (argv.join(' ').includes(`peer name s2 netns ${prefix}-app`)) {
      made = (await leftovers(prefix)).length;
      throw new HostCommandError(`'${argv.join(' ')}' failed: injected`);
    }
    return runCommand(argv);
  };
  await assert.rejects(testbedUp(plan, { run: failing }), /peer name s2 .* failed: injected/);
  assert.equal(made, 5);
  assert.deepEqual(await leftovers(prefix), []);
});

test('an up refused because a namespace of its prefix exists touches nothing (not even that namespace)', async () => {
  const { prefix, dir } = fresh('busy');
  execFileSync('ip', ['netns', 'add', `${prefix}-app`]);
  const r = mptun('testbed', 'up', '--prefix', prefix, '--state-dir', dir);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`namespace ${prefix}-app already exists: prefix '${prefix}' is in use`));
  assert.match(r.stderr, /MPTUN_ERR_INVALID_ARG/);
  assert.deepEqual(await leftovers(prefix), [`${prefix}-app`]);
});

test('Ctrl-C during up removes what was built and exits 130', async () => {
  const { prefix, dir } = fresh('int');
  const child = spawn(
    process.execPath,
    ['bin/mptun.js', 'testbed', 'up', '--prefix', prefix, '--state-dir', dir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  const exited = once(child, 'exit');
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // The third namespace is being made: the next steps are still to come.
      if (stderr.includes(`"ns":"${prefix}-s1"`)) resolve();
    });
  });
  child.kill('SIGINT');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT, removing what was built/);
  assert.match(stderr, /interrupted; nothing of .* is left/);
  assert.deepEqual(await leftovers(prefix), []);
  const show = mptun('testbed', 'show', '--prefix', prefix, '--state-dir', dir);
  assert.equal(show.status, 1, 'no state recorded');
});
