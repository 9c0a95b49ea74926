/**
 * The end of an MPTCP connection between two of our stacks comes promptly at both ends (RFC 8684
 * §3.3.3): each end reads EOF as soon as the peer's DATA_FIN follows its last byte, and the
 * connection is closed (socket.state 'closed', MPCurrEstab back to 0, its token released) once
 * both DATA_FINs are DATA_ACKed, not when its subflows leave TIME-WAIT a minute later.
 * 1. Simulator, two paths: the close sequence with its timings, and a lost DATA_FIN retransmitted.
 * 2. Namespaces: our client and our server each on a TUN over the lab's two paths (as
 *    test/mptcp-failover.test.ts), data both ways, the stamps of test/support/close-prompt-peer.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../src/stack/mptcp/connection.js';
import { parseIpv4 } from '../src/stack/wire/ipv4.js';
import { parseTcp } from '../src/stack/wire/tcp.js';
import { twoPathTopology } from './support/mptcp-lab.js';
import {
  plumbUserClient,
  plumbUserServer,
  userClientAddr,
  userServerAddr,
} from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start } from './support/perf-lab.js';
import { SIM_CLIENT, SIM_SERVER, Sim, seededBytes } from './support/sim.js';

const CLIENT2 = '10.0.0.3';

/** Whether a frame is a TCP segment carrying a DATA_FIN. */
function carriesDataFin(data: Uint8Array): boolean {
  const ip = parseIpv4(data, 0, false);
  if (!ip.ok) return false;
  const tcp = parseTcp(data, ip.value.headerLength, ip.value.totalLength);
  return (
    tcp.ok &&
    tcp.value.options.some((o) => o.type === 'mptcp' && o.option.subtype === 'dss' && o.option.dataFin)
  );
}

/** Drops server → client frames that `drop` picks (before the fault device sees them). */
function dropServerFrames(sim: Sim, drop: (data: Uint8Array) => boolean): void {
  const dev = sim.serverFault as unknown as { write: (frames: { data: Uint8Array }[]) => boolean };
  const write = dev.write.bind(dev);
  dev.write = (frames) => write(frames.filter((f) => !drop(f.data)));
}

interface SimEnd {
  lastByteAt: number;
  endAt: number;
  connClosedAt: number;
}

/**
 * Client → server `up` bytes then the client's end; the server answers with `down` bytes and its
 * end once it has read everything (as a request/response app does). Runs until both connections
 * are closed (or `limitMs` of simulated time) and returns when each end saw what.
 */
async function exchange(sim: Sim, up: number, down: number, limitMs = 30_000) {
  const t = () => sim.clock.now();
  const cli: SimEnd = { lastByteAt: 0, endAt: 0, connClosedAt: 0 };
  const srv: SimEnd = { lastByteAt: 0, endAt: 0, connClosedAt: 0 };
  const upData = seededBytes(1, up);
  const downData = seededBytes(2, down);
  const got = { up: createHash('sha256'), down: createHash('sha256') };
  let server: TcpSocket | undefined;
  const listener = sim.server.listen(
    { port: 5401, allowHalfOpen: true, mptcp: { cFlag: false } },
    (s: TcpSocket) => {
      server = s;
      s.on('data', (d: Buffer) => {
        got.up.update(d);
        srv.lastByteAt = t();
      });
      s.on('end', () => {
        srv.endAt = t();
        s.end(downData);
      });
    },
  );
  const client = sim.client.connect({
    host: SIM_SERVER,
    port: 5401,
    localAddress: SIM_CLIENT,
    allowHalfOpen: true,
    mptcp: true,
  });
  client.on('data', (d: Buffer) => {
    got.down.update(d);
    cli.lastByteAt = t();
  });
  client.on('end', () => {
    cli.endAt = t();
  });
  client.end(upData);
  let subflows = 0;
  await sim.run(() => {
    subflows = Math.max(subflows, (client.info() as { mptcp?: MptcpInfo }).mptcp?.subflows.length ?? 0);
    if (cli.connClosedAt === 0 && client.state === 'closed') cli.connClosedAt = t();
    if (srv.connClosedAt === 0 && server?.state === 'closed') srv.connClosedAt = t();
    return cli.connClosedAt > 0 && srv.connClosedAt > 0;
  }, limitMs);
  listener.close();
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  assert.equal(got.up.digest('hex'), sha(upData), 'the server read every byte');
  assert.equal(got.down.digest('hex'), sha(downData), 'the client read every byte');
  return { cli, srv, subflows, client, server: server! };
}

