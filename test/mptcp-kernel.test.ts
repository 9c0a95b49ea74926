/**
 * Our MPTCP against the Linux kernel's, both roles, over the lab's two paths (namespaces): our
 * stack runs on a TUN in one host (test/support/mptcp-user-peer.ts), the kernel's sockets in the
 * other (test/support/mptcp-peer.py). Every transfer is checked by SHA-256; captures on the
 * kernel's side and its MPTcpExt counters say what the kernel saw.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  type Capture,
  configureMptcp,
  counterDelta,
  labSha256,
  mptcpCounters,
  mptcpSubflows,
  nonZero,
  type Peer,
  startCapture,
  startClient,
  startServer,
  type TwoPathLab,
  tsharkFields,
  twoPathTopology,
} from './support/mptcp-lab.js';
import {
  type Family,
  plumbUserClient,
  plumbUserServer,
  startUserPeer,
  type UserPeer,
  type UserResult,
  userClientAddr,
  userServerAddr,
} from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-kmptcp-'));
let failed = false;
after(async () => {
  await lab.cleanup();
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

const MB100 = 100_000_000;

/** Captures on the kernel host's end of both paths (headers only). */
function capturePaths(ns: string, t: TwoPathLab, tag: string, port: number): Promise<Capture[]> {
  return Promise.all(
    t.paths.map((p) =>
      startCapture(lab, ns, {
        iface: p.far.dev,
        file: join(dir, `${tag}-path${p.index}.pcap`),
        filter: `tcp port ${port}`,
        snaplen: 200,
        // The marker goes to the other end of the link.
        markerTo: ns === t.srv ? p.cli.v4 : p.far.v4,
      }),
    ),
  );
}

type Row = Record<(typeof FIELDS)[number], string>;
const FIELDS = [
  'ip.src',
  'ipv6.src',
  'ip.dst',
  'ipv6.dst',
  'tcp.srcport',
  'tcp.dstport',
  'tcp.len',
  'tcp.flags.syn',
  'tcp.flags.ack',
  'tcp.options.mptcp.subtype',
  'tcp.options.mptcp.flags',
  'tcp.options.mptcp.dseqnpresent.flag',
] as const;

function src(r: Row): string {
  return r['ip.src'] || r['ipv6.src'];
}
function dst(r: Row): string {
  return r['ip.dst'] || r['ipv6.dst'];
}

/** Payload bytes per direction and four-tuple ("src:sport>dst:dport"), from a capture's rows. */
function bytesPerFlow(rows: Row[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rows) {
    const n = Number(r['tcp.len']);
    if (n === 0) continue;
    const k = `${src(r)}:${r['tcp.srcport']}>${dst(r)}:${r['tcp.dstport']}`;
    m.set(k, (m.get(k) ?? 0) + n);
  }
  return m;
}

function isMpJoinSyn(r: Row): boolean {
  return (
    r['tcp.flags.syn'] === '1' &&
    r['tcp.flags.ack'] === '0' &&
    r['tcp.options.mptcp.subtype'].split(',').includes('1')
  );
}

function mbps(bytes: number, ms: number): number {
  return Math.round((bytes * 8) / ms / 1000);
}

/** The MPTCP option's length (kind 30) on each packet that carries a DSS mapping. */
const CSUM_FIELDS = [
  'tcp.option_kind',
  'tcp.option_len',
  'tcp.options.mptcp.subtype',
  'tcp.options.mptcp.dseqnpresent.flag',
  'tcp.options.mptcp.dseqn8.flag',
  'tcp.options.mptcp.dataackpresent.flag',
  'tcp.options.mptcp.dataack8.flag',
] as const;

/**
 * Whether each DSS with a mapping in `file` (from `from`) carries a checksum: tshark 4.0 does not
 * show the DSS checksum field (docs/DESIGN-NOTES.md), so it is read from the option's length:
 * 4 + DATA_ACK (0/4/8) + DSN (4/8) + SSN 4 + length 2, plus 2 with the checksum.
 */
