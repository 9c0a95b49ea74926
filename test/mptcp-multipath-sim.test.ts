/**
 * The two-path simulator (test/support/multipath-sim.ts): each subflow crosses its own seeded
 * path, runs are deterministic, and the kernel's simult_flows.sh matrix runs with SHA-256 equal.
 *
 * simult_flows.sh's pass limit (size·8·10/(9·(r1+r2)) ms + 450 ms) is asserted for every case
 * with our default (lowest-RTT scheduler, coupled OLIA with HyStart++), SHA-256 equal both
 * ways and both paths used. `npm run bench -- --only multipath` prints each figure beside the limit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slabPoolStats } from '../src/stack/tcp/slab-pool.js';
import {
  MP_CLIENT_ADDRS,
  MP_UNIQUE,
  MP_VIP,
  MultipathSim,
  patternBytes,
  runSimultCase,
  SIMULT_FLOWS_CASES,
  SIMULT_LARGE,
  simultLimitMs,
  simultTransfer,
} from './support/multipath-sim.js';

describe('two-path simulator', () => {
  it("simult_flows.sh's limit: 16 MiB over 10+10 Mbit/s in 7906 ms", () => {
    assert.equal(simultLimitMs(SIMULT_LARGE, [10, 10]), 7906);
    assert.equal(simultLimitMs(SIMULT_LARGE, [15, 5]), 7906);
  });

  it('direct mode: one subflow per path, each path carries exactly its subflow', async () => {
    const sim = new MultipathSim({
      seed: 3,
      paths: [
        { rateMbit: 20, delayMs: 5 },
        { rateMbit: 20, delayMs: 10 },
      ],
    });
    const r = await simultTransfer(sim, patternBytes(3, 2 << 20), patternBytes(4, 1 << 20), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
    const client = r.subflows.filter((s) => s.side === 'client');
    assert.deepEqual(
      client.map((s) => [s.path, s.role, s.remote.split(':')[0]]),
      [
        [0, 'initial', MP_VIP],
        [1, 'join', MP_VIP],
      ],
    );
    for (const s of client) {
      // What the path delivered upward is this subflow's payload plus headers (no other subflow).
      const up = r.paths.find((p) => p.path === s.path && p.dir === 'up')!;
      assert.ok(s.bytesSent > 0, `path ${s.path} carried data`);
      assert.ok(up.deliveredBytes >= s.bytesSent, `path ${s.path}: ${up.deliveredBytes} >= ${s.bytesSent}`);
      assert.ok(up.deliveredBytes < s.bytesSent * 1.1 + 20_000, `path ${s.path}: only its own subflow`);
    }
    assert.equal(sim.clientMux.unrouted + sim.serverMux.unrouted, 0);
  });

  it('lb mode: C flag on the VIP, ADD_ADDR of the unique address, joins from both paths to it', async () => {
    const sim = new MultipathSim({ seed: 4, mode: 'lb', paths: [{ rateMbit: 20 }, { rateMbit: 20 }] });
    const r = await simultTransfer(sim, patternBytes(5, 1 << 20), patternBytes(6, 1 << 20), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
    const client = r.subflows.filter((s) => s.side === 'client');
    assert.deepEqual(client.map((s) => [s.local.split(':')[0], s.remote.split(':')[0]]).sort(), [
      [MP_CLIENT_ADDRS[0], MP_VIP],
      [MP_CLIENT_ADDRS[0], MP_UNIQUE],
      [MP_CLIENT_ADDRS[1], MP_UNIQUE],
    ]);
    assert.equal(r.mib.client.joinsSkippedCFlag, 1); // no join to the C-flagged VIP
    assert.equal(r.mib.server.MPJoinAckRx, 2);
  });

  it('same seed, same options: the same packet trace and the same time', async () => {
    const once = async () => {
      const sim = new MultipathSim({
        seed: 9,
        paths: [
          { rateMbit: 15, delayMs: 2, drop: 0.01 },
          { rateMbit: 5, delayMs: 20, drop: 0.01 },
        ],
      });
      return simultTransfer(sim, patternBytes(7, 1 << 20), patternBytes(8, 256 << 10), 60_000);
    };
    const a = await once();
    const b = await once();
    assert.equal(a.clientToServer.receivedSha256, a.clientToServer.sentSha256);
    assert.equal(a.traceHash, b.traceHash);
    assert.equal(a.elapsedMs, b.elapsedMs);
    assert.ok(
      a.paths.some((p) => p.dropped > 0),
      'the seeded loss happened',
    );
  });
});

describe("simult_flows.sh's matrix over two simulated paths (16 MiB, direct mode)", () => {
  for (const c of SIMULT_FLOWS_CASES) {
    for (const direction of ['upload', 'download'] as const) {
      it(`${c.name}, ${direction}: SHA-256 equal, both paths used, within simult_flows.sh's limit`, async () => {
        const r = await runSimultCase(c, direction);
        assert.ok(r.shaEqual);
        const sender = r.result.subflows.filter(
          (s) => s.side === (direction === 'upload' ? 'client' : 'server'),
        );
        for (const path of [0, 1]) {
          const sent = sender.filter((s) => s.path === path).reduce((n, s) => n + s.bytesSent, 0);
          assert.ok(sent > SIMULT_LARGE / 50, `path ${path} carried ${sent} bytes`);
        }
        assert.ok(r.elapsedMs <= r.limitMs, `${r.elapsedMs} ms, limit ${r.limitMs} ms`);
      });
    }
  }
  it('the receive slabs were reused (the sinks release what they hashed), none released twice', () => {
    const pool = slabPoolStats();
    assert.equal(pool.overReleased, 0);
    assert.ok(pool.reused > 10 * pool.allocated, `${pool.reused} reuses of ${pool.allocated} slabs`);
  });
});
