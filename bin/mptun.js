#!/usr/bin/env node
// Entry point: runs the TypeScript sources through tsx's loader, so there is no build step
// to forget; the only compiled part is the native TUN binding, built by `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/proxy/cli.ts');
process.exitCode = await main(process.argv.slice(2));
