/**
 * `mptun client --server` (converter mode, RFC 8803) in namespaces: a plain-TCP app in `cli` →
 * mptun client (two plumbed paths, --psk-file) → lb → mptun server (--converter, --allow,
 * --psk-file) → a plain kernel TCP destination on the server's host, which has no MPTCP and is
 * not the server's backend. Checked: SHA-256 both ways; the MPTCP connection went to the
 * converter port and joined from both paths; a destination outside the allowlist resets the
 * app's connection (Error TLV 32 from the converter) and nothing connects to it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type LbLab,
  labSha256,
  loadBalancerTopology,
  type Peer,
  startClient,
  startServer,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun } from './support/perf-lab.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-cconv-'));
after(() => {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** The destination: an address of the server's host (its lo), reached by the converter only. */
const DST = '10.77.0.1';
const DST_PORT = 7001;
const DENIED_PORT = 7002;
const CONVERTER_PORT = 5124;
const REPLY = 500_000;
const REPLY_SEED = 81;

let t: LbLab;
let client: Run;
let server: Run;
let dest: Peer;

before(async () => {
  t = loadBalancerTopology(lab, { tag: 'cconv', servers: 1, serviceAddrs: false });
  const s = t.servers[0];
  assert.ok(s);
  lab.exec(s.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  lab.exec(s.ns, 'ip', 'addr', 'add', `${DST}/32`, 'dev', 'lo');
  const psk = join(dir, 'psk');
  writeFileSync(psk, 'a pre-shared key of more than 16 bytes\n');
  dest = await startServer(lab, s.ns, {
    host: DST,
    port: DST_PORT,
    tcp: true,
    conns: 0,
    send: REPLY,
    seed: REPLY_SEED,
  });
  server = startMptun(lab, s.ns, [
    'server',
    '--tun',
    'mpt-csrv',
    '--vip',
    t.vip.v4,
    '--unique',
    s.unique.v4,
    '--listen',
    '5001',
    '--backend',
    `127.0.0.1:${DST_PORT}`,
    '--converter',
    String(CONVERTER_PORT),
    '--allow',
    `${DST}/32:${DST_PORT}`,
    '--psk-file',
    psk,
    '--drain-timeout',
    '2',
  ]);
  client = startMptun(lab, t.cli, [
    'client',
    '--tun',
    'mpt-ccli',
    '--intercept',
    `${DST}/32`,
    '--path',
    `p1=${t.paths[0].far.v4}`,
    '--path',
    `p2=${t.paths[1].far.v4}`,
    '--server',
    `${t.vip.v4}:${CONVERTER_PORT}`,
    '--psk-file',
    psk,
    '--connect-timeout',
    '5',
    '--drain-timeout',
    '2',
  ]);
  await Promise.all([
    server.waitFor(/"msg":"server: listening"/),
    client.waitFor(/"psk":true,?[^\n]*"msg":"client: intercepting"/),
  ]);
});

test('app -> mptun client (converter) -> mptun server (converter) -> plain TCP destination: SHA-256 both ways', async () => {
  const size = 1_000_000;
  const app = startClient(lab, t.cli, {
    host: DST,
    port: DST_PORT,
    bytes: size,
    seed: 90,
    tcp: true,
    timeout: 30,
  });
  await app.done(40_000);
  const c = app.connections()[0];
  assert.deepEqual(c?.sent, { bytes: size, sha256: labSha256(90, size) });
  assert.deepEqual(c?.received, { bytes: REPLY, sha256: labSha256(REPLY_SEED, REPLY) });
  const got = dest.connections().map((d) => d.received);
  assert.deepEqual(got, [{ bytes: size, sha256: labSha256(90, size) }]);
  const m = await client.waitFor(/\{[^\n]*"msg":"connection closed"[^\n]*\}/, 15_000);
  const line = JSON.parse(m[0]) as { up: number; down: number; paths?: string[] };
  process.stdout.write(`# client: ${m[0]}\n`);
  assert.equal(line.up, size);
  assert.equal(line.down, REPLY);
  const remotes = (line.paths ?? []).map((p) => p.split('->')[1]);
  assert.ok(remotes.includes(`${t.vip.v4}:${CONVERTER_PORT}`), JSON.stringify(line));
  assert.ok((line.paths ?? []).length >= 2, `joined from the second path: ${JSON.stringify(line)}`);
  await server.waitFor(/"destination":"10\.77\.0\.1:7001"[^\n]*"msg":"converter: connected"/, 5_000);
});

/** A plain-TCP app: connect, send, read to the end; prints how it ended. */
const APP = `
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
try:
    s.sendall(b"hello")
    got = s.recv(100)
    print(json.dumps({"outcome": "eof" if got == b"" else "data"}), flush=True)
except ConnectionResetError:
    print(json.dumps({"outcome": "reset"}), flush=True)
`;

test('a destination outside the allowlist: the app connection is reset, nothing connects to it', async () => {
  const s = t.servers[0];
  assert.ok(s);
  const denied = await startServer(lab, s.ns, { host: DST, port: DENIED_PORT, tcp: true, conns: 0 });
  const app = start(lab, t.cli, 'python3', ['-c', APP, DST, String(DENIED_PORT)]);
  const m = await app.waitFor(/^(\{.*\})$/m, 30_000);
  assert.equal((await app.done(10_000)).code, 0, app.stderr());
  assert.deepEqual(JSON.parse(m[1] ?? ''), { outcome: 'reset' });
  await client.waitFor(/Error TLV 32 \(not authorized\)[^\n]*"msg":"connection failed: converter"/, 5_000);
  await server.waitFor(/is not in the allowlist[^\n]*"msg":"converter: request refused"/, 5_000);
  assert.equal(denied.connections().length, 0, 'the converter never connected to it');
});

test('SIGTERM to both: clean exits, the client counted one refusal', async () => {
  for (const r of [client, server]) r.child.kill('SIGTERM');
  for (const r of [client, server]) {
    const { code } = await r.done(20_000);
    assert.equal(code, 0, r.stdout() + r.stderr());
  }
  assert.match(client.stdout() + client.stderr(), /"convertRefused":1,[^\n]*"msg":"client: stopped"/);
});
