/**
 * OUR stack as an MPTCP peer process for the kernel-MPTCP lab: the userspace TCP/MPTCP stack on
 * a TUN in the current network namespace (start it with `ip netns exec`), acting as a client or
 * a server through the library API, with the lab's deterministic payload (the stream
 * mptcp-peer.py sends, labBytes()/labSha256() in mptcp-lab.ts).
 *
 *   client --tun T --addr A [--addr B ...] --host H --port P --bytes N --seed S
 *          [--local A] [--tcp] [--checksum] [--offload] [--timeout SEC] [FAILOVER OPTIONS]
 *       Connects (MPTCP unless --tcp) from --local (default: the first --addr of H's family),
 *       sends N deterministic bytes, shuts down writing, receives until EOF, closes.
 *   server --tun T --addr A [--addr B ...] --port P [--announce A ...] [--no-cflag] [--tcp]
 *          [--checksum] [--offload] [--conns N] [--send N --seed S] [--timeout SEC] [FAILOVER OPTIONS]
 *       Listens on every --addr (MPTCP unless --tcp: C flag on unless --no-cflag, ADD_ADDR of
 *       each --announce), receives each connection until EOF, sends N bytes back, closes.
 *
 * FAILOVER OPTIONS (what test/mptcp-failover.test.ts, mptcp-backup-netns.test.ts and
 * mptcp-failover-kernel.test.ts measure):
 *   --backup ADDR      that local address's subflows are MP_PRIO backups (MptcpConfig.backupAddresses)
 *   --stale-rtos N     MptcpConfig.staleAfterRtos
 *   --tick MS          `tick I NOW {JSON}` every MS ms while connection I runs (NOW = Date.now();
 *                      each subflow's id, local and remote, fully established, backup, bytes sent,
 *                      acknowledged and received; the path manager's and the scheduler's counters)
 *   --gaps             `gap I MS END` each time new bytes arrive 50 ms or more after the previous
 *                      ones (END = Date.now()); the result has maxGapMs and gapEndAt either way
 *   --control          stdin lines: `down ADDR` / `up ADDR` (TcpStack.setAddressState, answered
 *                      `state ADDR down|up NOW`: what `mptun client --path IFACE` does when the
 *                      interface changes) and `quit` (stop waiting for the connections' end:
 *                      `quit NOW`, no result lines); a server then stays until stdin closes (at
 *                      most 10 s), so it still answers the client's last segments
 *
 * Each --addr is routed into the TUN (`ip route replace A dev T`), so the namespace's kernel
 * forwards what is addressed to it; the TUN and its routes go when the process ends.
 *
 * One line per step on stdout, first word the step, then the connection index where there is one:
 *   up TUN ADDR...
 *   listening PORT
 *   accepted I PEERHOST PEERPORT proto=mptcp|fallback|tcp token=T|none
 *   connected I LOCALHOST LOCALPORT proto=mptcp|fallback|tcp token=T|none
 *   progress I SENT RECEIVED MS     (every --progress bytes written or read, 8 MiB by default)
 *   sent I NBYTES SHA256
 *   received I NBYTES SHA256
 *   closed I STATE
 *   result I {JSON}                 (bytes, SHA-256, ms, socket.info().mptcp at EOF and at close)
 *   done {JSON}                     (stack.stats().mptcp and the stack's non-zero counters)
 * Exits non-zero with a message on stderr on any failure (a timeout included).
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RealScheduler } from '../../src/stack/device/clock.js';
import { openTun } from '../../src/stack/device/tun-device.js';
import { parseAddress } from '../../src/stack/iface/address.js';
import { stackCounterSet, TcpStack } from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../src/stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../src/stack/mptcp/counters.js';
import type { MptcpConfig } from '../../src/stack/mptcp/types.js';
import { tcpCounterSet } from '../../src/stack/tcp/counters.js';
import { releaseChunk } from '../../src/stack/tcp/slab-pool.js';
import { fail, labChunks, say } from './mptcp-lab.js';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    tun: { type: 'string', default: 'mpt-peer' },
    addr: { type: 'string', multiple: true, default: [] },
    host: { type: 'string' },
    port: { type: 'string' },
    local: { type: 'string' },
    bytes: { type: 'string', default: '0' },
    send: { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    conns: { type: 'string', default: '1' },
    announce: { type: 'string', multiple: true, default: [] },
    'no-cflag': { type: 'boolean', default: false },
    tcp: { type: 'boolean', default: false },
    checksum: { type: 'boolean', default: false },
    offload: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '60' },
    progress: { type: 'string', default: String(8 << 20) },
    backup: { type: 'string', multiple: true, default: [] },
    'stale-rtos': { type: 'string' },
    tick: { type: 'string', default: '0' },
    gaps: { type: 'boolean', default: false },
    control: { type: 'boolean', default: false },
  },
});
const role = positionals[0];
if (role !== 'client' && role !== 'server') fail('usage: mptcp-user-peer.ts client|server [options]');
if (o.addr.length === 0) fail('at least one --addr');
const port = Number(o.port);
if (!Number.isInteger(port) || port <= 0) fail('--port is required');
const seed = Number(o.seed);

const watchdog = setTimeout(() => fail(`timed out after ${o.timeout} s`), Number(o.timeout) * 1000);
watchdog.unref();

const v6 = o.addr.some((a) => a.includes(':'));
const tun = openTun({ name: o.tun, offload: o.offload, disableIpv6: !v6 });
for (const a of o.addr) {
  execFileSync('ip', [...(a.includes(':') ? ['-6'] : []), 'route', 'replace', a, 'dev', tun.name]);
}
const stack = new TcpStack({ device: tun, scheduler: new RealScheduler(), addresses: o.addr });
say('up', tun.name, ...o.addr);

const mptcp: Partial<MptcpConfig> | false = o.tcp
  ? false
  : {
      checksum: o.checksum,
      backupAddresses: o.backup.map((a) => parseAddress(a)),
      ...(o['stale-rtos'] === undefined ? {} : { staleAfterRtos: Number(o['stale-rtos']) }),
      ...(role === 'server'
        ? { cFlag: !o['no-cflag'], announce: o.announce.map((a) => ({ address: parseAddress(a) })) }
        : {}),
    };

function mptcpInfo(s: TcpSocket): MptcpInfo | undefined {
  return (s.info() as { mptcp?: MptcpInfo }).mptcp;
}

function describe(s: TcpSocket): string {
  const m = mptcpInfo(s);
  if (m === undefined) return 'proto=tcp token=none';
  if (m.fallback) return 'proto=fallback token=none';
  return `proto=mptcp token=${m.localToken.toString(16).padStart(8, '0')}`;
}

interface Result {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
  ms: number;
  /** The largest gap between two arrivals of new bytes (ms), and Date.now() when it ended. */
  maxGapMs: number;
  gapEndAt: number;
  atEof: MptcpInfo | undefined;
  atClose: MptcpInfo | undefined;
  state: string;
}

