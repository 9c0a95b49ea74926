/**
 * How `mptun perf --stack user` wires the host: each --addr takes exactly one value, and a host
 * with no address of its own to reach the stack from gets a warning that names the fix, which
 * then works (a stock iperf3 client completes a test).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NetnsLab } from './support/netns.js';
import { start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
let ns = '';

before(() => {
  ns = lab.add('wire');
});
after(() => lab.cleanup());

test('--addr takes one value per flag, and a host without an address is told how to fix it', async () => {
  const server = startMptun(lab, ns, [
    'perf',
    'server',
    '--stack',
    'user',
    '--tun',
    'pw0',
    '--addr',
    '10.77.0.2',
    '-1',
  ]);
  const [up] = await server.waitFor(/"addresses":\[[^\]]*\]/);
  assert.equal(up, '"addresses":["10.77.0.2"]', 'the -1 after --addr is a flag, not an address');
  await server.waitFor(/no address to reach 10\.77\.0\.2 from.*ip addr add 100\.64\.0\.1\/32 dev pw0/);
  await server.waitFor(/Server listening on 5201/);
  // The fix the warning names.
  lab.exec(ns, 'ip', 'addr', 'add', '100.64.0.1/32', 'dev', 'pw0');
  const client = start(lab, ns, 'iperf3', ['-c', '10.77.0.2', '-t', '1', '-J']);
  assert.equal((await client.done()).code, 0, client.stderr());
  const report = JSON.parse(client.stdout()) as { end: { sum_received: { bytes: number } } };
  assert.ok(report.end.sum_received.bytes > 0);
  assert.equal((await server.done()).code, 0, server.stderr());
});
