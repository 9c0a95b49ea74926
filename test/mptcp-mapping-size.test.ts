/**
 * Mappings come in whole segments: a segment never spans two DSS mappings, so a mapping cut at
 * an arbitrary window edge ends in a short packet with a full set of headers and options. (A
 * mapping's first segment is 16 bytes shorter than the rest: only it carries the mapping.) On a
 * byte-counted bottleneck (tbf) those runts cost about 1% of a link (issue 7, must-show 4). In
 * the two-path simulator, a bulk transfer's data packets on each path are full-sized except a
 * few (the stream's end, a window edge).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Frame } from '../src/stack/device/device.js';
import { MultipathSim, patternBytes, simultTransfer } from './support/multipath-sim.js';

/** TCP payload length of an IPv4 packet. */
function tcpPayload(data: Uint8Array): number {
  const ihl = (data[0]! & 0x0f) * 4;
  const total = (data[2]! << 8) | data[3]!;
  return total - ihl - (data[ihl + 12]! >> 4) * 4;
}

test('a bulk transfer over two paths sends full-sized data packets, runts only at the edges', async () => {
  // Super-segments as through a TUN with offload: a mapping may cover many segments.
  const sim = new MultipathSim({
    seed: 3,
    tcp: { maxPayload: 1 << 16 },
    paths: [
      { rateMbit: 20, delayMs: 5, queuePackets: 40 },
      { rateMbit: 20, delayMs: 5, queuePackets: 40 },
    ],
  });
  const sizes: Map<number, number>[] = [new Map(), new Map()];
  sim.faults.forEach(([up], path) => {
    const write = up.write.bind(up);
    up.write = (frames: readonly Frame[]) => {
      for (const f of frames) {
        const n = tcpPayload(f.data);
        if (n > 0) sizes[path]!.set(n, (sizes[path]!.get(n) ?? 0) + 1);
      }
      return write(frames);
    };
  });
  const data = patternBytes(5, 8 << 20);
  const r = await simultTransfer(sim, data, patternBytes(6, 1000), 60_000);
  assert.equal(r.clientToServer.receivedSha256, r.clientToServer.sentSha256);
  for (const [path, bySize] of sizes.entries()) {
    // A mapping's first segment carries the mapping (16 bytes, 12 beside a DATA_ACK) and the
    // others do not: full-sized means at most 16 bytes short of the largest.
    const full = Math.max(...bySize.keys());
    let packets = 0;
    let short = 0;
    for (const [n, count] of bySize) {
      packets += count;
      if (n < full - 16) short += count;
    }
    assert.ok(packets > 1000, `path ${path}: ${packets} data packets`);
    assert.ok(
      short <= packets / 200,
      `path ${path}: ${short} of ${packets} data packets shorter than ${full - 16}`,
    );
  }
});