/**
 * One connection: hash what arrives (until EOF), send `sendBytes` (before or after EOF), end,
 * and wait until the connection itself is closed, not only the stream.
 */
async function run(i: number, s: TcpSocket, sendBytes: number, sendFirst: boolean): Promise<void> {
  const t0 = performance.now();
  const rx = createHash('sha256');
  let received = 0;
  let sentSoFar = 0;
  const every = Number(o.progress);
  let nextProgress = every;
  const progress = () => {
    while (sentSoFar + received >= nextProgress) {
      say('progress', i, sentSoFar, received, Math.round(performance.now() - t0));
      nextProgress += every;
    }
  };
  let atEof: MptcpInfo | undefined;
  const closed = new Promise<void>((resolve, reject) => {
    s.once('close', () => resolve());
    s.once('error', (err) => reject(err));
  });
  const tick = Number(o.tick) > 0 ? ticking(i, s) : undefined;
  let last: number | undefined;
  let maxGapMs = 0;
  let gapEndAt = 0;
  const eof = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      const now = performance.now();
      if (last !== undefined && now - last > maxGapMs) {
        maxGapMs = now - last;
        gapEndAt = Date.now();
      }
      if (o.gaps && last !== undefined && now - last >= 50) say('gap', i, Math.round(now - last), Date.now());
      last = now;
      rx.update(d);
      releaseChunk(d); // hashed, never read again: its slab can be reused
      received += d.length;
      progress();
    });
    s.once('end', () => {
      atEof = structuredClone(mptcpInfo(s));
      resolve();
    });
  });
  const send = async () => {
    const tx = createHash('sha256');
    for (const chunk of labChunks(seed, sendBytes)) {
      tx.update(chunk);
      sentSoFar += chunk.length;
      if (!s.write(chunk)) {
        await new Promise<void>((resolve, reject) => {
          const onErr = (e: Error) => reject(e);
          s.once('error', onErr);
          s.once('drain', () => {
            s.off('error', onErr);
            resolve();
          });
        });
      }
      progress();
    }
    const sha = tx.digest('hex');
    await new Promise<void>((resolve) => s.end(resolve));
    say('sent', i, sendBytes, sha);
    return sha;
  };
  let sentSha: string;
  const whole = async () => {
    if (sendFirst) {
      sentSha = await send();
      await eof;
    } else {
      await eof;
      sentSha = await send();
    }
    const rxSha = rx.digest('hex');
    say('received', i, received, rxSha);
    await closed;
    return rxSha;
  };
  const how = await Promise.race([whole(), quit.then(() => undefined)]);
  if (tick !== undefined) clearInterval(tick);
  if (how === undefined) {
    // Given up with the stack: its reset is expected, and said.
    closed.then(
      () => say('closed-after-quit', i),
      (e: Error & { code?: string }) => say('reset-after-quit', i, e.code ?? e.message),
    );
    return;
  }
  const rxSha = how;
  const ms = performance.now() - t0;
  // The stream closed; the connection may still be acknowledging the last DATA_FIN. No event
  // says when it is gone, so look a bounded number of times.
  for (let k = 0; k < 200 && s.state !== 'closed'; k++) await new Promise((r) => setTimeout(r, 10));
  say('closed', i, s.state);
  const result: Result = {
    sent: { bytes: sendBytes, sha256: sentSha! },
    received: { bytes: received, sha256: rxSha },
    ms,
    maxGapMs,
    gapEndAt,
    atEof,
    atClose: structuredClone(mptcpInfo(s)),
    state: s.state,
  };
  say('result', i, JSON.stringify(result));
}

