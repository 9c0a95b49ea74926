/**
 * MP_JOIN SYNs are routed by token before anything is allocated (RFC 8684 §3.2): a flood of joins
 * with random tokens (what a load balancer's wrong server sees, or an attacker) draws stateless
 * resets with MP_TCPRST and leaves no state behind, with or without a listener on the port.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeededRandom } from '../src/stack/device/prng.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../src/stack/wire/tcp.js';
import { RawHarness, tcpPacket } from './support/sim.js';

test('10,000 MP_JOIN SYNs with random tokens allocate nothing and each draws one RST with MP_TCPRST', () => {
  const h = new RawHarness({ addresses: ['10.0.0.1'], synBacklog: 16 });
  h.stack.listen({ port: 80, mptcp: true });
  const rng = new SeededRandom(7, 1);
  const N = 10_000;
  let resets = 0;
  let withTcprst = 0;
  for (let i = 0; i < N; i++) {
    const src = `10.9.${(i >>> 8) & 255}.${i & 255 || 1}`;
    h.send(
      tcpPacket(src, '10.0.0.1', {
        srcPort: 1024 + rng.int(60000),
        dstPort: i % 2 === 0 ? 80 : 5555, // with and without a listener on the port
        seqNumber: rng.nextU32(),
        ackNumber: 0,
        flags: TCP_SYN,
        window: 65535,
        options: [
          { type: 'mss', mss: 1460 },
          {
            type: 'mptcp',
            option: {
              subtype: 'mp_join',
              form: 'syn',
              backup: false,
              addressId: 1,
              receiverToken: rng.nextU32(),
              senderNonce: rng.nextU32(),
            },
          },
        ],
      }),
    );
    for (const r of h.take()) {
      if ((r.tcp.flags & TCP_RST) === 0) continue;
      resets++;
      assert.equal(r.tcp.flags, TCP_RST | TCP_ACK);
      if (r.tcp.options.some((o) => o.type === 'mptcp' && o.option.subtype === 'mp_tcprst')) withTcprst++;
    }
    assert.equal(h.stack.connectionCount, 0);
  }
  assert.equal(resets, N);
  assert.equal(withTcprst, N);
  const stats = h.stack.stats();
  assert.equal(stats.mptcp?.MPJoinNoTokenFound, N);
  assert.equal(stats.counters.joinSynsReset, N);
  assert.equal(stats.counters.passiveOpens, 0);
  assert.equal(stats.counters.synCookiesSent, 0);
  assert.equal(h.stack.mptcpEndpoint().connectionCount, 0);
});
