#!/usr/bin/env node
// Entry point: runs the TypeScript sources through tsx's loader, so there is no build step
// to forget; the only compiled part is the native TUN binding, built by `npm ci`.
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

// The userspace TCP copies every received byte once, into fresh 16-64 KB Buffers (receive
// slabs) that it hands to the reader. V8 counts that ArrayBuffer memory, allocated since the
// last mark-compact, against an old-generation limit it sets only ~9 MB above our small live
// heap (~8 MB); young slabs are freed only when a scavenge runs, and the engine allocates so
// little JS that scavenges come every ~30 MB of slabs. So a single flow at a few Gbit/s ran
// a mark-compact every 20-100 ms (5-13 a second, ~10% of the time in pauses, twice the CPU
// per byte). A larger growing factor (11x the live heap instead of V8's own 1.1-1.3 here)
// keeps the limit above that churn: 0-1 mark-compacts per 8 s flow. `--initial-old-space-size=256`
// on the command line works too, but cannot be set once the process runs; this can.
setFlagsFromString('--heap-growing-percent=1000');

register();
const { main } = await import('../src/proxy/cli.ts');
process.exitCode = await main(process.argv.slice(2));
