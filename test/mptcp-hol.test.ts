/**
 * Head-of-line blocking across subflows, in the two-path simulator (test/support/multipath-sim.ts).
 * A 10 ms and a 200 ms RTT path: the connection-level receive window fills behind the oldest
 * byte, held by the slow subflow, and the fast one idles. Opportunistic retransmission sends that
 * byte again on the fast subflow, and the slow subflow's window is cut where it keeps happening
 * (counted opportunisticRetrans / holPenalties), so the pair never does worse than the 10 ms
 * path alone (RFC 6356 goal 1; issue 7 must-show 2). And a subflow whose path goes quiet is
 * marked stale (its data moved at once) and comes back when it carries ACKs again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MptcpConfig } from '../src/stack/mptcp/types.js';
import { MultipathSim, type PathSpec, patternBytes, simultTransfer } from './support/multipath-sim.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

const FAST: PathSpec = { rateMbit: 10, delayMs: 5 };
const SLOW: PathSpec = { rateMbit: 10, delayMs: 100 };
const SIZE = 4 << 20;

/** Goodput (Mbit/s) of plain TCP over the fast path alone, with the same receive buffer. */
async function fastPathAlone(recvBuffer: number | undefined, size = SIZE): Promise<number> {
  const rate = (FAST.rateMbit * 1e6) / 8;
  const sim = new Sim({
    seed: 11,
    forward: { rateBytesPerSec: rate, queueLimitBytes: 1000 * 1500, delayMs: FAST.delayMs! },
    reverse: { rateBytesPerSec: rate, queueLimitBytes: 1000 * 1500, delayMs: FAST.delayMs! },
    ...(recvBuffer === undefined
      ? {}
      : { tcp: { recvBufferSize: recvBuffer, maxRecvBufferSize: recvBuffer } }),
  });
  const r = await simTransfer(sim, seededBytes(11, size), 60_000);
  assert.equal(r.receivedSha256, r.sentSha256);
  return r.goodputBps / 1e6;
}

async function twoPaths(mptcp: Partial<MptcpConfig>, size = SIZE, fastDrop = 0) {
  const fast = fastDrop > 0 ? { ...FAST, drop: fastDrop } : FAST;
  const sim = new MultipathSim({ seed: 11, paths: [fast, SLOW], mptcp });
  const r = await simultTransfer(sim, patternBytes(11, size), patternBytes(12, 1000), 60_000);
  assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
  assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
  return { r, mbit: (size * 8) / r.elapsedMs / 1000 };
}

describe('head-of-line blocking: a 10 ms and a 200 ms RTT path', () => {
  it('default buffers: goodput at least that of the 10 ms path alone', async () => {
    const alone = await fastPathAlone(undefined);
    const { r, mbit } = await twoPaths({});
    assert.ok(mbit >= alone, `two paths ${mbit.toFixed(2)} Mbit/s, 10 ms path alone ${alone.toFixed(2)}`);
    const slow = r.subflows.find((s) => s.side === 'client' && s.path === 1)!;
    assert.ok(slow.bytesSent > 0, 'the 200 ms path carried data');
  });

  it('a 64 KB connection-level window: the oldest data goes again on the fast subflow', async () => {
    // Without opportunistic retransmission this case measured 6.63 Mbit/s (the window held for
    // 200 ms at a time behind the slow subflow's bytes), with it 9.24; the fast path alone 9.63
    // (MPTCP's 20-byte DSS on each segment costs 1.4% of that).
    const alone = await fastPathAlone(64 << 10, 8 << 20);
    const { r, mbit } = await twoPaths({ recvBufferSize: 64 << 10 }, 8 << 20);
    const c = r.mib.client;
    const report = `two paths ${mbit.toFixed(2)} Mbit/s, 10 ms path alone ${alone.toFixed(2)}, ORT ${c.opportunisticRetrans ?? 0} (${c.opportunisticRetransBytes ?? 0} B)`;
    assert.ok((c.opportunisticRetrans ?? 0) > 0, report);
    assert.ok(mbit >= 0.95 * alone, report);
    assert.ok((c.reinjectedBytes ?? 0) >= (c.opportunisticRetransBytes ?? 0), report);
  });

  it('a 64 KB window and 1% loss on the fast path: the slow subflow holding most of it is penalised', async () => {
    // Measured: 3.62 Mbit/s without opportunistic retransmission, 6.10 with it (penalties 2).
    const { r, mbit } = await twoPaths({ recvBufferSize: 64 << 10 }, 4 << 20, 0.01);
    const c = r.mib.client;
    const report = `${mbit.toFixed(2)} Mbit/s, ORT ${c.opportunisticRetrans ?? 0}, penalties ${c.holPenalties ?? 0}`;
    assert.ok((c.holPenalties ?? 0) > 0, report);
    assert.ok((c.holPenalties ?? 0) < (c.opportunisticRetrans ?? 0), report);
    assert.ok(mbit > 5, report);
  });
});

describe('stale subflows', () => {
  it('a path that goes quiet: its subflow is stale (data moved at once), and comes back when ACKs flow again', async () => {
    const sim = new MultipathSim({
      seed: 13,
      paths: [
        { rateMbit: 10, delayMs: 5 },
        { rateMbit: 10, delayMs: 5 },
      ],
      // Stale at the first RTO (the default waits for two in a row: mptcp-stale-rtos.test.ts).
      mptcp: { staleAfterRtos: 1 },
    });
    // Path 1 loses every frame both ways from 500 ms to 800 ms (a link down and up again; shorter
    // than the path manager's 1 s after which a stale subflow is replaced by a new join).
    const down = (t: number) => t >= 500 && t < 800;
    let deliveredAfter = 0;
    for (const dev of sim.faults[1]!) {
      const write = dev.write.bind(dev);
      dev.write = (frames) => {
        const t = sim.clock.now();
        if (down(t)) return true;
        if (t >= 800) for (const f of frames) deliveredAfter += f.data.length;
        return write(frames);
      };
    }
    const size = 4 << 20;
    const r = await simultTransfer(sim, patternBytes(13, size), patternBytes(14, 1000), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    const c = r.mib.client;
    const report = `stale ${c.SubflowStale ?? 0}, recovered ${c.SubflowRecover ?? 0}, path 1 after ${deliveredAfter} B, ${r.elapsedMs} ms`;
    assert.ok((c.SubflowStale ?? 0) >= 1, report);
    assert.ok((c.SubflowRecover ?? 0) >= 1, report);
    // Back in use: path 1 carries a good part of what is left after it returns.
    assert.ok(deliveredAfter > 256 << 10, report);
    assert.equal(c.dataRtoFired ?? 0, 0, report);
    assert.equal(c.staleSubflowsReplaced ?? 0, 0, report);
  });
});
