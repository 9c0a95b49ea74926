/**
 * `mptun testbed up|anycast|down` against the kernel: one testbed with path 1 shaped at 50 Mbit/s
 * and path 2 at 30 Mbit/s; every address pings across; plain TCP connections to the VIP spread
 * over s1 and s2 and one five-tuple always reaches the same server (two listeners tag their
 * replies); the anycast flip moves new connections, ecmp restores the same spread; a second up of
 * the same prefix fails and leaves the first alone; down leaves no namespace behind.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import type { TestbedState } from '../src/proxy/testbed/state.js';
import { leftovers, mptun, runPrefix, scrub, tempStateDir } from './support/testbed-run.js';

const prefix = runPrefix('tb');
const stateDir = tempStateDir();
const listeners: ChildProcess[] = [];
let state: TestbedState;
const PORT = 7000;

function inNs(ns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: 'pipe' });
}

before(() => {
  const up = mptun(
    'testbed',
    'up',
    '--prefix',
    prefix,
    '--state-dir',
    stateDir,
    '--rate1',
    '50mbit',
    '--rate2',
    '30mbit',
    '--json',
  );
  assert.equal(up.status, 0, up.stderr);
  state = JSON.parse(up.stdout) as TestbedState;
});

after(async () => {
  for (const l of listeners) {
    if (l.exitCode === null && l.signalCode === null) {
      const exited = once(l, 'exit');
      l.kill('SIGTERM');
      await exited;
    }
  }
  mptun('testbed', 'down', '--prefix', prefix, '--state-dir', stateDir);
  await scrub(prefix, stateDir);
});

test('up prints the namespaces, the VIP, the unique addresses and records them', () => {
  const p = state.plan;
  assert.deepEqual(
    Object.values(p.namespaces),
    ['cli', 'lb', 's1', 's2', 'app'].map((h) => `${prefix}-${h}`),
  );
  assert.deepEqual(p.vip, { v4: '10.99.0.1', v6: 'fd99::1' });
  assert.deepEqual(
    p.servers.map((s) => s.unique.v4),
    ['10.98.0.1', '10.98.0.2'],
  );
  assert.equal(state.vipRoute, 'ecmp');
  const show = mptun('testbed', 'show', '--prefix', prefix, '--state-dir', stateDir);
  assert.equal(show.status, 0, show.stderr);
  for (const text of [`${prefix}-lb`, '10.99.0.1', 'fd98::2', 'tbf 50mbit', 'tbf 30mbit', 'ECMP'])
    assert.ok(show.stdout.includes(text), `${text} in:\n${show.stdout}`);
});

test('every address pings across, each path from its own source', async () => {
  const p = state.plan;
  const ns = p.namespaces;
  const pings: [string, string, string | undefined][] = [];
  for (const fam of ['v4', 'v6'] as const) {
    for (const path of p.paths) {
      pings.push([ns.cli, path.lb[fam], undefined]);
      for (const dst of [p.vip[fam], ...p.servers.flatMap((s) => [s.unique[fam], s.uplink[fam]])])
        pings.push([ns.cli, dst, path.cli[fam]]);
    }
    for (const s of p.servers) {
      pings.push([ns[s.name], p.app[fam], undefined]);
      pings.push([ns.app, s.appLink[fam], undefined]);
      pings.push([ns[s.name], p.paths[1].cli[fam], undefined]);
    }
  }
  const results = await Promise.all(
    pings.map(
      ([from, dst, src]) =>
        new Promise<string>((resolve) => {
          const args = ['netns', 'exec', from, 'ping', '-c1', '-W3', ...(src ? ['-I', src] : []), dst];
          const child = spawn('ip', args, { stdio: 'ignore' });
          child.on('exit', (code) =>
            resolve(code === 0 ? '' : `${from} -> ${dst} (from ${src ?? 'any'}) failed`),
          );
        }),
    ),
  );
  assert.deepEqual(
    results.filter((r) => r !== ''),
    [],
  );
  // Path 2's source address left on p2: its counters moved.
  const rx = JSON.parse(inNs(ns.lb, 'ip', '-j', '-s', 'link', 'show', 'p2')) as {
    stats64: { rx: { packets: number } };
  }[];
  assert.ok((rx[0]?.stats64.rx.packets ?? 0) >= 10);
});

test('tbf rates are applied on both ends of each path', () => {
  const ns = state.plan.namespaces;
  for (const [path, rate] of [
    ['p1', 50e6 / 8],
    ['p2', 30e6 / 8],
  ] as const) {
    for (const host of [ns.cli, ns.lb]) {
      const q = JSON.parse(
        execFileSync('tc', ['-n', host, '-j', 'qdisc', 'show', 'dev', path], { encoding: 'utf8' }),
      ) as {
        kind: string;
        options: { rate: number };
      }[];
      assert.equal(q[0]?.kind, 'tbf', `${host} ${path}`);
      assert.equal(q[0]?.options.rate, rate, `${host} ${path}`);
    }
  }
});

const LISTENER = `
import socket, sys
tag = sys.argv[1]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
s.listen(128)
print('listening', flush=True)
while True:
    c, _ = s.accept()
    c.sendall(tag.encode())
    c.close()
`;

/** From cli: `reps` connections from each source port to the VIP; the tags seen, by port. */
const CLIENT = `
import socket, struct, sys, json
src, dst, port, first, count, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
seen = {}
for sport in range(first, first + count):
    for _ in range(reps):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind((src, sport))
        c.settimeout(5)
        c.connect((dst, port))
        data = b''
        while True:
            b = c.recv(64)
            if not b:
                break
            data += b
        # RST on close: the four-tuple is free at once for the next connection.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
        seen.setdefault(sport, []).append(data.decode())
print(json.dumps(seen))
`;