async function dssChecksums(file: string, from: string): Promise<{ with: number; without: number }> {
  const flt = `${from.includes(':') ? 'ipv6' : 'ip'}.src == ${from} && tcp.options.mptcp.dseqnpresent.flag == 1`;
  const rows = await tsharkFields(file, flt, CSUM_FIELDS);
  let yes = 0;
  let no = 0;
  for (const r of rows) {
    const kinds = r['tcp.option_kind'].split(',');
    const lens = r['tcp.option_len'].split(',');
    // tcp.option_len skips NOP and EOL (no length byte).
    const withLen = kinds.filter((k) => k !== '0' && k !== '1');
    const mpLen = Number(lens[withLen.indexOf('30')]);
    const ack =
      r['tcp.options.mptcp.dataackpresent.flag'] === '1'
        ? r['tcp.options.mptcp.dataack8.flag'] === '1'
          ? 8
          : 4
        : 0;
    const dsn = r['tcp.options.mptcp.dseqn8.flag'] === '1' ? 8 : 4;
    const extra = mpLen - (4 + ack + dsn + 6);
    if (extra === 2) yes++;
    else if (extra === 0) no++;
    else throw new Error(`DSS of ${mpLen} bytes: ${JSON.stringify(r)}`);
  }
  return { with: yes, without: no };
}

interface ClientCase {
  fam: Family;
  size: number;
  tag: string;
  checksum?: boolean;
  /** A plain TCP kernel server (our client falls back). */
  kernelTcp?: boolean;
  progressEvery?: number;
  /** Runs while the transfer is on (after our client connected). */
  during?: (ours: UserPeer, t: TwoPathLab) => Promise<void>;
  /** No captures (a path that is down cannot pass the capture's marker). */
  noCapture?: boolean;
}

/**
 * Our client → a kernel server in `srv` (MPTCP with C, allow_join_initial_addr_port=0, and a
 * signal endpoint on its path-2 address; or plain TCP), `size` bytes, captures on both paths.
 */
async function clientToKernel(c: ClientCase) {
  const t = twoPathTopology(lab, { tag: c.tag });
  plumbUserClient(lab, t);
  const [p1, p2] = t.paths;
  const port = 5401;
  configureMptcp(lab, t.srv, {
    sysctls: { enabled: true, allow_join_initial_addr_port: false, checksum_enabled: c.checksum ?? false },
    limits: { subflows: 4, addAddrAccepted: 0 },
    flush: true,
    endpoints: [{ addr: p2.far[c.fam], dev: p2.far.dev, flags: ['signal'] }],
  });
  const caps = c.noCapture ? [] : await capturePaths(t.srv, t, c.tag, port);
  const before = mptcpCounters(lab, t.srv);
  const server = await startServer(lab, t.srv, {
    host: c.fam === 'v4' ? '0.0.0.0' : '::',
    port,
    ...(c.kernelTcp ? { tcp: true } : {}),
  });
  const seed = 11;
  const ours = await startUserPeer(lab, t.cli, 'client', {
    tun: 'mpt-c',
    addrs: [userClientAddr(1, c.fam), userClientAddr(2, c.fam)],
    host: p1.far[c.fam],
    local: userClientAddr(1, c.fam),
    port,
    bytes: c.size,
    seed,
    checksum: false,
    offload: true,
    ...(c.progressEvery === undefined ? {} : { progressEvery: c.progressEvery }),
  });
  if (c.during) {
    await ours.step('connected', 0);
    await c.during(ours, t);
  }
  const result = await ours.result(0);
  const done = await ours.done();
  await server.done();
  const srvCounters = counterDelta(before, mptcpCounters(lab, t.srv));
  await Promise.all(caps.map((cap) => cap.stop()));
  const rows = (
    c.noCapture ? [[], []] : await Promise.all(caps.map((cap) => tsharkFields(cap.file, 'tcp', FIELDS)))
  ) as [Row[], Row[]];
  const expected = labSha256(seed, c.size);
  assert.deepEqual(server.connections()[0]?.received, { bytes: c.size, sha256: expected });
  assert.deepEqual(result.sent, { bytes: c.size, sha256: expected });
  return { t, result, done, server, srvCounters, rows, caps, port, ours };
}

interface ServerCase {
  fam: Family;
  size: number;
  tag: string;
  checksum?: boolean;
  /** A plain TCP kernel client (our server answers as TCP). */
  kernelTcp?: boolean;
  /** Then a second, smaller connection from a plain TCP sender under `mptcpize run`. */
  mptcpize?: number;
}

/**
 * A kernel client in `cli` → our server in `srv` (C flag, ADD_ADDR of our path-2 address), one
 * connection that waits for its join before sending and holds before closing (so `ss` sees
 * both subflows live); captures on both paths on the kernel's side.
 */
