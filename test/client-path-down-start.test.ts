/**
 * `mptun client --path IFACE` started while one of its interfaces is down (a laptop whose LTE
 * modem is not up yet), in namespaces: with the gateway named, the client starts, says the path
 * is down, and carries a plain TCP app's connection to a kernel MPTCP server over path 1 alone.
 * The link comes up: the client adds the path's table route and joins from it (the kernel sees
 * the subflow). SHA-256 equal both ways; SIGTERM leaves the host as it was. Without the gateway
 * named, the client refuses to start and says how to fix it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { APP } from './support/command-app.js';
import {
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  mptcpCounters,
  nonZero,
  type Peer,
  startServer,
  type TwoPathLab,
  tcpSockets,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
after(() => lab.cleanup());

const TUN = 'mpt-pds';
const DST = '10.72.0.1';
const CHUNK = 3_000_000;
const DOWN = 2_000_000;

let t: TwoPathLab;

/** The host network state the client may touch (IPv4), as one text. */
function hostState(ns: string): string {
  return [
    lab.exec(ns, 'ip', '-4', '-o', 'addr', 'show'),
    lab.exec(ns, 'ip', '-4', 'rule', 'show'),
    lab.exec(ns, 'ip', '-4', 'route', 'show', 'table', 'all'),
    lab.exec(ns, 'nft', 'list', 'ruleset'),
  ].join('\n');
}

/** The kernel server's established subflows, by the client path they came from. */
function subflows(): { path1: number; path2: number } {
  const s = tcpSockets(lab, t.srv, ['sport', '=', ':5001']).filter(
    (x) => x.mptcp !== undefined && x.state === 'ESTAB',
  );
  return {
    path1: s.filter((x) => x.peer.addr === t.paths[0].cli.v4).length,
    path2: s.filter((x) => x.peer.addr === t.paths[1].cli.v4).length,
  };
}

before(() => {
  t = twoPathTopology(lab, { tag: 'clpd' });
  lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', t.paths[0].far.v4, 'dev', 'p1');
  lab.exec(t.srv, 'ip', 'addr', 'add', `${DST}/32`, 'dev', 'lo');
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true },
    limits: { subflows: 4, addAddrAccepted: 0 },
    flush: true,
  });
});

test('path 2 down at start, its gateway not named: exit 1, naming the fix', async () => {
  lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'down');
  try {
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
    const { code } = await run.done(60_000);
    assert.equal(code, 1, run.stderr());
    assert.match(run.stderr(), /--path p2: the interface is down.*--path p2=GATEWAY/);
  } finally {
    lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'up');
  }
});

test('path 2 down at start, gateway named: the client starts on path 1, joins from path 2 once it is up', async () => {
  const hostBefore = hostState(t.cli);
  lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'down');
  let mptun: Run | undefined;
  let server: Peer | undefined;
  try {
    mptun = startMptun(lab, t.cli, [
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
    await mptun.waitFor(/"msg":"client: intercepting"/);
    await mptun.waitFor(/"iface":"p2".*"msg":"client: path down at start; its route comes with the link"/);
    await mptun.waitFor(/"iface":"p2","address":"100\.64\.2\.2".*"msg":"client: path down"/);
    const c0 = mptcpCounters(lab, t.srv);
    server = await startServer(lab, t.srv, { host: DST, port: 5001, send: DOWN, seed: 72 });
    const app = start(lab, t.cli, 'python3', ['-c', APP, DST, '5001']);
    await app.waitFor(/^connected$/m);
    let sent = CHUNK;
    app.child.stdin?.write(`send ${CHUNK}\n`);
    await app.waitFor(new RegExp(`^sent ${sent}$`, 'm'), 30_000);
    await eventually('a subflow on path 1 only', subflows, (s) => s.path1 === 1 && s.path2 === 0);

    lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'up');
    await mptun.waitFor(/"iface":"p2","address":"100\.64\.2\.2".*"msg":"client: path up"/);
    await mptun.waitFor(/"msg":"client: path route restored"/);
    await eventually('a subflow from path 2 once it is up', subflows, (s) => s.path1 === 1 && s.path2 === 1);
    sent += CHUNK;
    app.child.stdin?.write(`send ${CHUNK}\n`);
    await app.waitFor(new RegExp(`^sent ${sent}$`, 'm'), 30_000);
    app.child.stdin?.write('fin\n');
    const done = await app.waitFor(/^done (\d+) ([0-9a-f]+) (\d+) ([0-9a-f]+)$/m, 60_000);
    await server.done(30_000);
    assert.deepEqual(server.connections()[0]?.received, { bytes: sent, sha256: done[2] }, 'upload SHA-256');
    assert.equal(Number(done[3]), DOWN);
    assert.equal(done[4], labSha256(72, DOWN), 'download SHA-256');
    const d = counterDelta(c0, mptcpCounters(lab, t.srv));
    assert.equal(d['MPCapableSYNRX'], 1, JSON.stringify(nonZero(d)));
    assert.ok((d['MPJoinSynRx'] ?? 0) >= 1, `the join from path 2: ${JSON.stringify(nonZero(d))}`);

    mptun.child.kill('SIGTERM');
    const { code } = await mptun.done(30_000);
    assert.equal(code, 0, mptun.stderr());
    assert.equal(hostState(t.cli), hostBefore, 'SIGTERM leaves the host as it was');
  } finally {
    lab.exec(t.cli, 'ip', 'link', 'set', 'p2', 'up');
  }
});