function connections(src: string, first: number, count: number, reps: number): Record<string, string[]> {
  const out = inNs(
    state.plan.namespaces.cli,
    'python3',
    '-c',
    CLIENT,
    src,
    state.plan.vip.v4,
    String(PORT),
    String(first),
    String(count),
    String(reps),
  );
  return JSON.parse(out) as Record<string, string[]>;
}

function flip(site: string) {
  const r = mptun('testbed', 'anycast', site, '--prefix', prefix, '--state-dir', stateDir);
  assert.equal(r.status, 0, r.stderr);
}

test('TCP to the VIP spreads over s1 and s2, a five-tuple sticks to its server, anycast moves new connections', async () => {
  const p = state.plan;
  for (const s of p.servers) {
    const l = spawn(
      'ip',
      ['netns', 'exec', p.namespaces[s.name], 'python3', '-c', LISTENER, s.name, p.vip.v4, String(PORT)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    listeners.push(l);
    const [line] = (await once(l.stdout!, 'data')) as [Buffer];
    assert.match(line.toString(), /listening/);
  }
  const tagsOf = (seen: Record<string, string[]>) => Object.values(seen).flat();
  for (const path of p.paths) {
    const seen = connections(path.cli.v4, 41000, 16, 3);
    for (const [port, tags] of Object.entries(seen))
      assert.equal(new Set(tags).size, 1, `port ${port}: ${tags}`);
    const servers = new Set(tagsOf(seen));
    assert.deepEqual([...servers].sort(), ['s1', 's2'], `path ${path.index}: ${JSON.stringify(seen)}`);
  }
  const src = p.paths[0].cli.v4;
  const ecmp = connections(src, 42000, 16, 1);
  flip('s2');
  assert.deepEqual(new Set(tagsOf(connections(src, 42000, 16, 1))), new Set(['s2']));
  flip('s1');
  assert.deepEqual(new Set(tagsOf(connections(src, 42000, 16, 1))), new Set(['s1']));
  const show = mptun('testbed', 'show', '--prefix', prefix, '--state-dir', stateDir, '--json');
  assert.equal((JSON.parse(show.stdout) as TestbedState).vipRoute, 's1');
  flip('ecmp');
  assert.deepEqual(connections(src, 42000, 16, 1), ecmp, 'the same hash as before the flips');
});

test('a second up with the same prefix fails and leaves the first testbed alone', async () => {
  const again = mptun('testbed', 'up', '--prefix', prefix, '--state-dir', stateDir);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already up .*mptun testbed down --prefix/);
  // Without the state file (another state dir), the namespaces themselves are found in use.
  const other = tempStateDir();
  const again2 = mptun('testbed', 'up', '--prefix', prefix, '--state-dir', other);
  await scrub('unused', other);
  assert.equal(again2.status, 1);
  assert.match(again2.stderr, /already exists: prefix .* is in use/);
  assert.equal((await leftovers(prefix)).length, 5);
  inNs(state.plan.namespaces.cli, 'ping', '-c1', '-W3', state.plan.vip.v4);
});

test('down removes every namespace and the state file', async () => {
  for (const l of listeners) {
    const exited = once(l, 'exit');
    l.kill('SIGTERM');
    await exited;
  }
  const down = mptun('testbed', 'down', '--prefix', prefix, '--state-dir', stateDir);
  assert.equal(down.status, 0, down.stderr);
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!list.includes(prefix), list);
  const show = mptun('testbed', 'show', '--prefix', prefix, '--state-dir', stateDir);
  assert.equal(show.status, 1);
  assert.match(show.stderr, /no testbed .* is recorded/);
});