describe('the end of a connection in the simulator', () => {
  for (const paths of [1, 2]) {
    it(`${paths} path(s): EOF right after the last byte at each end; both closed once the DATA_FINs are DATA_ACKed`, async () => {
      const sim = new Sim({
        seed: 10 + paths,
        forward: { rateBytesPerSec: 12e6, delayMs: 5 },
        reverse: { rateBytesPerSec: 12e6, delayMs: 5 },
        clientAddresses: paths === 2 ? [CLIENT2] : [],
      });
      const { cli, srv, subflows, client } = await exchange(sim, 2 << 20, 256 << 10);
      const report = `client ${JSON.stringify(cli)} server ${JSON.stringify(srv)} (simulated ms)`;
      assert.equal(subflows, paths);
      // The DATA_FIN follows the last bytes at once (before: when every subflow had data queued
      // as it became due, one subflow always, it waited for its 1 s retransmission timer).
      assert.ok(srv.endAt - srv.lastByteAt <= 20, report);
      assert.ok(cli.endAt - cli.lastByteAt <= 20, report);
      // Closed at both ends within a round trip of the last DATA_FIN (before: a minute later, when
      // the last subflow left TIME-WAIT).
      assert.ok(cli.connClosedAt - cli.endAt <= 30, report);
      assert.ok(srv.connClosedAt - cli.endAt <= 30, report);
      assert.equal(sim.client.stats().mptcp!.MPCurrEstab, 0);
      assert.equal(sim.server.stats().mptcp!.MPCurrEstab, 0);
      // The subflows close in order behind it and leave the table after TIME-WAIT.
      const states = (client.info() as { mptcp?: MptcpInfo }).mptcp!.subflows.map((s) => s.info.state);
      assert.ok(
        states.every((s) => s !== 'ESTABLISHED' && s !== 'CLOSE-WAIT'),
        `subflows: ${states.join()}`,
      );
      await sim.runFor(61_000);
      assert.equal(sim.client.connectionCount, 0);
      assert.equal(sim.server.connectionCount, 0);
    });
  }

  it("the server's DATA_FIN lost on every subflow: its retransmission ends the client's stream", async () => {
    const sim = new Sim({
      seed: 12,
      forward: { rateBytesPerSec: 3e6, delayMs: 10 },
      reverse: { rateBytesPerSec: 3e6, delayMs: 10 },
      clientAddresses: [CLIENT2],
    });
    // Every DATA_FIN the server sends in the first 300 ms after the first (one per subflow, and
    // those behind a subflow's last data) is lost; its retransmission timer's is not.
    let dropped = 0;
    let firstDropAt = 0;
    dropServerFrames(sim, (data) => {
      if (!carriesDataFin(data) || (dropped > 0 && sim.clock.now() - firstDropAt > 300)) return false;
      if (dropped++ === 0) firstDropAt = sim.clock.now();
      return true;
    });
    const { cli, srv } = await exchange(sim, 256 << 10, 64 << 10);
    const report = `dropped ${dropped} at ${firstDropAt}; client ${JSON.stringify(cli)} server ${JSON.stringify(srv)}`;
    assert.ok(dropped >= 2, report);
    // The DATA_FIN goes again after its retransmission timeout (1 s), not a subflow's FIN later.
    assert.ok(cli.endAt - firstDropAt >= 900 && cli.endAt - firstDropAt <= 1500, report);
    assert.ok(cli.connClosedAt - cli.endAt <= 50, report);
    assert.ok(srv.connClosedAt - cli.endAt <= 50, report);
  });
});

