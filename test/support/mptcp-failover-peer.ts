/**
 * OUR stack as a process for the failover tests (test/mptcp-failover.test.ts,
 * mptcp-backup-netns.test.ts, mptcp-failover-kernel.test.ts): a TUN in the current namespace
 * (start it with `ip netns exec`), the lab's deterministic payload (labBytes()/labSha256() in
 * mptcp-lab.ts), and what those tests measure:
 *
 *   server --tun T --addr A [--addr B] --port P [--tick MS] [--timeout SEC]
 *       Listens with MPTCP on every --addr (no C flag: the client joins the initial address from
 *       its other one), receives one connection until EOF, then closes. A `tick` line (as the
 *       client's) every --tick ms while the connection lives. Prints
 *       `result {JSON}`: bytes, SHA-256, and the largest gap between two arrivals of new bytes
 *       (wall-clock ms; `gapEndAt` is Date.now() when it ended); `gap MS END` for each gap of
 *       50 ms or more as it ends (END = Date.now()). The stack stays until stdin
 *       closes (at most 10 s more), so the client's last segments are still answered.
 *   client --tun T --addr A [--addr B] --host H --port P --local A --bytes N --seed S
 *          [--backup ADDR] [--stale-rtos N] [--tick MS] [--timeout SEC]
 *       Connects with MPTCP from --local (--backup: that local address's subflows are MP_PRIO
 *       backups; --stale-rtos: MptcpConfig.staleAfterRtos), sends N bytes, shuts down, waits for
 *       EOF and close, or for a `quit` line on stdin.
 *       Every --tick ms: `tick NOW {JSON}` (NOW = Date.now(); each subflow's id, local and remote,
 *       fully established, backup, bytes sent, acknowledged and received; the path manager's and the
 *       scheduler's counters).
 *       Reads stdin lines `down ADDR` / `up ADDR`: TcpStack.setAddressState, answered `state ADDR
 *       down|up NOW` (what `mptun client --path IFACE` does when the interface changes).
 * Both end with `done {JSON}` (the stack's non-zero MPTCP counters). Exits non-zero on failure.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RealScheduler } from '../../src/stack/device/clock.js';
import { openTun } from '../../src/stack/device/tun-device.js';
import { parseAddress } from '../../src/stack/iface/address.js';
import { TcpStack } from '../../src/stack/iface/stack.js';
import type { TcpSocket } from '../../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../../src/stack/mptcp/connection.js';
import { mptcpCounterSet } from '../../src/stack/mptcp/counters.js';
import type { MptcpConfig } from '../../src/stack/mptcp/types.js';

const CHUNK = 1 << 20;

function say(...words: (string | number)[]): void {
  process.stdout.write(`${words.join(' ')}\n`);
}

function fail(msg: string): never {
  process.stderr.write(`${msg}\n`);
  process.exit(2);
}

/** The lab stream (as mptcp-peer.py): chunk k is the first MiB of SHAKE128("mptun-lab:<seed>:<k>"). */
function* labChunks(seed: number, nbytes: number): Generator<Buffer> {
  for (let k = 0; k * CHUNK < nbytes; k++) {
    const c = createHash('shake128', { outputLength: CHUNK }).update(`mptun-lab:${seed}:${k}`).digest();
    yield c.subarray(0, Math.min(CHUNK, nbytes - k * CHUNK));
  }
}

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    tun: { type: 'string', default: 'mpt-fo' },
    addr: { type: 'string', multiple: true, default: [] },
    host: { type: 'string' },
    port: { type: 'string' },
    local: { type: 'string' },
    bytes: { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    tick: { type: 'string', default: '100' },
    backup: { type: 'string', multiple: true, default: [] },
    'stale-rtos': { type: 'string' },
    timeout: { type: 'string', default: '40' },
  },
});
const role = positionals[0];
if (role !== 'client' && role !== 'server') fail('usage: mptcp-failover-peer.ts client|server [options]');
if (o.addr.length === 0) fail('at least one --addr');
const port = Number(o.port);
if (!Number.isInteger(port) || port <= 0) fail('--port is required');

const watchdog = setTimeout(() => fail(`timed out after ${o.timeout} s`), Number(o.timeout) * 1000);
watchdog.unref();

const tun = openTun({ name: o.tun, offload: false, disableIpv6: true });
for (const a of o.addr) execFileSync('ip', ['route', 'replace', a, 'dev', tun.name]);
const stack = new TcpStack({ device: tun, scheduler: new RealScheduler(), addresses: o.addr });
say('up', tun.name, ...o.addr);

