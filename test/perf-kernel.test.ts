/**
 * `mptun perf --stack kernel` against stock iperf3 (3.x), both ways, on loopback in a private
 * namespace: the protocol works at either end, and the bytes each side reports are the bytes
 * the other side reports (iperf3's own JSON is the reference).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { NetnsLab } from './support/netns.js';
import { json, MPTUN_BIN, start, startMptun, waitForListen } from './support/perf-lab.js';

const MB = 1024 * 1024;
const lab = new NetnsLab();
let ns = '';
let nextPort = 5301;

before(() => {
  ns = lab.add('perf');
});
after(() => lab.cleanup());

function iperfServer(port: number) {
  return start(lab, ns, 'iperf3', ['-s', '-1', '-J', '-p', String(port)]);
}

async function mptunServer(port: number, ...extra: string[]) {
  const s = startMptun(lab, ns, ['perf', 'server', '--one-off', '-p', String(port), ...extra]);
  await s.waitFor(/perf server: listening/);
  return s;
}

test('mptun perf client sends exactly -n bytes to a stock iperf3 server, and both report the same counts', async () => {
  const port = nextPort++;
  const server = iperfServer(port);
  await waitForListen(lab, ns, port);
  const client = startMptun(lab, ns, ['perf', 'client', '127.0.0.1', '-p', String(port), '-n', '64M', '-J']);
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const ours = json(client).end;
  const theirs = json(server).end;
  // iperf3 -s -J reports its own side only (it prints before the results exchange).
  assert.equal(ours.sum_sent.bytes, 64 * MB);
  assert.equal(ours.sum_received.bytes, theirs.sum_received.bytes, 'we report the count iperf3 measured');
  assert.ok(theirs.sum_received.bytes > 0 && theirs.sum_received.bytes <= 64 * MB);
  assert.ok(ours.sum_sent.bits_per_second > 0);
});

test('mptun perf client -R -P 2 receives from a stock iperf3 server on two streams', async () => {
  const port = nextPort++;
  const server = iperfServer(port);
  await waitForListen(lab, ns, port);
  const client = startMptun(lab, ns, [
    'perf',
    'client',
    '127.0.0.1',
    '-p',
    String(port),
    '-R',
    '-P',
    '2',
    '-n',
    '64M',
    '-J',
  ]);
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const ours = json(client);
  const theirs = json(server).end;
  assert.equal(ours.start.connected.length, 2);
  assert.equal(ours.end.streams.length, 2);
  assert.ok(
    ours.end.sum_received.bytes >= 64 * MB,
    'the client ends a reverse -n test once it has received n',
  );
  assert.equal(theirs.sum_sent.bytes, ours.end.sum_sent.bytes, 'we report the count iperf3 sent');
  assert.ok(ours.end.sum_received.bytes <= theirs.sum_sent.bytes);
  assert.equal(
    typeof ours.end.sum_sent.retransmits,
    'number',
    'iperf3 (the sender) reported retransmissions',
  );
});

test('a stock iperf3 client sends to mptun perf server, and both report the same counts', async () => {
  const port = nextPort++;
  const server = await mptunServer(port, '-J');
  const client = start(lab, ns, 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', '64M', '-J']);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const theirs = json(client).end;
  const ours = json(server).end;
  // iperf3 checks -n between blocks: it may send one block (128 KB) more.
  assert.ok(theirs.sum_sent.bytes >= 64 * MB && theirs.sum_sent.bytes <= 64 * MB + 128 * 1024);
  assert.equal(ours.sum_sent.bytes, theirs.sum_sent.bytes);
  assert.equal(ours.sum_received.bytes, theirs.sum_received.bytes);
  assert.ok(ours.sum_received.bytes > 0);
});

test('a stock iperf3 client -R -P 3 -t 1 receives from mptun perf server on three streams', async () => {
  const port = nextPort++;
  const server = await mptunServer(port, '-J');
  const client = start(lab, ns, 'iperf3', [
    '-c',
    '127.0.0.1',
    '-p',
    String(port),
    '-R',
    '-P',
    '3',
    '-t',
    '1',
    '-J',
  ]);
  assert.equal((await client.done()).code, 0, client.stdout());
  assert.equal((await server.done()).code, 0, server.stderr());
  const theirs = json(client).end;
  const ours = json(server).end;
  assert.equal(theirs.streams.length, 3);
  assert.equal(ours.streams.length, 3);
  assert.equal(ours.sum_sent.bytes, theirs.sum_sent.bytes);
  assert.equal(ours.sum_received.bytes, theirs.sum_received.bytes);
  assert.ok(theirs.sum_received.bytes > 0);
  assert.ok(theirs.sum_sent.seconds > 0.9 && theirs.sum_sent.seconds < 2, 'a 1-second test');
});

test('text output: interval lines every -i, sender and receiver summary, stack and TCP details', async () => {
  const port = nextPort++;
  const server = await mptunServer(port);
  const client = startMptun(lab, ns, [
    'perf',
    'client',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    '1',
    '-i',
    '0.25',
  ]);
  assert.equal((await client.done()).code, 0, client.stderr());
  assert.equal((await server.done()).code, 0, server.stderr());
  const out = client.stdout();
  const intervals =
    out.match(/^\[ {2}1\] +\d+\.\d\d-\d+\.\d\d +sec +[\d.]+ \w?Bytes +[\d.]+ \w?bits\/sec$/gm) ?? [];
  assert.ok(intervals.length >= 4, `four or more interval lines:\n${out}`);
  assert.match(out, /^\[ {2}1\] +0\.00-\d+\.\d\d +sec .* sender$/m);
  assert.match(out, /^\[ {2}1\] +0\.00-\d+\.\d\d +sec .* receiver$/m);
  assert.match(out, /^stack: kernel/m);
  assert.match(out, /TCP options: mss \d+.*retransmissions \d+; rtt [\d.]+ ms/);
  assert.match(out, /iperf Done\./);
  assert.match(server.stdout(), /Accepted connection from 127\.0\.0\.1/);
});

test('a second client while a test runs is told the server is busy', async () => {
  const port = nextPort++;
  const server = await mptunServer(port);
  // Long enough to outlast a slow start of the second client; interrupted once it was denied.
  const first = start(lab, ns, 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', '60']);
  await server.waitFor(/connected to 127\.0\.0\.1/);
  const second = startMptun(lab, ns, ['perf', 'client', '127.0.0.1', '-p', String(port), '-t', '1']);
  assert.equal((await second.done()).code, 1);
  assert.match(second.stderr(), /busy running a test.*MPTUN_ERR_PERF/);
  first.child.kill('SIGINT');
  await first.done();
  assert.equal((await server.done()).code, 1);
  assert.match(server.stdout(), /the client has terminated the test/);
});

test('UDP from a stock iperf3 client is refused with an error iperf3 prints', async () => {
  const port = nextPort++;
  const server = await mptunServer(port);
  const client = start(lab, ns, 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-u', '-t', '1']);
  assert.notEqual((await client.done()).code, 0);
  assert.match(client.stdout() + client.stderr(), /not implemented/i);
  assert.equal((await server.done()).code, 1);
  assert.match(server.stdout(), /TCP only/);
});

test('Ctrl-C on the client tells the iperf3 server (CLIENT_TERMINATE) and exits 1', async () => {
  const port = nextPort++;
  const server = start(lab, ns, 'iperf3', ['-s', '-1', '-p', String(port), '--forceflush']);
  await server.waitFor(/Server listening/);
  const client = startMptun(lab, ns, ['perf', 'client', '127.0.0.1', '-p', String(port), '-t', '30']);
  // The first interval line (its end is the measured time: 1.00, or 1.01 on a busy machine).
  await client.waitFor(/^\[ {2}1\] +0\.00-\d+\.\d\d /m);
  client.child.kill('SIGINT');
  assert.equal((await client.done()).code, 1);
  assert.match(client.stderr(), /interrupted: sent CLIENT_TERMINATE/);
  await server.done();
  assert.match(server.stdout() + server.stderr(), /the client has terminated/);
});

test('SIGTERM stops a waiting server cleanly with exit code 0', async () => {
  const server = await mptunServer(nextPort++);
  server.child.kill('SIGTERM');
  assert.equal((await server.done()).code, 0, server.stderr());
});

function mptunSync(...args: string[]) {
  return spawnSync('ip', ['netns', 'exec', ns, process.execPath, MPTUN_BIN, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

test('refused: a clear error and exit code 1', () => {
  const r = mptunSync('perf', 'client', '127.0.0.1', '-p', '1');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unable to connect to 127\.0\.0\.1 port 1: connection refused .*ECONNREFUSED/);
});

test('unreachable: a clear error and exit code 1', () => {
  // The namespace has only loopback: no route to this address.
  const r = mptunSync('perf', 'client', '192.0.2.1', '--connect-timeout', '2000');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unable to connect to 192\.0\.2\.1 port 5201: network unreachable/);
});

test('-J reports an error inside the JSON document', () => {
  const r = mptunSync('perf', 'client', '127.0.0.1', '-p', '1', '-J');
  assert.equal(r.status, 1);
  assert.match(JSON.parse(r.stdout).error, /connection refused/);
});

test('bad flags are rejected with exit code 2 before anything runs', () => {
  const cases: [string[], RegExp][] = [
    [['perf', 'client'], /Not enough non-option arguments/],
    [['perf', 'client', 'h', '--no-such-flag'], /Unknown argument/],
    [['perf', 'client', 'h', '-P', '0'], /--parallel must be/],
    [['perf', 'client', 'h', '-n', 'lots'], /--bytes: 'lots' is not a size/],
    [['perf', 'client', 'h', '--stack', 'user'], /needs --tun/],
    [['perf', 'server', '--tun', 'x'], /go with --stack user/],
    [['perf', 'server', '--stack', 'bogus'], /Invalid values/],
    [['perf'], /Name a perf subcommand/],
  ];
  for (const [args, re] of cases) {
    const r = mptunSync(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('--help documents every flag', () => {
  for (const sub of ['client', 'server']) {
    const r = mptunSync('perf', sub, '--help');
    assert.equal(r.status, 0);
    const flags = [...r.stdout.matchAll(/^\s+(?:-\w, )?(--[\w-]+)\s+(.*)$/gm)];
    assert.ok(flags.length >= 10, r.stdout);
    for (const [, flag, rest] of flags)
      assert.ok(rest!.trim().length > 0, `${sub} ${flag} has a description`);
  }
});
