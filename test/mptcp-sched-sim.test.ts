/**
 * Schedulers end to end in the two-path simulator (test/support/multipath-sim.ts, seeded,
 * SHA-256 equal), issue 7's must-shows for scheduling:
 * - 2: heterogeneous paths (10 ms beside 200 ms RTT; a clean path beside a 2%-loss one): each
 *   scheduler but redundant gets at least the goodput of the better path alone, measured here;
 * - 6: small request/response messages with 5% loss on both paths: redundant's 99th-percentile
 *   latency is lower than lowest-rtt's, side by side (the simulator is deterministic: no timing);
 * - 5 (simulator part): a backup subflow (MP_PRIO, from MptcpConfig.backupAddresses) carries no
 *   data while the regular path works and takes over when that path dies.
 * `npm run bench -- --only multipath` prints the same figures with 8 MiB transfers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddress } from '../src/stack/iface/address.js';
import {
  MP_CLIENT_ADDRS,
  MP_UNIQUE,
  MultipathSim,
  patternBytes,
  simultTransfer,
} from './support/multipath-sim.js';
import { bulkGoodput, HETEROGENEOUS_CASES, LOSSY_PATHS, requestResponse } from './support/sched-sim.js';

/** 3 MiB: long enough for the 200 ms path to leave slow start (2 MiB is not, worse path first). */
const SIZE = 3 << 20;

describe('schedulers over heterogeneous paths (must-show 2): goodput >= the better path alone', () => {
  for (const c of HETEROGENEOUS_CASES) {
    const alone = async () => {
      const r = await bulkGoodput({ paths: c.paths, scheduler: 'lowest-rtt', size: SIZE, maxSubflows: 1 });
      assert.ok(r.shaEqual);
      assert.equal(r.subflows, 1);
      assert.equal(r.sentByPath[1], 0);
      return r;
    };
    let baseline: ReturnType<typeof alone> | undefined;
    for (const scheduler of ['lowest-rtt', 'round-robin'] as const) {
      it(`${c.name}: ${scheduler}, initial subflow on either path`, async () => {
        baseline ??= alone();
        const one = await baseline;
        for (const order of ['better first', 'worse first'] as const) {
          const paths = order === 'better first' ? c.paths : ([c.paths[1], c.paths[0]] as const);
          const r = await bulkGoodput({ paths, scheduler, size: SIZE });
          const what = `${order}: ${r.goodputMbit.toFixed(2)} Mbit/s, alone ${one.goodputMbit.toFixed(2)}`;
          assert.ok(r.shaEqual, what);
          assert.equal(r.subflows, 2, what);
          assert.ok(r.sentByPath[0] > 0 && r.sentByPath[1] > 0, `${what}: both paths carried data`);
          assert.ok(r.goodputMbit >= one.goodputMbit, what);
        }
      });
    }
  }
});

describe('redundant scheduler', () => {
  it('bulk: every byte on both paths, the receiver drops the later copies, SHA-256 equal', async () => {
    const c = HETEROGENEOUS_CASES[1]!;
    const r = await bulkGoodput({ paths: c.paths, scheduler: 'redundant', size: 2 << 20 });
    assert.ok(r.shaEqual);
    const mib = r.result.mib;
    // Copies went on the second subflow for (nearly) everything; the server saw them as duplicates.
    assert.ok(
      (mib.client.redundantBytes ?? 0) > (2 << 20) / 2,
      `redundantBytes ${mib.client.redundantBytes}`,
    );
    assert.ok((mib.client.redundantCopies ?? 0) > 0);
    assert.ok((mib.server.DuplicateData ?? 0) > 0, `DuplicateData ${mib.server.DuplicateData}`);
    assert.ok(r.sentByPath[0] >= 2 << 20 || r.sentByPath[1] >= 2 << 20, `${r.sentByPath}`);
    assert.ok(r.sentByPath[0] + r.sentByPath[1] > 1.5 * (2 << 20), `${r.sentByPath}`);
  });

  it('must-show 6: 200-byte echoes, 5% loss on both paths: p99 latency below lowest-rtt', async () => {
    const messages = 300;
    const low = await requestResponse({ paths: LOSSY_PATHS, scheduler: 'lowest-rtt', messages, size: 200 });
    const red = await requestResponse({ paths: LOSSY_PATHS, scheduler: 'redundant', messages, size: 200 });
    const what = `p99 redundant ${red.p99Ms.toFixed(1)} ms, lowest-rtt ${low.p99Ms.toFixed(1)} ms`;
    assert.equal(low.messages, messages);
    assert.equal(red.messages, messages);
    assert.ok(low.shaEqual && red.shaEqual, what);
    assert.ok(red.p99Ms < low.p99Ms, what);
    assert.ok((red.mib.client.redundantCopies ?? 0) > 0 && (red.mib.server.redundantCopies ?? 0) > 0);
    assert.equal(low.mib.client.redundantCopies, undefined);
  });
});

/** Path `path` of the simulator loses every frame, both ways, once `dead()`. */
function cutPath(sim: MultipathSim, path: number, dead: () => boolean): void {
  for (const dev of sim.faults[path]!) {
    const write = dev.write.bind(dev);
    dev.write = (frames) => (dead() ? true : write(frames));
  }
}

