/**
 * `npm run bench [-- --json] [-- --quick] [-- --only SUITE]`: runs the benchmark modules and
 * prints one table (and JSON with --json). Needs root for the TUN benchmarks.
 */
import { type BenchModule, type BenchRow, formatTable } from './harness.js';

const SUITES: Record<string, () => Promise<BenchModule>> = {
  codec: () => import('./codec.js'),
  tun: () => import('./tun.js'),
  tcp: () => import('./tcp.js'),
  mptcp: () => import('./mptcp.js'),
  'mptcp-tbf': () => import('./mptcp-tbf.js'),
  multipath: () => import('./multipath.js'),
  chain: () => import('./chain.js'),
  'chain-tbf': async () => ({ run: (await import('./chain.js')).runTbf }),
};

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const quick = argv.includes('--quick');
const onlyIndex = argv.indexOf('--only');
const only = onlyIndex >= 0 ? argv[onlyIndex + 1] : undefined;
if (only !== undefined && !(only in SUITES)) {
  process.stderr.write(`bench: unknown suite '${only}'; choose one of: ${Object.keys(SUITES).join(', ')}\n`);
  process.exit(2);
}

const rows: BenchRow[] = [];
for (const [name, load] of Object.entries(SUITES)) {
  if (only !== undefined && name !== only) continue;
  process.stderr.write(`bench: running ${name}...\n`);
  const mod = await load();
  rows.push(...(await mod.run({ quick })));
}
process.stdout.write(`${formatTable(rows)}\n`);
if (json) process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), rows }, null, 2)}\n`);
