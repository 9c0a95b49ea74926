/**
 * Proves the kernel-MPTCP lab (test/support/mptcp-lab.ts) with the kernel alone, kernel ↔ kernel:
 * the topologies route both address families on both paths, a 20 MB transfer uses the subflow
 * the server announced, the stateless load balancer sends joins to the wrong server unless the
 * server forbids joins to the VIP and announces its unique address, and `mptcpize run` turns a
 * plain TCP program into an MPTCP one. Later tests put our userspace MPTCP on one side.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  addMptcpEndpoint,
  configureMptcp,
  counterDelta,
  eventually,
  labSha256,
  loadBalancerTopology,
  mptcpCounters,
  mptcpSockets,
  mptcpSubflows,
  nonZero,
  setMptcpSysctls,
  startCapture,
  startClient,
  startServer,
  sumCounter,
  tsharkFields,
  twoPathTopology,
} from './support/mptcp-lab.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-lab-'));
let failed = false;
after(async () => {
  await lab.cleanup();
  // Keep the captures of a failed run for a look with Wireshark.
  if (failed) console.log(`# captures kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
});

/** Runs `body`, noting a failure so the captures are kept. */
function labTest(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    try {
      await body();
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

function ping(ns: string, to: string, from?: string): void {
  const args = ['-c', '1', '-W', '5', '-q'];
  if (from !== undefined) args.push('-I', from);
  lab.exec(ns, 'ping', ...args, to);
}

labTest('both topologies route IPv4 and IPv6 on every path, and back', async () => {
  const two = twoPathTopology(lab, { tag: 'r2' });
  for (const p of two.paths) {
    ping(two.cli, p.far.v4);
    ping(two.cli, p.far.v6);
  }
  const lb = loadBalancerTopology(lab, { tag: 'rl' });
  for (const p of lb.paths) {
    for (const fam of ['v4', 'v6'] as const) {
      ping(lb.cli, lb.vip[fam], p.cli[fam]);
      for (const s of lb.servers) ping(lb.cli, s.unique[fam], p.cli[fam]);
    }
  }
});

labTest('two paths: 20 MB over MPTCP uses the join to the announced address', async () => {
  const t = twoPathTopology(lab, { tag: 'a' });
  const [p1, p2] = t.paths;
  const port = 5101;
  const size = 20_000_000;
  const seed = 1;
  for (const ns of [t.cli, t.srv]) {
    configureMptcp(lab, ns, {
      sysctls: { enabled: true },
      limits: { subflows: 2, addAddrAccepted: 2 },
      flush: true,
    });
  }
  addMptcpEndpoint(lab, t.srv, { addr: p2.far.v4, dev: p2.far.dev, flags: ['signal'] });
  const caps = await Promise.all(
    t.paths.map((p) =>
      startCapture(lab, t.srv, {
        iface: p.far.dev,
        file: join(dir, `a-path${p.index}.pcap`),
        filter: `tcp port ${port}`,
        snaplen: 200,
        markerTo: p.cli.v4,
      }),
    ),
  );
  const before = { cli: mptcpCounters(lab, t.cli), srv: mptcpCounters(lab, t.srv) };

  const server = await startServer(lab, t.srv, { host: '0.0.0.0', port });
  const client = startClient(lab, t.cli, {
    host: p1.far.v4,
    port,
    bytes: size,
    seed,
    subflows: 1,
    subflowsWhen: 'connected',
    hold: true,
  });
  await client.step('holding', 0);
  // While the connection is open: one MPTCP socket with one extra subflow, two subflows on the
  // server, the join on path 2, both having carried data.
  const sockets = mptcpSockets(lab, t.cli, ['dport', '=', `:${port}`]);
  assert.equal(sockets.length, 1, JSON.stringify(sockets));
  assert.equal(sockets[0]!.subflows, 1);
  const subflows = mptcpSubflows(lab, t.srv, ['sport', '=', `:${port}`]);
  assert.equal(subflows.length, 2, JSON.stringify(subflows));
  const joined = subflows.find((s) => s.mptcp?.join);
  assert.ok(joined, 'one subflow is a join');
  assert.equal(joined.local.addr, p2.far.v4);
  assert.equal(joined.peer.addr, p2.cli.v4);
  assert.equal(joined.mptcp?.localId, 1, 'the join uses the announced endpoint (id 1)');
  // sendall() returned, so all but a send buffer's worth is out: both subflows carried some.
  for (const sf of subflows) assert.ok(sf.bytesReceived > 0, JSON.stringify(sf));
  client.release();
  await client.done();
  await server.done();

  const [sent] = client.connections();
  const [received] = server.connections();
  const expected = labSha256(seed, size);
  assert.deepEqual(sent?.sent, { bytes: size, sha256: expected });
  assert.deepEqual(received?.received, { bytes: size, sha256: expected });
  assert.equal(sent?.subflows[0]?.kind, 'established');
  assert.equal(sent?.subflows[0]?.src.addr, p2.cli.v4);
  assert.equal(received?.proto, 'mptcp');

  const srv = counterDelta(before.srv, mptcpCounters(lab, t.srv));
  const cli = counterDelta(before.cli, mptcpCounters(lab, t.cli));
  assert.ok((srv['MPJoinAckRx'] ?? 0) >= 1, JSON.stringify(nonZero(srv)));
  assert.ok((srv['AddAddrTx'] ?? 0) >= 1, JSON.stringify(nonZero(srv)));
  assert.ok((cli['MPJoinSynAckRx'] ?? 0) >= 1, JSON.stringify(nonZero(cli)));
  assert.equal(cli['MPJoinNoTokenFound'] ?? 0, 0);

  await Promise.all(caps.map((c) => c.stop()));
  // The capture: MP_CAPABLE and ADD_ADDR on path 1, MP_JOIN on path 2, data on both.
  const [path1, path2] = await Promise.all(
    caps.map((c) =>
      tsharkFields(c.file, 'tcp', ['tcp.dstport', 'tcp.len', 'tcp.options.mptcp.subtype']).then((rows) => ({
        dataBytes: rows
          .filter((r) => r['tcp.dstport'] === String(port))
          .reduce((sum, r) => sum + Number(r['tcp.len']), 0),
        subtypes: new Set(
          rows.flatMap((r) => r['tcp.options.mptcp.subtype'].split(',').filter((x) => x !== '')),
        ),
      })),
    ),
  );
  assert.ok(path1 && path2);
  assert.ok(
    path1.dataBytes > 0 && path2.dataBytes > 0,
    `data on both paths: ${path1.dataBytes} + ${path2.dataBytes}`,
  );
  assert.ok(path1.dataBytes + path2.dataBytes >= size);
  const s1 = path1.subtypes;
  const s2 = path2.subtypes;
  assert.ok(s1.has('0') && s1.has('3'), `path 1 MPTCP subtypes: ${[...s1]}`);
  assert.ok(s2.has('1') && !s2.has('0'), `path 2 MPTCP subtypes: ${[...s2]}`);
});

labTest('load balancer: joins to the VIP go astray, joins to the announced unique address land', async () => {
  const t = loadBalancerTopology(lab, { tag: 'b' });
  const port = 5201;
  const n = 20;
  configureMptcp(lab, t.cli, {
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
    endpoints: [{ addr: t.paths[1].cli.v4, dev: t.paths[1].cli.dev, flags: ['subflow'] }],
  });
  for (const s of t.servers)
    configureMptcp(lab, s.ns, { limits: { subflows: 2, addAddrAccepted: 0 }, flush: true });
  const servers = await Promise.all(
    t.servers.map((s) => startServer(lab, s.ns, { host: '0.0.0.0', port, conns: 0 })),
  );
  const snapshot = () => t.servers.map((s) => mptcpCounters(lab, s.ns));

  // 1. Joins from path 2 go to the VIP and are hashed like any flow: about half reach the
  // server that does not know the token.
  let base = snapshot();
  const naive = startClient(lab, t.cli, { host: t.vip.v4, port, bytes: 1000, count: n, subflows: 1 });
  await naive.done();
  const outcomes = naive.connections().map((c) => c.subflows[0]?.kind);
  const established = outcomes.filter((k) => k === 'established').length;
  assert.equal(outcomes.length, n);
  assert.equal(established + outcomes.filter((k) => k === 'closed').length, n, outcomes.join());
  // The server counts the join's third ACK a moment after the client reported the join.
  let deltas = await eventually(
    'every join counted by a server',
    () => snapshot().map((c, i) => counterDelta(base[i]!, c)),
    (d) => sumCounter(d, 'MPJoinAckRx') + sumCounter(d, 'MPJoinNoTokenFound') >= n,
  );
  const report = () => JSON.stringify(deltas.map(nonZero));
  assert.ok(sumCounter(deltas, 'MPJoinNoTokenFound') > 0, report());
  assert.ok(sumCounter(deltas, 'MPJoinAckRx') < n, report());
  assert.equal(sumCounter(deltas, 'MPJoinAckRx'), established, report());
  // Plain five-tuple hashing spread the connections themselves over both servers.
  for (const s of servers) assert.ok(s.connections().length > 0, 'each server got connections');

  for (const s of servers) await s.stop();

  // 2. The servers forbid joins to the VIP (C flag) and announce their unique address: every
  // join goes to the server that holds the connection. (The kernel's client joins an announced
  // address from the source address routing picks for it, path 1 here, unless its endpoint is
  // `fullmesh`: path 2's endpoint stays unused. Our client must join from each path.)
  for (const s of t.servers) {
    setMptcpSysctls(lab, s.ns, { allow_join_initial_addr_port: false });
    addMptcpEndpoint(lab, s.ns, { addr: s.unique.v4, flags: ['signal'] });
  }
  const port2 = port + 1;
  const servers2 = await Promise.all(
    t.servers.map((s) => startServer(lab, s.ns, { host: '0.0.0.0', port: port2, conns: 0 })),
  );
  base = snapshot();
  const announced = startClient(lab, t.cli, {
    host: t.vip.v4,
    port: port2,
    bytes: 1000,
    count: n,
    subflows: 1,
  });
  await announced.done();
  const conns = announced.connections();
  assert.equal(conns.length, n);
  // Which server holds each connection: the one that accepted the client's port.
  const accepted = await eventually(
    'every connection reported by a server',
    () => servers2.map((s) => s.connections()),
    (lists) => lists.reduce((sum, l) => sum + l.length, 0) >= n,
  );
  for (const c of conns) {
    const holder = accepted.findIndex((l) => l.some((a) => a.addr?.port === c.addr?.port));
    assert.ok(holder >= 0, `a server accepted ${JSON.stringify(c.addr)}`);
    assert.equal(c.subflows[0]?.kind, 'established', JSON.stringify(c));
    assert.equal(
      c.subflows[0]?.dst.addr,
      t.servers[holder]!.unique.v4,
      'the join went to the unique address',
    );
  }
  deltas = await eventually(
    'every join acknowledged',
    () => snapshot().map((c, i) => counterDelta(base[i]!, c)),
    (d) => sumCounter(d, 'MPJoinAckRx') >= n,
  );
  assert.equal(sumCounter(deltas, 'MPJoinNoTokenFound'), 0, report());
  assert.equal(sumCounter(deltas, 'MPJoinAckRx'), n, report());
  assert.ok(sumCounter(deltas, 'AddAddrTx') >= n, report());
});

labTest('mptcpize run makes a plain TCP program use MPTCP (IPv4 and IPv6)', async () => {
  const t = twoPathTopology(lab, { tag: 'c' });
  const port = 5301;
  const size = 100_000;
  // A dual-stack listener: IPv4 clients appear as ::ffff:a.b.c.d.
  const server = await startServer(lab, t.srv, { host: '::', port, conns: 3, send: 5000, seed: 9 });
  const back = { bytes: 5000, sha256: labSha256(9, 5000) };

  // Without mptcpize the program opens plain TCP: no MP_CAPABLE SYN leaves.
  let before = mptcpCounters(lab, t.cli);
  const plain = startClient(lab, t.cli, { host: t.paths[0].far.v4, port, bytes: size, seed: 2, tcp: true });
  await plain.done();
  assert.equal(plain.connections()[0]?.proto, 'tcp');
  assert.deepEqual(plain.connections()[0]?.received, back);
  assert.equal(counterDelta(before, mptcpCounters(lab, t.cli))['MPCapableSYNTX'] ?? 0, 0);

  for (const [host, seed] of [
    [t.paths[0].far.v4, 3],
    [t.paths[1].far.v6, 4],
  ] as const) {
    before = mptcpCounters(lab, t.cli);
    const wrapped = startClient(lab, t.cli, {
      host,
      port,
      bytes: size,
      seed,
      tcp: true,
      wrap: ['mptcpize', 'run'],
    });
    await wrapped.done();
    const d = counterDelta(before, mptcpCounters(lab, t.cli));
    assert.equal(wrapped.connections()[0]?.proto, 'mptcp', host);
    assert.deepEqual(wrapped.connections()[0]?.received, back);
    assert.ok((d['MPCapableSYNTX'] ?? 0) >= 1, JSON.stringify(nonZero(d)));
    assert.ok((d['MPCapableSYNACKRX'] ?? 0) >= 1, JSON.stringify(nonZero(d)));
  }
  await server.done();
  const [first, second, third] = server.connections();
  // An MPTCP listener hands a client that did not offer MPTCP a plain TCP socket.
  assert.equal(first?.proto, 'tcp');
  assert.equal(first?.addr?.addr, `::ffff:${t.paths[0].cli.v4}`);
  assert.equal(second?.proto, 'mptcp');
  assert.equal(second?.received?.sha256, labSha256(3, size));
  assert.equal(third?.proto, 'mptcp');
  assert.equal(third?.addr?.addr, t.paths[1].cli.v6);
  assert.equal(third?.received?.sha256, labSha256(4, size));
});
