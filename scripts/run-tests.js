#!/usr/bin/env node
// Runs every test/**/*.test.ts on node's own test runner (tsx loads the TypeScript), so CI
// reads node's summary lines. Extra arguments are passed on (e.g. a file or --test-name-pattern).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith('.ts')) ? [] : findTests('test').sort();
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', ...args, ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
