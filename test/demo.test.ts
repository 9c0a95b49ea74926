/**
 * `mptun demo` end to end with short transfers: testbed up, mptun servers in s1/s2, stock iperf3
 * as plain TCP and through mptun client, the anycast flip, the table, the chart; then nothing of
 * its prefix is left (namespaces, state file). Throughput numbers are printed, not asserted
 * (that is the bench's job on this noisy machine): the test checks the table's shape and facts
 * (which server each subflow reached agrees with the addresses, plain TCP dies at the flip,
 * mptun completes).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { statePath } from '../src/proxy/testbed/state.js';
import { leftovers, runPrefix, scrub, tempStateDir } from './support/testbed-run.js';

const prefix = runPrefix('demo');
const dir = tempStateDir();
after(() => scrub(prefix, dir));

function runDemo(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['bin/mptun.js', 'demo', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 110_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, out, err });
    });
  });
}

test('the demo with 1 s transfers: the table, the flip, the chart, and nothing left behind', async () => {
  const plot = join(dir, 'demo.html');
  const r = await runDemo([
    '--prefix',
    prefix,
    '--state-dir',
    dir,
    '-t',
    '1',
    '--flip-time',
    '3',
    '--plot',
    plot,
  ]);
  const all = `${r.out}\n${r.err}`;
  assert.equal(r.code, 0, all);
  // Progress lines, stamped.
  assert.match(r.out, /^\[ +[\d.]+ s\] testbed: up$/m);
  assert.match(
    r.out,
    /^\[ +[\d.]+ s\] servers: mptun server on s1 \(10\.98\.0\.1\) and s2 \(10\.98\.0\.2\)/m,
  );
  // The table: both rows with rates, the ratio against plain TCP.
  assert.match(
    r.out,
    /^ {2}single-path TCP \(bound to p1, no mptun client\) +1 +[\d.]+ [KM]bits\/sec +1\.00x$/m,
  );
  assert.match(
    r.out,
    /^ {2}mptun client -> lb -> mptun server \(MPTCP over p1 \+ p2\) +2 +[\d.]+ [KM]bits\/sec +[\d.]+x$/m,
  );
  // Each server's MPTCP connections: the initial subflow to the VIP, the joins to that server's
  // own unique address only (the C flag kept them off the balanced address), from both paths.
  const rows = [...r.out.matchAll(/^ {2}(s[12]) +\d+ +mptcp +\S+ +\S+ +(.*)$/gm)];
  assert.ok(rows.length >= 2, r.out);
  for (const [, server, subflows] of rows) {
    const sfs = subflows!.replace(/ \(.*\)$/, '').split(', ');
    assert.equal(sfs.length, 3, subflows);
    assert.match(sfs[0]!, /^10\.60\.1\.1:\d+ > 10\.99\.0\.1:5201$/);
    const unique = server === 's1' ? '10.98.0.1' : '10.98.0.2';
    const joins = sfs.slice(1).map((s) => s.replace(/:\d+ > /, ' > '));
    assert.deepEqual(joins.sort(), [`10.60.1.1 > ${unique}:5201`, `10.60.2.1 > ${unique}:5201`]);
  }
  assert.match(
    r.out,
    /MPTCP MIB: s1: \d+ joins accepted, 0 joins for unknown tokens; s2: \d+ joins accepted, 0 joins for unknown tokens/,
  );
  // The flip: away from plain TCP's site; plain TCP fails, mptun completes.
  const flip =
    /anycast flip at [\d.]+ s: the VIP routed to (s[12]) only \(plain TCP's data connection was on (s[12])\)/.exec(
      r.out,
    );
  assert.ok(flip, r.out);
  assert.notEqual(flip[1], flip[2]);
  assert.match(r.out, /^ {4}plain TCP \(p1\): +FAILED after /m);
  assert.match(r.out, /^ {4}mptun \(p1 \+ p2\): +completed, /m);
  // The chart: a page with two charts, no external references.
  const html = readFileSync(plot, 'utf8');
  assert.equal(html.match(/<svg /g)?.length, 2);
  assert.doesNotMatch(html, /<script|src=|href=/);
  assert.match(html, /data-label="plain TCP \(p1\)"/);
  // A line per subflow of the mptun runs (from mptun client --stats-interval): at least one on
  // each of the client's two paths, in both charts.
  for (const svg of html.split('<svg ').slice(1)) {
    const paths = new Set([...svg.matchAll(/data-label="subflow ([\d.]+):\d+-&gt;/g)].map((m) => m[1]));
    assert.ok(paths.size >= 2, `subflow lines from ${[...paths].join(', ')}`);
  }
  // Nothing left: no namespace of the prefix, no state file.
  assert.deepEqual(await leftovers(prefix), []);
  assert.equal(existsSync(statePath(dir, prefix)), false);
});