/** Every --tick ms, a `tick` line: connection i's subflows and the stack's counters. */
function ticking(i: number, s: TcpSocket): NodeJS.Timeout {
  return setInterval(() => {
    const m = mptcpInfo(s);
    const c = stack.stats().mptcp;
    const subflows = (m?.subflows ?? []).map((f) => ({
      id: f.id,
      local: f.local,
      remote: f.remote,
      est: f.fullyEstablished,
      backup: f.backup,
      state: f.info.state,
      sent: f.info.bytesSent,
      acked: f.info.bytesAcked,
      rx: f.info.bytesReceived,
    }));
    const pm =
      c === undefined
        ? {}
        : {
            SubflowStale: c.SubflowStale,
            SubflowRecover: c.SubflowRecover,
            backupTakeover: c.backupTakeover,
            staleSubflowsReplaced: c.staleSubflowsReplaced,
            joinRetries: c.joinRetries,
            subflowsRecreated: c.subflowsRecreated,
            RmAddrTx: c.RmAddrTx,
            RmSubflow: c.RmSubflow,
            reinjectedBytes: c.reinjectedBytes,
          };
    say('tick', i, Date.now(), JSON.stringify({ subflows, pm }));
  }, Number(o.tick));
}

/** --control: stdin lines (see the file comment); `quit` resolves this. */
let onQuit: () => void = () => undefined;
const quit = new Promise<void>((resolve) => {
  onQuit = resolve;
});
const stdinEnd = o.control
  ? new Promise<void>((resolve) => process.stdin.once('end', () => resolve()))
  : Promise.resolve();
const input = o.control ? createInterface({ input: process.stdin }) : undefined;
if (input !== undefined) {
  input.on('line', (line) => {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'quit') {
      say('quit', Date.now());
      onQuit();
      return;
    }
    const [cmd, addr] = words;
    if ((cmd !== 'down' && cmd !== 'up') || addr === undefined) fail(`bad command: ${line}`);
    stack.setAddressState(addr, cmd);
    say('state', addr, cmd, Date.now());
  });
}

async function finish(): Promise<void> {
  if (input !== undefined && role === 'server') {
    // The stack (its TIME-WAIT and last ACKs) stays until the test is done with the client.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stdinEnd, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  }
  input?.close();
  const st = stack.stats();
  const report = {
    mptcp: st.mptcp === undefined ? undefined : mptcpCounterSet.nonZero(st.mptcp),
    stack: stackCounterSet.nonZero(st.counters),
    tcp: tcpCounterSet.nonZero(st.tcp),
    parseErrors: Object.fromEntries(Object.entries(st.parseErrors).filter(([, n]) => n !== 0)),
  };
  say('done', JSON.stringify(report));
  stack.destroy();
  await tun.close();
  clearTimeout(watchdog);
}

async function client(): Promise<void> {
  if (o.host === undefined) fail('--host is required');
  const s = stack.connect({
    host: o.host,
    port,
    allowHalfOpen: true,
    ...(o.local === undefined ? {} : { localAddress: o.local }),
    ...(mptcp === false ? {} : { mptcp }),
  });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', (err) => reject(err));
  });
  say('connected', 0, s.localAddress, s.localPort, describe(s));
  await run(0, s, Number(o.bytes), true);
}

async function server(): Promise<void> {
  const want = Number(o.conns);
  let n = 0;
  const runs: Promise<void>[] = [];
  await new Promise<void>((resolve, reject) => {
    const srv = stack.listen(
      { port, allowHalfOpen: true, ...(mptcp === false ? {} : { mptcp }) },
      (s: TcpSocket) => {
        const i = n++;
        say('accepted', i, s.remoteAddress, s.remotePort, describe(s));
        runs.push(run(i, s, Number(o.send), false));
        if (n >= want) {
          srv.close();
          Promise.all(runs).then(() => resolve(), reject);
        }
      },
    );
    say('listening', port);
  });
}

try {
  if (role === 'client') await client();
  else await server();
  await finish();
} catch (err) {
  fail(`${role}: ${(err as Error).stack ?? String(err)}`);
}