async function kernelToServer(c: ServerCase) {
  const t = twoPathTopology(lab, { tag: c.tag });
  plumbUserServer(lab, t);
  const port = 5402;
  configureMptcp(lab, t.cli, {
    sysctls: { enabled: true, checksum_enabled: c.checksum ?? false },
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
  });
  const caps = await capturePaths(t.cli, t, c.tag, port);
  const before = mptcpCounters(lab, t.cli);
  const seed = 12;
  const ours = await startUserPeer(lab, t.srv, 'server', {
    tun: 'mpt-s',
    addrs: [userServerAddr(1, c.fam), userServerAddr(2, c.fam)],
    port,
    announce: [userServerAddr(2, c.fam)],
    conns: c.mptcpize === undefined ? 1 : 2,
    checksum: false,
    offload: true,
  });
  const host = userServerAddr(1, c.fam);
  const kernel = startClient(lab, t.cli, {
    host,
    port,
    bytes: c.size,
    seed,
    ...(c.kernelTcp ? { tcp: true } : { subflows: 1, subflowsWhen: 'connected' as const }),
    hold: true,
    timeout: 30,
  });
  await kernel.step('holding', 0, 60_000);
  const live = c.kernelTcp ? [] : mptcpSubflows(lab, t.cli, ['dport', '=', `:${port}`]);
  kernel.release();
  await kernel.done(60_000);
  const result = await ours.result(0);
  let wrapped: { peer: Peer; result: UserResult } | undefined;
  if (c.mptcpize !== undefined) {
    const peer = startClient(lab, t.cli, {
      host,
      port,
      bytes: c.mptcpize,
      seed: seed + 1,
      tcp: true,
      wrap: ['mptcpize', 'run'],
    });
    await peer.done(60_000);
    wrapped = { peer, result: await ours.result(1) };
  }
  const done = await ours.done();
  const cliCounters = counterDelta(before, mptcpCounters(lab, t.cli));
  await Promise.all(caps.map((cap) => cap.stop()));
  const rows = (await Promise.all(caps.map((cap) => tsharkFields(cap.file, 'tcp', FIELDS)))) as [
    Row[],
    Row[],
  ];
  const expected = labSha256(seed, c.size);
  assert.deepEqual(kernel.connections()[0]?.sent, { bytes: c.size, sha256: expected });
  assert.deepEqual(result.received, { bytes: c.size, sha256: expected });
  if (wrapped !== undefined) {
    const e2 = { bytes: c.mptcpize!, sha256: labSha256(seed + 1, c.mptcpize!) };
    assert.deepEqual(wrapped.peer.connections()[0]?.sent, e2);
    assert.deepEqual(wrapped.result.received, e2);
  }
  return { t, result, wrapped, done, kernel, cliCounters, rows, caps, live, port };
}

/** Bytes per subflow (payload toward `port`, or from it) summed over both captures. */
function subflowBytes(rows: [Row[], Row[]], port: number, toPort: boolean): [string, number][] {
  const suffix = `:${port}`;
  return [...bytesPerFlow(rows[0]), ...bytesPerFlow(rows[1])].filter(([k]) => {
    const [from, to] = k.split('>') as [string, string];
    return toPort ? to.endsWith(suffix) : from.endsWith(suffix);
  });
}

function pathBytes(rows: Row[], port: number, toPort: boolean): number {
  return subflowBytes([rows, []], port, toPort).reduce((s, [, n]) => s + n, 0);
}

