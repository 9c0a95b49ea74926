/**
 * The path manager heals (pm.ts), in the two-path simulator (direct mode: the initial subflow on
 * path 0, a join on path 1): a path that dies without a word (every frame lost) is noticed from
 * its subflow's errors, its stale subflow replaced and re-created with backoff once the path
 * returns; a local address the configuration takes down (TcpStack.setAddressState) loses its
 * subflow at once and the peer hears REMOVE_ADDR; back up, a subflow is re-created at once.
 * Each transfer completes SHA-256 equal, and the largest gap in delivered bytes is reported.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Frame } from '../src/stack/device/device.js';
import type { TcpSocket } from '../src/stack/iface/tcp-socket.js';
import type { MptcpInfo } from '../src/stack/mptcp/connection.js';
import { backoff, REJOIN_BACKOFF_MAX_MS } from '../src/stack/mptcp/pm.js';
import { MP_CLIENT_ADDRS, MP_VIP, MultipathSim, patternBytes } from './support/multipath-sim.js';

/** Path `i` of the simulator loses every frame both ways while `dead()`. */
function cutPath(sim: MultipathSim, i: number, dead: () => boolean): void {
  for (const dev of sim.faults[i]!) {
    const write = dev.write.bind(dev);
    dev.write = (frames: readonly Frame[]) => (dead() ? true : write(frames));
  }
}

interface Run {
  sha256: string;
  received: number;
  /** Largest gap between deliveries of new bytes at the server (simulated ms). */
  maxGapMs: number;
  elapsedMs: number;
}

/**
 * Client → server upload of `data`; `during(now, info)` runs at every step of the clock (the
 * test's probes and actions).
 */
async function upload(
  sim: MultipathSim,
  data: Uint8Array,
  during: (now: number, client: TcpSocket) => void,
): Promise<Run> {
  const hash = createHash('sha256');
  let received = 0;
  let last = sim.clock.now();
  let maxGapMs = 0;
  let ended = false;
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
  };
  const listener = sim.server.listen({ port: 5201, allowHalfOpen: true, mptcp: sim.listenMptcp() }, (s) => {
    s.on('error', fail);
    s.on('data', (d: Buffer) => {
      const now = sim.clock.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      hash.update(d);
      received += d.length;
    });
    s.on('end', () => {
      ended = true;
      s.end();
    });
  });
  const start = sim.clock.now();
  const client = sim.client.connect({
    host: MP_VIP,
    port: 5201,
    localAddress: MP_CLIENT_ADDRS[0],
    allowHalfOpen: true,
    mptcp: sim.connectMptcp(),
  });
  client.on('error', fail);
  client.resume(); // nothing comes back; the stream must still flow to see its end
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const n = Math.min(64 << 10, data.length - off);
      const ok = client.write(data.subarray(off, off + n));
      off += n;
      if (!ok) return;
    }
    client.end();
  };
  client.on('drain', pump);
  client.once('connect', pump);
  await sim.run(() => {
    during(sim.clock.now(), client);
    return ended || failure !== undefined;
  }, 60_000);
  if (failure !== undefined) throw failure;
  const elapsedMs = sim.clock.now() - start;
  client.destroy();
  listener.close();
  return { sha256: hash.digest('hex'), received, maxGapMs, elapsedMs };
}

function mptcpOf(s: TcpSocket): MptcpInfo {
  return (s.info() as { mptcp: MptcpInfo }).mptcp;
}

/** Bytes acknowledged on the client's subflows from `local` (any port), established ones only. */
function ackedFrom(s: TcpSocket, local: string): number {
  let n = 0;
  for (const sf of mptcpOf(s).subflows) {
    if (sf.local.startsWith(`${local}:`) && sf.fullyEstablished) n += sf.info.bytesAcked;
  }
  return n;
}

const sha = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');

