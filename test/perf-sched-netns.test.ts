/**
 * `mptun perf --mptcp --scheduler NAME --backup ADDR` in private namespaces, our client ↔ our
 * server over two paths (the topology of test/perf-mptcp.test.ts):
 *
 *   cli ─p1 10.52.1.0/24─ srv        cli TUN: 10.72.1.1 (path 1), 10.72.2.1 (path 2, --backup)
 *       ─p2 10.52.2.0/24─            srv TUN: 10.73.1.x (initial), 10.73.2.x (unique, announced)
 *
 * The client's path-2 address is its backup: its join carries the B flag, and neither end sends
 * data on it while path 1 works, whichever end sends (-R). The choice shows in the output.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type TwoPathLab, twoPathTopology } from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { json, type Report, startMptun } from './support/perf-lab.js';

const MB = 1024 * 1024;
const CLIENT_ADDRS = ['10.72.1.1', '10.72.2.1'] as const;
const lab = new NetnsLab();
let t: TwoPathLab;

before(() => {
  t = twoPathTopology(lab, { tag: 'ps' });
  for (const ns of [t.cli, t.srv]) lab.exec(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  for (const p of t.paths) {
    const k = p.index;
    const table = `${100 + k}`;
    lab.exec(t.cli, 'ip', 'route', 'add', 'default', 'via', p.far.v4, 'dev', p.cli.dev, 'table', table);
    lab.exec(t.cli, 'ip', 'rule', 'add', 'from', CLIENT_ADDRS[k - 1]!, 'lookup', table, 'priority', table);
    lab.exec(t.cli, 'ip', 'route', 'add', `10.73.${k}.0/24`, 'via', p.far.v4, 'dev', p.cli.dev);
    lab.exec(t.srv, 'ip', 'route', 'add', `10.72.${k}.0/24`, 'via', p.cli.v4, 'dev', p.far.dev);
  }
});
after(() => lab.cleanup());

interface SubflowJson {
  role: 'initial' | 'join';
  local: string;
  remote: string;
  fully_established: boolean;
  backup: boolean;
  bytes_acked: number;
  bytes_received: number;
}

function subflowsOf(report: Report): SubflowJson[] {
  const list = report.end?.mptun?.mptcp as { subflows: SubflowJson[] }[];
  assert.ok(Array.isArray(list) && list.length === 1, JSON.stringify(list));
  return list[0]!.subflows;
}

const host = (endpoint: string) => endpoint.slice(0, endpoint.lastIndexOf(':'));

let n = 0;
for (const reverse of [false, true]) {
  test(`--scheduler round-robin --backup ${CLIENT_ADDRS[1]}${reverse ? ' -R' : ''}: the backup path carries no data, the other subflows all of it`, async () => {
    n++;
    const port = 5700 + n;
    const initial = `10.73.1.${n}`;
    const unique = `10.73.2.${n}`;
    const server = startMptun(lab, t.srv, [
      'perf',
      'server',
      '--one-off',
      '-J',
      '-p',
      String(port),
      '--stack',
      'user',
      '--tun',
      `sps${n}`,
      '--addr',
      initial,
      '--addr',
      unique,
      '--mptcp',
      '--announce',
      unique,
      '--scheduler',
      'round-robin',
    ]);
    await server.waitFor(/perf server: listening/);
    const client = startMptun(lab, t.cli, [
      'perf',
      'client',
      initial,
      '-p',
      String(port),
      '-J',
      '-n',
      '16M',
      ...(reverse ? ['-R'] : []),
      '--stack',
      'user',
      '--tun',
      `cps${n}`,
      '--addr',
      CLIENT_ADDRS[0],
      '--addr',
      CLIENT_ADDRS[1],
      '--mptcp',
      '--scheduler',
      'round-robin',
      '--backup',
      CLIENT_ADDRS[1],
    ]);
    assert.equal((await client.done()).code, 0, client.stderr());
    assert.equal((await server.done()).code, 0, server.stderr());
    const ours = json(client);
    const theirs = json(server);
    assert.equal(ours.end.sum_sent.bytes, reverse ? ours.end.sum_sent.bytes : 16 * MB);
    assert.match(JSON.stringify(ours.start), /scheduler round-robin; backup 10\.72\.2\.1/);
    assert.match(JSON.stringify(theirs.start), /scheduler round-robin/);
    const c = subflowsOf(ours);
    const s = subflowsOf(theirs);
    // Initial subflow and a join from path 1, the backup join from path 2 (C flag: to the unique address).
    assert.equal(c.length, 3, JSON.stringify(c));
    const backup = c.filter((x) => host(x.local) === CLIENT_ADDRS[1]);
    assert.equal(backup.length, 1, JSON.stringify(c));
    assert.ok(backup[0]!.fully_established, JSON.stringify(backup));
    const regular = c.filter((x) => host(x.local) === CLIENT_ADDRS[0]);
    // The report marks it (ours by --backup, the server's by the B flag it received).
    assert.deepEqual(
      c.map((x) => x.backup),
      c.map((x) => host(x.local) === CLIENT_ADDRS[1]),
    );
    if (!reverse) {
      assert.equal(backup[0]!.bytes_acked, 0, `client sent on the backup: ${JSON.stringify(backup)}`);
      // The client's report is taken when it has written everything: up to a send buffer is in flight.
      assert.ok(regular.reduce((m, x) => m + x.bytes_acked, 0) >= 8 * MB, JSON.stringify(regular));
    } else {
      assert.equal(backup[0]!.bytes_received, 0, `server sent on the backup: ${JSON.stringify(backup)}`);
      assert.ok(regular.reduce((m, x) => m + x.bytes_received, 0) >= 16 * MB, JSON.stringify(regular));
    }
    const serverBackup = s.filter((x) => host(x.remote) === CLIENT_ADDRS[1]);
    assert.equal(serverBackup.length, 1, JSON.stringify(s));
    assert.equal(serverBackup[0]!.backup, true);
    assert.equal(reverse ? serverBackup[0]!.bytes_acked : serverBackup[0]!.bytes_received, 0);
    const sm = theirs.end.mptun.stack_counters.mptcp as Record<string, number>;
    assert.ok((sm.MPJoinSynBackupRx ?? 0) >= 1, JSON.stringify(sm));
  });
}
