/**
 * Through a tbf-shaped 100 Mbit/s link, mptun's userspace TCP gets at least 95% of the goodput
 * kernel TCP gets over the same link in the same run, in both directions. A ratio of the same
 * link measured moments apart, not an absolute speed; each side takes the better of up to two
 * tries so one unlucky run of either stack does not decide.
 *
 *   peer (kernel iperf3 client) ──veth, tbf 100 Mbit/s both ways── tun ns
 *        kernel baseline: iperf3 -s on 10.9.0.2 (the tun namespace's own kernel TCP)
 *        userspace:       mptun perf server --stack user on 10.7.0.x (forwarded into its TUN)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NetnsLab } from './support/netns.js';
import { json, start, startMptun, waitForListen } from './support/perf-lab.js';

const SECONDS = 4;
const RATIO = 0.95;
const lab = new NetnsLab();
let peer = '';
let tun = '';
let port = 5600;

before(() => {
  peer = lab.add('peer');
  tun = lab.add('tun');
  lab.veth(peer, '10.9.0.1/24', tun, '10.9.0.2/24', 'vtbf');
  lab.exec(tun, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  lab.exec(peer, 'ip', 'route', 'add', '10.7.0.0/24', 'via', '10.9.0.2');
  // 100 Mbit/s each way; at most ~20 ms of queue, like a modest access link.
  for (const [ns, dev] of [
    [peer, 'vtbf'],
    [tun, 'vtbfp'],
  ] as const) {
    lab.exec(
      ns,
      'tc',
      'qdisc',
      'add',
      'dev',
      dev,
      'root',
      'tbf',
      'rate',
      '100mbit',
      'burst',
      '32kb',
      'latency',
      '20ms',
    );
  }
});
after(() => lab.cleanup());

/** Goodput (receiver bits/s, as the iperf3 client reports it) of one iperf3 run from the peer. */
async function iperf(target: string, p: number, reverse: boolean): Promise<number> {
  const client = start(lab, peer, 'iperf3', [
    '-c',
    target,
    '-p',
    String(p),
    '-t',
    String(SECONDS),
    // Kernel TCP runs CUBIC like our engine, whatever the host's default (BBR here).
    '-C',
    'cubic',
    '-J',
    ...(reverse ? ['-R'] : []),
  ]);
  assert.equal((await client.done()).code, 0, client.stdout());
  return json(client).end.sum_received.bits_per_second as number;
}

async function kernelRun(reverse: boolean): Promise<number> {
  const p = port++;
  const server = start(lab, tun, 'iperf3', ['-s', '-1', '-p', String(p)]);
  await waitForListen(lab, tun, p);
  const bps = await iperf('10.9.0.2', p, reverse);
  assert.equal((await server.done()).code, 0, server.stdout());
  return bps;
}

async function userRun(reverse: boolean): Promise<number> {
  const p = port++;
  const addr = `10.7.0.${p - 5590}`;
  const server = startMptun(lab, tun, [
    'perf',
    'server',
    '--one-off',
    '-p',
    String(p),
    '--stack',
    'user',
    '--tun',
    `tbf${p}`,
    '--addr',
    addr,
  ]);
  await server.waitFor(/perf server: listening/);
  const bps = await iperf(addr, p, reverse);
  assert.equal((await server.done()).code, 0, server.stderr());
  return bps;
}

async function compare(reverse: boolean) {
  let kernel = await kernelRun(reverse);
  let user = await userRun(reverse);
  if (user < RATIO * kernel) {
    kernel = Math.max(kernel, await kernelRun(reverse));
    user = Math.max(user, await userRun(reverse));
  }
  const ratio = user / kernel;
  const line = `${reverse ? 'userspace sends' : 'userspace receives'}: kernel ${(kernel / 1e6).toFixed(1)} Mbit/s, userspace ${(user / 1e6).toFixed(1)} Mbit/s, ratio ${ratio.toFixed(3)}`;
  process.stderr.write(`${line}\n`);
  assert.ok(kernel > 80e6, `the shaped link carries kernel TCP near 100 Mbit/s (${line})`);
  assert.ok(ratio >= RATIO, line);
}

test('100 Mbit/s tbf, kernel sender → userspace receiver: goodput ≥ 95% of kernel TCP', async () => {
  await compare(false);
});

test('100 Mbit/s tbf, userspace sender → kernel receiver: goodput ≥ 95% of kernel TCP', async () => {
  await compare(true);
});