function mptcpInfo(s: TcpSocket): MptcpInfo | undefined {
  return (s.info() as { mptcp?: MptcpInfo }).mptcp;
}

/** Every --tick ms, a `tick` line: the connection's subflows and the stack's counters. */
function ticking(s: TcpSocket): NodeJS.Timeout {
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
    say('tick', Date.now(), JSON.stringify({ subflows, pm }));
  }, Number(o.tick));
}

function closed(s: TcpSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('close', () => resolve());
    s.once('error', reject);
  });
}

async function finish(): Promise<void> {
  const m = stack.stats().mptcp;
  say('done', JSON.stringify(m === undefined ? {} : mptcpCounterSet.nonZero(m)));
  stack.destroy();
  await tun.close();
  clearTimeout(watchdog);
}

async function server(): Promise<void> {
  const s = await new Promise<TcpSocket>((resolve) => {
    const srv = stack.listen({ port, allowHalfOpen: true, mptcp: { cFlag: false } }, (sock: TcpSocket) => {
      srv.close();
      resolve(sock);
    });
    say('listening', port);
  });
  const done = closed(s);
  const tick = ticking(s);
  const hash = createHash('sha256');
  let bytes = 0;
  let last: number | undefined;
  let maxGapMs = 0;
  let gapEndAt = 0;
  await new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      const now = performance.now();
      if (last !== undefined && now - last > maxGapMs) {
        maxGapMs = now - last;
        gapEndAt = Date.now();
      }
      if (last !== undefined && now - last >= 50) say('gap', Math.round(now - last), Date.now());
      last = now;
      hash.update(d);
      bytes += d.length;
    });
    s.once('end', () => resolve());
  });
  s.end();
  await done;
  clearInterval(tick);
  say('result', JSON.stringify({ bytes, sha256: hash.digest('hex'), maxGapMs, gapEndAt }));
  // The stack (its TIME-WAIT and last ACKs) stays until the test is done with the client: stdin
  // closes (or 10 s pass).
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 10_000);
    process.stdin.once('end', () => {
      clearTimeout(t);
      resolve();
    });
    process.stdin.resume();
  });
}

async function client(): Promise<void> {
  if (o.host === undefined || o.local === undefined) fail('--host and --local are required');
  const mptcp: Partial<MptcpConfig> = {
    backupAddresses: o.backup.map((a) => parseAddress(a)),
    ...(o['stale-rtos'] === undefined ? {} : { staleAfterRtos: Number(o['stale-rtos']) }),
  };
  const s = stack.connect({ host: o.host, port, localAddress: o.local, allowHalfOpen: true, mptcp });
  const done = closed(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  say('connected', s.localAddress, s.localPort);
  const tick = ticking(s);
  const input = createInterface({ input: process.stdin });
  let onQuit: () => void = () => undefined;
  const quit = new Promise<void>((resolve) => {
    onQuit = resolve;
  });
  input.on('line', (line) => {
    if (line.trim() === 'quit') return onQuit();
    const [cmd, addr] = line.trim().split(/\s+/);
    if ((cmd !== 'down' && cmd !== 'up') || addr === undefined) fail(`bad command: ${line}`);
    stack.setAddressState(addr, cmd);
    say('state', addr, cmd, Date.now());
  });
  s.resume(); // nothing comes back but the end
  const eof = new Promise<void>((resolve) => s.once('end', () => resolve()));
  const tx = createHash('sha256');
  for (const chunk of labChunks(Number(o.seed), Number(o.bytes))) {
    tx.update(chunk);
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
  }
  s.end();
  say('sent', Number(o.bytes), tx.digest('hex'));
  // The server's DATA_FIN, or the test's `quit` once the server has everything (see the README
  // of the test: the end of a connection between our two stacks can take long in namespaces).
  const how = await Promise.race([eof.then(() => done).then(() => 'closed'), quit.then(() => 'quit')]);
  say('finished', how, Date.now());
  if (how === 'quit') {
    // The connection is given up with the stack: its reset is expected, and said.
    done.then(
      () => say('closed-after-quit'),
      (e: Error & { code?: string }) => say('reset-after-quit', e.code ?? e.message),
    );
  }
  clearInterval(tick);
  input.close();
}

try {
  if (role === 'client') await client();
  else await server();
  await finish();
} catch (err) {
  fail(`${role}: ${(err as Error).stack ?? String(err)}`);
}