describe('backup subflows (must-show 5, simulator part)', () => {
  const backupPath = MP_CLIENT_ADDRS[1];
  const options = (seed: number) => ({
    seed,
    paths: [
      { rateMbit: 10, delayMs: 10 },
      { rateMbit: 10, delayMs: 5 },
    ] as const,
    mptcp: { backupAddresses: [parseAddress(backupPath)] },
  });

  for (const scheduler of ['lowest-rtt', 'round-robin', 'redundant'] as const) {
    it(`${scheduler}: the backup path (faster, even) carries 0 data bytes either way while the regular one works`, async () => {
      const sim = new MultipathSim({ ...options(21), mptcp: { ...options(21).mptcp, scheduler } });
      const r = await simultTransfer(sim, patternBytes(21, 1 << 20), patternBytes(22, 512 << 10), 60_000);
      assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
      assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
      const onBackup = r.subflows.filter((s) => s.path === 1);
      assert.equal(onBackup.length, 2, 'a join on the backup path, seen from both ends');
      for (const s of onBackup) assert.equal(s.bytesSent, 0, `${s.side} sent ${s.bytesSent} on the backup`);
      assert.equal(r.mib.server.MPJoinSynBackupRx, 1, 'the join SYN carried the B flag');
      assert.equal(r.mib.client.backupTakeover, undefined);
    });
  }

  it("the initial subflow's address as the backup: MP_PRIO once connected; it carries data only until the join is up", async () => {
    const sim = new MultipathSim({
      seed: 27,
      paths: [
        { rateMbit: 10, delayMs: 5 },
        { rateMbit: 10, delayMs: 10 },
      ],
      mptcp: { backupAddresses: [parseAddress(MP_CLIENT_ADDRS[0])] },
    });
    const size = 1 << 20;
    const r = await simultTransfer(sim, patternBytes(27, size), patternBytes(28, size), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
    assert.equal(r.mib.client.MPPrioTx, 1);
    assert.equal(r.mib.server.MPPrioRx, 1);
    for (const side of ['client', 'server'] as const) {
      const sent = (path: number) =>
        r.subflows.filter((s) => s.side === side && s.path === path).reduce((n, s) => n + s.bytesSent, 0);
      // Before the join exists the backup is the only subflow, so it starts the transfer.
      assert.ok(sent(1) > size * 0.75, `${side}: join ${sent(1)}, initial (backup) ${sent(0)}`);
    }
  });

  it('a backup address of the server (lb mode, its unique address): MP_PRIO on the joins to it, no data there', async () => {
    const sim = new MultipathSim({
      seed: 25,
      mode: 'lb',
      paths: [
        { rateMbit: 10, delayMs: 10 },
        { rateMbit: 10, delayMs: 5 },
      ],
      mptcp: { backupAddresses: [parseAddress(MP_UNIQUE)] },
    });
    const r = await simultTransfer(sim, patternBytes(25, 1 << 20), patternBytes(26, 1 << 20), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
    const joins = r.subflows.filter((s) => s.role === 'join');
    assert.equal(joins.length, 4, 'two joins to the unique address, seen from both ends');
    for (const s of joins) assert.equal(s.bytesSent, 0, `${s.side} ${s.local} sent ${s.bytesSent}`);
    assert.equal(r.mib.server.MPPrioTx, 2);
    assert.equal(r.mib.client.MPPrioRx, 2);
  });

  it('lowest-rtt: the regular path dies mid-transfer, the backup takes over, SHA-256 equal', async () => {
    const sim = new MultipathSim(options(23));
    const diesAt = sim.clock.now() + 600;
    cutPath(sim, 0, () => sim.clock.now() >= diesAt);
    const size = 2 << 20;
    const r = await simultTransfer(sim, patternBytes(23, size), patternBytes(24, size), 60_000);
    assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
    assert.equal(r.serverToClient.receivedSha256, r.serverToClient.sentSha256);
    // What each path delivered (the path's own count: a subflow on the dead path may be gone by
    // the end): 0.6 s worth on the regular path before it died, the rest on the backup.
    const delivered = (path: number, dir: 'up' | 'down') =>
      r.paths.find((p) => p.path === path && p.dir === dir)!.deliveredBytes;
    for (const dir of ['up', 'down'] as const) {
      assert.ok(
        delivered(0, dir) > size / 8 && delivered(0, dir) < size,
        `regular ${dir} ${delivered(0, dir)}`,
      );
      assert.ok(delivered(1, dir) > size / 2, `backup ${dir} ${delivered(1, dir)}`);
    }
    assert.equal(r.mib.client.backupTakeover, 1);
    assert.equal(r.mib.server.backupTakeover, 1);
    assert.ok((r.mib.client.SubflowStale ?? 0) >= 1);
    // 2 MiB at 10 Mbit/s is 1.7 s; the takeover costs about one subflow RTO (a guard, not a timing).
    assert.ok(r.elapsedMs < 5000, `${r.elapsedMs} ms`);
  });
});