/** The checks of (a) on a clientToKernel run. */
function checkClientJoins(r: Awaited<ReturnType<typeof clientToKernel>>, fam: Family, label: string) {
  const [, p2] = r.t.paths;
  const info = r.result.atEof;
  assert.equal(r.server.connections()[0]?.proto, 'mptcp');
  assert.ok(info && !info.fallback, JSON.stringify(info));
  assert.equal(info.peerCFlag, true, 'the kernel set C');
  // Kernel side: both joins (one from each of our paths) acknowledged, to the announced address.
  assert.ok((r.srvCounters['MPJoinAckRx'] ?? 0) >= 2, JSON.stringify(nonZero(r.srvCounters)));
  assert.ok((r.srvCounters['AddAddrTx'] ?? 0) >= 1, JSON.stringify(nonZero(r.srvCounters)));
  assert.equal(r.srvCounters['MPJoinNoTokenFound'] ?? 0, 0);
  assert.ok((r.done.mptcp?.['AddAddr'] ?? 0) >= 1, JSON.stringify(r.done.mptcp));
  assert.ok((r.done.mptcp?.['MPJoinSynAckRx'] ?? 0) >= 2, JSON.stringify(r.done.mptcp));
  // The wire: MP_JOIN SYNs only to the announced address, one on each path.
  const joins = r.rows.flat().filter(isMpJoinSyn);
  assert.ok(joins.length >= 2, `MP_JOIN SYNs: ${joins.length}`);
  for (const j of joins) assert.equal(dst(j), p2.far[fam], 'no MP_JOIN to the initial (C) address');
  assert.ok(r.rows[0].some(isMpJoinSyn) && r.rows[1].some(isMpJoinSyn), 'a join on each path');
  // Data: per subflow, from the kernel's capture and from our own counters.
  const flows = subflowBytes(r.rows, r.port, true);
  const perPath = r.rows.map((rows) => pathBytes(rows, r.port, true));
  console.log(
    `# ${label}: ${mbps(r.result.sent.bytes, r.result.ms)} Mbit/s; per path ${perPath}; per subflow (kernel capture) ${JSON.stringify(Object.fromEntries(flows))}; ours ${JSON.stringify(info.subflows.map((s) => [s.local, s.remote, s.info.bytesSent]))}`,
  );
  assert.ok(perPath[0]! > 0 && perPath[1]! > 0, `data on both paths: ${perPath}`);
  assert.equal(flows.length, 3, `data on every subflow: ${JSON.stringify(flows)}`);
  // Only a mapping's first segment carries it (RFC 8684 §3.3.1); the kernel placed the rest by
  // the mapping it had (no DSSNoMatchTCP, no reset), and the SHA-256 above is equal.
  const ourData = r.rows
    .flat()
    .filter((row) => row['tcp.dstport'] === String(r.port) && row['tcp.len'] !== '0');
  const mapped = ourData.filter((row) => row['tcp.options.mptcp.dseqnpresent.flag'].split(',').includes('1'));
  const bytes = (rows: Row[]) => rows.reduce((n, row) => n + Number(row['tcp.len']), 0);
  const [all, inMapped] = [bytes(ourData), bytes(mapped)];
  console.log(
    `# ${label}: our data ${all} bytes, ${inMapped} of them in the ${mapped.length} packets with a mapping`,
  );
  assert.ok(
    mapped.length > 0 && inMapped * 10 < all,
    `${inMapped} of ${all} bytes in packets with a mapping`,
  );
  for (const c of ['DSSNoMatchTCP', 'DSSNotMatching', 'DssFallback', 'MPRstRx', 'MPRstTx'])
    assert.equal(r.srvCounters[c] ?? 0, 0, `${c}: ${JSON.stringify(nonZero(r.srvCounters))}`);
}

/** The checks of (b) on a kernelToServer run. */
function checkServerJoin(r: Awaited<ReturnType<typeof kernelToServer>>, fam: Family, label: string) {
  const ourAnnounced = userServerAddr(2, fam);
  const conn = r.kernel.connections()[0];
  assert.equal(conn?.proto, 'mptcp');
  assert.equal(conn?.subflows[0]?.kind, 'established', JSON.stringify(conn));
  assert.equal(conn?.subflows[0]?.dst.addr, ourAnnounced, 'the kernel joined our announced address');
  // At most the one join: read just before the client closes, it may already have been closed
  // in order (both DATA_FINs through, our server closes every subflow), so 0 is fine too.
  assert.ok((conn?.finalSubflows ?? 0) <= 1, JSON.stringify(conn));
  const info = r.result.atEof;
  assert.ok(info && !info.fallback, JSON.stringify(info));
  // Kernel side: it took our ADD_ADDR, echoed it, joined, no fallback.
  const k = r.cliCounters;
  assert.ok((k['AddAddr'] ?? 0) >= 1, JSON.stringify(nonZero(k)));
  assert.ok((k['MPJoinSynAckRx'] ?? 0) >= 1, JSON.stringify(nonZero(k)));
  assert.equal((k['MPCapableFallbackSYNACK'] ?? 0) + (k['DssFallback'] ?? 0), 0, JSON.stringify(nonZero(k)));
  assert.ok((r.done.mptcp?.['EchoAdd'] ?? 0) >= 1, JSON.stringify(r.done.mptcp));
  assert.ok((r.done.mptcp?.['MPJoinAckRx'] ?? 0) >= 1, JSON.stringify(r.done.mptcp));
  // ss while the connection was held: two subflows, the join to our announced address.
  assert.equal(r.live.length, 2, JSON.stringify(r.live));
  const joined = r.live.find((s) => s.mptcp?.join);
  assert.equal(joined?.peer.addr, ourAnnounced, JSON.stringify(r.live));
  // The wire: our SYN/ACK carried C (MP_CAPABLE flags 0x20), the join went to the unique address.
  const synAcks = r.rows[0].filter(
    (row) =>
      row['tcp.flags.syn'] === '1' &&
      row['tcp.flags.ack'] === '1' &&
      src(row) === userServerAddr(1, fam) &&
      row['tcp.options.mptcp.subtype'] === '0',
  );
  assert.ok(synAcks.length >= 1, 'our MP_CAPABLE SYN/ACK on path 1');
  for (const s of synAcks) assert.ok((Number(s['tcp.options.mptcp.flags']) & 0x20) !== 0, JSON.stringify(s));
  const joins = r.rows.flat().filter(isMpJoinSyn);
  assert.ok(joins.length >= 1);
  for (const j of joins) assert.equal(dst(j), ourAnnounced);
  const flows = subflowBytes(r.rows, r.port, true);
  const perPath = r.rows.map((rows) => pathBytes(rows, r.port, true));
  console.log(
    `# ${label}: ${mbps(r.result.received.bytes, r.result.ms)} Mbit/s; per path ${perPath}; per subflow (kernel capture) ${JSON.stringify(Object.fromEntries(flows))}; ss ${JSON.stringify(r.live.map((s) => [s.local.addr, s.peer.addr, s.bytesAcked]))}`,
  );
  assert.ok(perPath[0]! > 0 && perPath[1]! > 0, `data on both paths: ${perPath}`);
}

