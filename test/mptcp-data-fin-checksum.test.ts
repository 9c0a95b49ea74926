/**
 * A DATA_FIN on a segment of its own is a mapping too (RFC 8684 §3.3.3: SSN 0, data-level
 * length 1): with DSS checksums negotiated it carries a checksum like every other mapping
 * (Linux sends one, over the pseudo-header alone).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyDssChecksum } from '../src/stack/wire/dss-checksum.js';
import { parseIpv4 } from '../src/stack/wire/ipv4.js';
import type { DssOption } from '../src/stack/wire/mptcp-options.js';
import { parseTcp } from '../src/stack/wire/tcp.js';
import { Sim, seededBytes, simTransfer } from './support/sim.js';

type Writer = { write: (frames: { data: Uint8Array }[]) => boolean };

/** Every DSS with a DATA_FIN a device writes. */
function watchDataFins(dev: Writer): DssOption[] {
  const seen: DssOption[] = [];
  const write = dev.write.bind(dev);
  dev.write = (frames) => {
    for (const f of frames) {
      const ip = parseIpv4(f.data, 0, false);
      if (!ip.ok) continue;
      const tcp = parseTcp(f.data, ip.value.headerLength, ip.value.totalLength);
      if (!tcp.ok) continue;
      for (const o of tcp.value.options) {
        if (o.type === 'mptcp' && o.option.subtype === 'dss' && o.option.dataFin) seen.push(o.option);
      }
    }
    return write(frames);
  };
  return seen;
}

describe('DATA_FIN with DSS checksums', () => {
  for (const side of ['client', 'server'] as const) {
    it(`the ${side}'s DATA_FIN mapping carries a valid checksum`, async () => {
      const sim = new Sim({ seed: 9, forward: { delayMs: 2 }, reverse: { delayMs: 2 } });
      const fins = watchDataFins(
        (side === 'client' ? sim.clientFault : sim.serverFault) as unknown as Writer,
      );
      const r = await simTransfer(sim, seededBytes(9, 200_000), 10_000, 5001, {
        listen: { mptcp: { checksum: side === 'server' } },
        connect: { mptcp: { checksum: side === 'client' } },
      });
      assert.equal(r.receivedSha256, r.sentSha256);
      // The transfer ends when the server's stream ends; its DATA_FIN leaves after that.
      await sim.runFor(200);
      const alone = fins.filter((d) => d.mapping?.ssn === 0);
      assert.ok(alone.length >= 1, `a DATA_FIN on a segment of its own: ${fins.length} DATA_FINs`);
      for (const d of alone) {
        const m = d.mapping!;
        assert.equal(m.dataLevelLength, 1);
        assert.notEqual(m.checksum, undefined, 'DATA_FIN mapping without checksum');
        assert.ok(verifyDssChecksum(m.checksum!, m.dsn, 0, 1, new Uint8Array(0)), 'checksum valid');
      }
    });
  }
});