describe('MPTCP path manager: healing', () => {
  it('backs off from 0.5 s, doubling, capped at 30 s', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map(backoff),
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
    assert.equal(backoff(1000), REJOIN_BACKOFF_MAX_MS);
  });

  it('a path that dies silently: the transfer goes on, and its subflow is re-created once it returns', async (t) => {
    const sim = new MultipathSim({
      seed: 41,
      paths: [
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
      ],
    });
    const diesAt = 1000;
    const returnsAt = 3500;
    cutPath(sim, 1, () => sim.clock.now() >= diesAt && sim.clock.now() < returnsAt);
    const data = patternBytes(41, 10 << 20);
    const path1 = MP_CLIENT_ADDRS[1];
    let carriesAgainAt: number | undefined;
    const r = await upload(sim, data, (now, client) => {
      if (now < returnsAt) return;
      // A re-created subflow starts from 0: any acked byte on a fully established one is new data.
      const fresh = mptcpOf(client).subflows.some(
        (s) => s.local.startsWith(`${path1}:`) && s.fullyEstablished && s.info.bytesAcked > 0 && s.id > 1,
      );
      if (carriesAgainAt === undefined && fresh) carriesAgainAt = now;
    });
    assert.equal(r.received, data.length);
    assert.equal(r.sha256, sha(data));
    const c = sim.client.stats().mptcp!;
    const report = `gap ${r.maxGapMs} ms, again after ${(carriesAgainAt ?? Number.NaN) - returnsAt} ms, ${JSON.stringify(
      {
        SubflowStale: c.SubflowStale,
        staleSubflowsReplaced: c.staleSubflowsReplaced,
        joinRetries: c.joinRetries,
        subflowsRecreated: c.subflowsRecreated,
        reinjectedBytes: c.reinjectedBytes,
      },
    )}`;
    t.diagnostic(report);
    assert.ok(c.SubflowStale >= 1, report);
    assert.equal(c.staleSubflowsReplaced, 1, report);
    assert.ok(c.joinRetries >= 2, report); // at least one attempt into the dead path, one after
    assert.equal(c.subflowsRecreated, 1, report);
    assert.ok(carriesAgainAt !== undefined && carriesAgainAt - returnsAt <= 2000, report);
    // Generous guard: the stall is about one subflow RTO (the figure is in the report).
    assert.ok(r.maxGapMs < 1000, report);
  });

  it('an address taken down: REMOVE_ADDR, its subflow goes; back up: re-created at once', async (t) => {
    const sim = new MultipathSim({
      seed: 42,
      paths: [
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
      ],
    });
    const downAt = 1000;
    const upAt = 2000;
    const data = patternBytes(42, 8 << 20);
    const path1 = MP_CLIENT_ADDRS[1];
    let state: 'before' | 'down' | 'up' = 'before';
    let subflowsWhileDown: number | undefined;
    let carriesAgainAt: number | undefined;
    const r = await upload(sim, data, (now, client) => {
      if (state === 'before' && now >= downAt) {
        sim.client.setAddressState(path1, 'down');
        state = 'down';
      } else if (state === 'down' && now >= upAt) {
        subflowsWhileDown = mptcpOf(client).subflows.length;
        sim.client.setAddressState(path1, 'up');
        state = 'up';
      } else if (state === 'up' && carriesAgainAt === undefined && ackedFrom(client, path1) > 0) {
        carriesAgainAt = now;
      }
    });
    assert.equal(r.sha256, sha(data));
    const c = sim.client.stats().mptcp!;
    const s = sim.server.stats().mptcp!;
    const report = `gap ${r.maxGapMs} ms, again after ${(carriesAgainAt ?? Number.NaN) - upAt} ms, client ${JSON.stringify(
      {
        RmAddrTx: c.RmAddrTx,
        RmSubflow: c.RmSubflow,
        joinRetries: c.joinRetries,
        subflowsRecreated: c.subflowsRecreated,
      },
    )} server ${JSON.stringify({ RmAddr: s.RmAddr, RmSubflow: s.RmSubflow })}`;
    t.diagnostic(report);
    assert.equal(c.RmAddrTx, 1, report);
    assert.equal(c.RmSubflow, 1, report);
    assert.equal(s.RmAddr, 1, report);
    assert.equal(subflowsWhileDown, 1, report);
    assert.equal(c.joinRetries, 1, report);
    assert.equal(c.subflowsRecreated, 1, report);
    assert.ok(carriesAgainAt !== undefined && carriesAgainAt - upAt <= 500, report);
    assert.ok(r.maxGapMs < 1000, report);
  });

  it('a join from an address that is down waits for it to come up', async () => {
    const sim = new MultipathSim({
      seed: 43,
      paths: [
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
        { rateMbit: 10, delayMs: 5, queuePackets: 100 },
      ],
    });
    const path1 = MP_CLIENT_ADDRS[1];
    sim.client.setAddressState(path1, 'down');
    assert.deepEqual(sim.client.addressesDown, [path1]);
    const data = patternBytes(43, 4 << 20);
    let upDone = false;
    let joinedWhileDown = 0;
    const r = await upload(sim, data, (now, client) => {
      if (!upDone && now < 800) joinedWhileDown = Math.max(joinedWhileDown, mptcpOf(client).subflows.length);
      if (!upDone && now >= 800) {
        sim.client.setAddressState(path1, 'up');
        upDone = true;
      }
    });
    assert.equal(r.sha256, sha(data));
    const c = sim.client.stats().mptcp!;
    assert.equal(joinedWhileDown, 1);
    assert.equal(c.RmAddrTx, 0);
    assert.ok(c.MPJoinSynTx >= 1, JSON.stringify(c));
    assert.throws(() => sim.client.setAddressState('10.9.9.9', 'down'), /not one of the stack's addresses/);
  });
});