labTest(
  '(a) our client → kernel MPTCP server (C, signal endpoint): 100 MB, SHA-256 equal, joins only to the announced address, data on every subflow',
  async () => {
    const r = await clientToKernel({ fam: 'v4', size: MB100, tag: 'a' });
    checkClientJoins(r, 'v4', '(a)');
  },
);

labTest(
  '(b) kernel MPTCP client → our server (C, ADD_ADDR): 100 MB, SHA-256 equal; the kernel saw C, took ADD_ADDR, joined; mptcpize too',
  async () => {
    const r = await kernelToServer({ fam: 'v4', size: MB100, tag: 'b', mptcpize: 20_000_000 });
    checkServerJoin(r, 'v4', '(b)');
    const w = r.wrapped!;
    assert.equal(w.peer.connections()[0]?.proto, 'mptcp', 'mptcpize made the plain TCP sender MPTCP');
    assert.equal(w.result.atEof?.fallback, false);
    console.log(`# (b) mptcpize: ${mbps(w.result.received.bytes, w.result.ms)} Mbit/s`);
  },
);

labTest(
  '(c) fallback both ways against plain TCP: our MPTCP client → kernel TCP server, kernel TCP client → our MPTCP server',
  async () => {
    const size = 20_000_000;
    const a = await clientToKernel({ fam: 'v4', size, tag: 'c1', kernelTcp: true });
    assert.equal(a.server.connections()[0]?.proto, 'tcp');
    assert.equal(a.result.atEof?.fallback, true, JSON.stringify(a.result.atEof));
    assert.ok((a.done.mptcp?.['MPCapableSYNTX'] ?? 0) >= 1);
    assert.ok(
      !a.rows
        .flat()
        .some((row) => row['tcp.options.mptcp.subtype'] !== '' && src(row) === a.t.paths[0].far.v4),
    );
    const b = await kernelToServer({ fam: 'v4', size, tag: 'c2', kernelTcp: true });
    assert.equal(b.kernel.connections()[0]?.proto, 'tcp');
    assert.equal(b.result.atEof, undefined, 'our listener answered a plain TCP SYN as plain TCP');
    assert.ok(
      !b.rows.flat().some((row) => row['tcp.options.mptcp.subtype'] !== ''),
      'no MPTCP option on the wire',
    );
    console.log(
      `# (c) our client fallback ${mbps(size, a.result.ms)} Mbit/s; our server plain ${mbps(size, b.result.ms)} Mbit/s`,
    );
  },
);