// ------------------------------------------------------------------ namespaces

const PEER = fileURLToPath(new URL('./support/close-prompt-peer.ts', import.meta.url));
const lab = new NetnsLab();
after(() => lab.cleanup());

interface PeerResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
  state: string;
  lastByteAt: number;
  endAt: number;
  endedAt: number;
  closeAt: number;
  connClosedAt: number;
}

function peer(ns: string, role: 'client' | 'server', args: string[]): Run {
  return start(lab, ns, process.execPath, ['--import', 'tsx', PEER, role, ...args]);
}

async function result(run: Run): Promise<PeerResult> {
  const m = await run.waitFor(/^result (.*)\n/m, 40_000);
  return JSON.parse(m[1]!) as PeerResult;
}

describe('the end of a connection in namespaces', () => {
  it('our client and our server over two paths: both see the end and the close promptly', async (t) => {
    const topo = twoPathTopology(lab, { tag: 'cp' });
    plumbUserClient(lab, topo);
    plumbUserServer(lab, topo);
    const c1 = userClientAddr(1, 'v4');
    const c2 = userClientAddr(2, 'v4');
    const s1 = userServerAddr(1, 'v4');
    const s2 = userServerAddr(2, 'v4');
    const up = 16 << 20;
    const down = 4 << 20;
    const server = peer(topo.srv, 'server', [
      ...['--tun', 'cps', '--addr', s1, '--addr', s2, '--port', '5401', '--send', String(down)],
    ]);
    await server.waitFor(/^listening /m, 20_000);
    const client = peer(topo.cli, 'client', [
      ...['--tun', 'cpc', '--addr', c1, '--addr', c2, '--host', s1, '--port', '5401', '--local', c1],
      ...['--bytes', String(up)],
    ]);
    const [cli, srv] = await Promise.all([result(client), result(server)]);
    client.child.stdin!.end();
    server.child.stdin!.end();
    const [cd, sd] = await Promise.all([client.done(15_000), server.done(15_000)]);
    assert.equal(cd.code, 0, client.stderr());
    assert.equal(sd.code, 0, server.stderr());
    const cm = JSON.parse(/^done (.*)$/m.exec(client.stdout())![1]!) as Record<string, number>;
    const sm = JSON.parse(/^done (.*)$/m.exec(server.stdout())![1]!) as Record<string, number>;
    // What each end saw after the last byte it read (the server closes once the client's
    // DATA_ACK of its DATA_FIN arrives: after the client read its last byte).
    const figures = {
      serverEofAfterLastByte: srv.endAt - srv.lastByteAt,
      clientEofAfterLastByte: cli.endAt - cli.lastByteAt,
      clientClosedAfterLastByte: cli.connClosedAt - cli.lastByteAt,
      serverClosedAfterClientLastByte: srv.connClosedAt - cli.lastByteAt,
    };
    const report = `ms: ${JSON.stringify(figures)}; client ${JSON.stringify(cm)}; server ${JSON.stringify(sm)}`;
    t.diagnostic(report);
    assert.equal(srv.received.bytes, up);
    assert.equal(srv.received.sha256, cli.sent.sha256);
    assert.equal(cli.received.bytes, down);
    assert.equal(cli.received.sha256, srv.sent.sha256);
    assert.equal(cm.MPJoinSynAckRx, 1, `the client joined from its second address: ${report}`);
    assert.equal(cli.state, 'closed', report);
    assert.equal(srv.state, 'closed', report);
    // Generous guards for a noisy 2-core machine (the figures are in the report: a few ms).
    // (Two processes' Date.now(): a few ms either way.)
    for (const [what, ms] of Object.entries(figures)) assert.ok(ms > -100 && ms < 3000, `${what}: ${report}`);
    assert.equal(cm.MPCurrEstab ?? 0, 0, report);
    assert.equal(sm.MPCurrEstab ?? 0, 0, report);
  });
});