labTest(
  '(d) DSS checksums (net.mptcp.checksum_enabled=1 on the kernel) both ways: SHA-256 equal, checksums on the wire, no MP_FAIL',
  async () => {
    const size = 20_000_000;
    const a = await clientToKernel({ fam: 'v4', size, tag: 'd1', checksum: true });
    checkClientJoins(a, 'v4', '(d) our client');
    assert.equal(a.result.atEof?.checksum, true, 'our client took the kernel’s A flag');
    const b = await kernelToServer({ fam: 'v4', size, tag: 'd2', checksum: true });
    checkServerJoin(b, 'v4', '(d) our server');
    assert.equal(b.result.atEof?.checksum, true);
    for (const [label, r, ours, kernel, kc] of [
      [
        'our client',
        a,
        a.t.paths.map((p) => userClientAddr(p.index, 'v4')),
        a.t.paths.map((p) => p.far.v4),
        a.srvCounters,
      ],
      [
        'our server',
        b,
        b.t.paths.map((p) => userServerAddr(p.index, 'v4')),
        b.t.paths.map((p) => p.cli.v4),
        b.cliCounters,
      ],
    ] as const) {
      for (let k = 0; k < 2; k++) {
        const cap = r.caps[k]!.file;
        const [mine, theirs] = await Promise.all([
          dssChecksums(cap, ours[k]!),
          dssChecksums(cap, kernel[k]!),
        ]);
        console.log(
          `# (d) ${label} path ${k + 1}: DSS mappings with checksum ours ${JSON.stringify(mine)}, kernel ${JSON.stringify(theirs)}`,
        );
        assert.equal(mine.without + theirs.without, 0, `${label} path ${k + 1}: a mapping without checksum`);
      }
      assert.equal(
        (kc['DataCsumErr'] ?? 0) + (kc['MPFailRx'] ?? 0) + (kc['MPFailTx'] ?? 0),
        0,
        JSON.stringify(nonZero(kc)),
      );
      const m = r.done.mptcp ?? {};
      assert.equal(
        (m['DataCsumErr'] ?? 0) + (m['MPFailRx'] ?? 0) + (m['MPFailTx'] ?? 0),
        0,
        JSON.stringify(m),
      );
    }
    const mappings = await dssChecksums(a.caps[0]!.file, userClientAddr(1, 'v4'));
    assert.ok(mappings.with > 0, 'our client sent checksummed mappings on path 1');
  },
);

labTest('(e) IPv6 both directions: SHA-256 equal, joins to the announced addresses', async () => {
  const size = 20_000_000;
  const a = await clientToKernel({ fam: 'v6', size, tag: 'e1' });
  checkClientJoins(a, 'v6', '(e) our client');
  const b = await kernelToServer({ fam: 'v6', size, tag: 'e2' });
  checkServerJoin(b, 'v6', '(e) our server');
});

labTest('(f) a path dies mid-transfer: the transfer completes on the other one, SHA-256 equal', async () => {
  const size = 20_000_000;
  let downAt = 0;
  const r = await clientToKernel({
    fam: 'v4',
    size,
    tag: 'f',
    progressEvery: 1 << 20,
    during: async (ours, t) => {
      // Once 8 MiB are written (the joins are up and carry data), path 1 goes down.
      downAt = Number((await ours.step(`progress 0 ${8 << 20}`)).at(-1));
      // Path 1 carries the initial subflow and one join: both die with it.
      lab.exec(t.cli, 'ip', 'link', 'set', t.paths[0].cli.dev, 'down');
    },
    noCapture: true,
  });
  const info = r.result.atEof;
  assert.ok(info && !info.fallback);
  // The longest pause between two MiB written after the path died: the stall.
  const times = [...r.ours.run.stdout().matchAll(/^progress 0 \d+ \d+ (\d+)$/gm)].map((m) => Number(m[1]));
  let stall = 0;
  for (let k = 1; k < times.length; k++)
    if (times[k - 1]! >= downAt) stall = Math.max(stall, times[k]! - times[k - 1]!);
  const afterDown = info.subflows
    .filter((s) => s.local.startsWith(`${userClientAddr(2, 'v4')}:`))
    .reduce((n, s) => n + s.info.bytesSent, 0);
  console.log(
    `# (f) path 1 down at ${downAt} ms; done in ${Math.round(r.result.ms)} ms; longest stall ${stall} ms; reinjected ${info.reinjectedBytes} B; path 2 carried ${afterDown} B; subflows ${JSON.stringify(info.subflows.map((s) => [s.local, s.remote, s.info.state, s.info.bytesSent, s.info.retransmitSegments]))}`,
  );
  assert.ok(afterDown >= size / 2, `path 2 carried the rest: ${afterDown}`);
});
