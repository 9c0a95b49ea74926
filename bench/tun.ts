/**
 * TUN benchmarks: mptun's device (native/tun.cc + src/stack/device/tun-device.ts) next to a C
 * program doing the same loop (bench/c/tun-ref.c, compiled here with gcc), in the same run.
 *
 * - read: the kernel fills the reader's TUN queue with N packets (we write them into a second
 *   TUN in the same namespace and the kernel forwards them; the TUN's txqueuelen is raised to
 *   hold them all) while the reader is paused; then we time the reader draining them. So the
 *   figure is the reader's own cost, not a packet generator's.
 * - write: packets written into a TUN whose namespace routes their destination to a blackhole
 *   route: the kernel's cost of taking them in, plus ours of handing them over.
 * - forward: two namespaces, one TUN each; iperf3 sends a kernel TCP flow from one into its TUN,
 *   the forwarder copies packets between the TUNs (virtio-net headers, TSO both ways), iperf3
 *   receives it in the other. mptun's forwarder is this process; C's is tun-ref.
 * Every measurement is short and bounded; --quick shortens them further. Needs root.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame, GsoInfo } from '../src/stack/device/device.js';
import { openTun, type TunDevice } from '../src/stack/device/tun-device.js';
import { pseudoHeaderSumV4 } from '../src/stack/wire/checksum.js';
import { encodeIpv4, ipv4FromString } from '../src/stack/wire/ipv4.js';
import { encodeTcp, IP_PROTOCOL_TCP, TCP_ACK } from '../src/stack/wire/tcp.js';
import { encodeUdp, IPPROTO_UDP } from '../src/stack/wire/udp.js';
import type { BenchOptions, BenchRow } from './harness.js';

const SUITE = 'tun';
const SMALL = 1500;
/** A TSO super-packet: as large as an IPv4 packet gets, cut into 1448-byte segments. */
const SUPER = 65000;
const MSS = 1448;

interface Measured {
  packets: number;
  bytes: number;
  seconds: number;
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  if (process.getuid?.() !== 0) throw new Error('the TUN benchmarks need root (namespaces and TUN devices)');
  const env = new BenchEnv();
  try {
    const rows: BenchRow[] = [];
    rows.push(...(await readBench(env, SMALL, opts)));
    rows.push(...(await readBench(env, SUPER, opts)));
    rows.push(...(await writeBench(env, SMALL, opts)));
    rows.push(...(await writeBench(env, SUPER, opts)));
    rows.push(...(await forwardBench(env, opts)));
    return rows;
  } finally {
    await env.cleanup();
  }
}

/** Namespaces, child processes and the compiled C reference; cleanup() removes them all. */
class BenchEnv {
  readonly prefix = `mptun-b${process.pid}-${randomBytes(2).toString('hex')}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'mptun-bench-'));
  readonly cref = join(this.dir, 'tun-ref');
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly devices = new Set<TunDevice>();

  constructor() {
    const source = new URL('./c/tun-ref.c', import.meta.url).pathname;
    execFileSync('gcc', ['-O2', '-Wall', '-o', this.cref, source], { stdio: 'inherit' });
  }

  netns(name: string): string {
    const ns = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.sh(
      ns,
      'ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1',
    );
    return ns;
  }

  /** Runs a shell snippet inside `ns` (setup only). */
  sh(ns: string, script: string): string {
    return execFileSync('ip', ['netns', 'exec', ns, 'sh', '-ec', script], { encoding: 'utf8' });
  }

  open(...args: Parameters<typeof openTun>): TunDevice {
    const dev = openTun(...args);
    this.devices.add(dev);
    return dev;
  }

  async close(dev: TunDevice): Promise<void> {
    this.devices.delete(dev);
    await dev.close();
  }

  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`[${cmd}] ${d}`));
    return child;
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    for (const dev of this.devices) await dev.close();
    for (const ns of this.namespaces.splice(0)) execFileSync('ip', ['netns', 'delete', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Reads lines from a child's stdout, one promise per line, each bounded by a timeout. */
class LineReader {
  private buffered = '';
  private readonly waiting: Array<(line: string) => void> = [];
  private readonly lines: string[] = [];

  constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buffered += d;
      let nl = this.buffered.indexOf('\n');
      while (nl >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
        nl = this.buffered.indexOf('\n');
      }
    });
  }

  next(timeoutMs = 30_000): Promise<string> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for the C reference')), timeoutMs);
      const onExit = (code: number | null) => reject(new Error(`the C reference exited (${code})`));
      this.child.once('exit', onExit);
      this.waiting.push((line) => {
        clearTimeout(timer);
        this.child.off('exit', onExit);
        resolve(line);
      });
    });
  }
}

function parseMeasured(line: string): Measured {
  const [packets, bytes, ns] = line.trim().split(/\s+/).map(Number);
  return { packets: packets ?? 0, bytes: bytes ?? 0, seconds: (ns ?? 0) / 1e9 };
}

/** An IPv4 packet of `size` bytes from 10.201.0.2 to `dst`: UDP, or a TCP super-packet with TSO info. */
function packet(size: number, dst: string, tso: boolean): Frame {
  const data = new Uint8Array(size);
  for (let i = 48; i < size; i++) data[i] = i & 0xff;
  const src = ipv4FromString('10.201.0.2');
  const dstAddr = ipv4FromString(dst);
  const protocol = tso ? IP_PROTOCOL_TCP : IPPROTO_UDP;
  encodeIpv4(
    {
      tos: 0,
      totalLength: size,
      identification: 0,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 64,
      protocol,
      src,
      dst: dstAddr,
      options: new Uint8Array(0),
    },
    data,
    0,
  );
  const pseudo = pseudoHeaderSumV4(src, dstAddr, protocol, size - 20);
  if (!tso) {
    encodeUdp({ srcPort: 40000, dstPort: 5001 }, size - 28, pseudo, data, 20);
    return { data };
  }
  // NEEDS_CSUM: the checksum field holds the folded pseudo-header sum; the kernel finishes it.
  let partial = pseudo;
  while (partial > 0xffff) partial = (partial & 0xffff) + (partial >>> 16);
  encodeTcp(
    { srcPort: 40000, dstPort: 5001, seqNumber: 1, ackNumber: 1, flags: TCP_ACK, window: 65535, options: [] },
    data,
    20,
  );
  data[36] = partial >>> 8;
  data[37] = partial & 0xff;
  const gso: GsoInfo = {
    needsCsum: true,
    dataValid: false,
    gsoType: 'tcpv4',
    hdrLen: 40,
    gsoSize: MSS,
    csumStart: 20,
    csumOffset: 16,
  };
  return { data, gso };
}

function batchOf(frame: Frame, n = 64): Frame[] {
  return Array.from({ length: n }, () => frame);
}

function label(size: number): string {
  return size === SMALL ? '1500 B packets' : '64 KB super-packets';
}

function rowsFor(what: string, mptun: Measured, c: Measured, extra: Record<string, number> = {}): BenchRow[] {
  const kpps = (m: Measured) => m.packets / m.seconds / 1e3;
  const gbps = (m: Measured) => (m.bytes * 8) / m.seconds / 1e9;
  return [
    {
      suite: SUITE,
      name: `${what} (mptun)`,
      value: kpps(mptun),
      unit: 'kpps',
      baseline: { name: 'C', value: kpps(c) },
      extra: {
        packets: mptun.packets,
        seconds: mptun.seconds,
        cPackets: c.packets,
        cSeconds: c.seconds,
        ...extra,
      },
    },
    {
      suite: SUITE,
      name: `${what} (mptun)`,
      value: gbps(mptun),
      unit: 'Gbit/s',
      baseline: { name: 'C', value: gbps(c) },
    },
  ];
}

function add(total: Measured, m: Measured): void {
  total.packets += m.packets;
  total.bytes += m.bytes;
  total.seconds += m.seconds;
}

/**
 * mptun's reader drains rdm, C's drains rdc: two TUNs in one namespace, so rounds can alternate
 * (load from anything else on the machine then hits both alike). Round 0 warms up, uncounted.
 */
async function readBench(env: BenchEnv, size: number, opts: BenchOptions): Promise<BenchRow[]> {
  const tso = size > SMALL;
  const perRound = tso ? 1000 : 16384;
  const rounds = opts.quick ? 2 : 6;
  const ns = env.netns(tso ? 'rdt' : 'rd');
  env.sh(
    ns,
    `sysctl -qw net.ipv4.ip_forward=1
     for t in rdm rdc; do
       ip tuntap add $t mode tun vnet_hdr
       ip link set $t txqueuelen ${perRound + 1024} up
     done
     ip route add 10.202.0.0/24 dev rdm
     ip route add 10.204.0.0/24 dev rdc`,
  );
  // rdg is where we inject; the kernel forwards into rdm or rdc, whose queue holds a full round.
  const gen = env.open({ name: 'rdg', netns: ns, offload: true });
  env.sh(ns, 'ip addr add 10.201.0.1/24 dev rdg');
  const fillBatch = (dst: string) => batchOf(packet(size, dst, tso));
  const toMptun = fillBatch('10.202.0.2');
  const toC = fillBatch('10.204.0.2');
  const fill = (batch: Frame[]) => {
    for (let i = 0; i < perRound; i += 64) gen.write(batch.slice(0, Math.min(64, perRound - i)));
  };

  const reader = env.open({ name: 'rdm', netns: ns, offload: tso });
  reader.pause();
  const child = env.spawn(ns, env.cref, [
    'read',
    'rdc',
    tso ? 'vnet' : 'plain',
    tso ? 'offload' : 'nooffload',
  ]);
  const lines = new LineReader(child);
  await lines.next();

  // mptun: paused while its queue fills, then timed from resume() to the last packet.
  const mptunRound = async (): Promise<Measured> => {
    fill(toMptun);
    let got = 0;
    let bytes = 0;
    const t0 = process.hrtime.bigint();
    const seconds = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read bench: ${got} of ${perRound} packets arrived`)),
        5000,
      );
      reader.onFrames((frames) => {
        for (const f of frames) bytes += f.data.length;
        got += frames.length;
        if (got >= perRound) {
          clearTimeout(timer);
          reader.pause();
          resolve(Number(process.hrtime.bigint() - t0) / 1e9);
        }
      });
      reader.resume();
    });
    return { packets: got, bytes, seconds };
  };
  const cRound = async (): Promise<Measured> => {
    fill(toC);
    child.stdin!.write(`go ${perRound}\n`);
    const m = parseMeasured(await lines.next());
    if (m.packets < perRound) throw new Error(`read bench (C): ${m.packets} of ${perRound} packets arrived`);
    return m;
  };

  const mptun: Measured = { packets: 0, bytes: 0, seconds: 0 };
  const c: Measured = { packets: 0, bytes: 0, seconds: 0 };
  for (let r = 0; r <= rounds; r++) {
    const m = await mptunRound();
    const cm = await cRound();
    if (r === 0) continue;
    add(mptun, m);
    add(c, cm);
  }
  child.stdin!.end();
  await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
  await env.close(reader);
  await env.close(gen);
  return rowsFor(`read ${label(size)}`, mptun, c);
}

/** Alternating chunks: mptun writes into wrm, a fresh C process into wrc; both lead to a blackhole. */
async function writeBench(env: BenchEnv, size: number, opts: BenchOptions): Promise<BenchRow[]> {
  const tso = size > SMALL;
  const chunk = tso ? 20_000 : 200_000;
  const chunks = opts.quick ? 1 : 3;
  const ns = env.netns(tso ? 'wrt' : 'wr');
  env.sh(
    ns,
    `sysctl -qw net.ipv4.ip_forward=1
     for t in wrm wrc; do ip tuntap add $t mode tun vnet_hdr; ip link set $t up; done
     ip route add blackhole 10.203.0.0/24`,
  );
  const dev = env.open({ name: 'wrm', netns: ns, offload: tso });
  const batch = batchOf(packet(size, '10.203.0.2', tso));
  const mptunChunk = async (): Promise<Measured> => {
    let sent = 0;
    const t0 = process.hrtime.bigint();
    while (sent < chunk) {
      if (!dev.write(batch)) await new Promise<void>((resolve) => dev.onDrain(resolve));
      sent += batch.length;
    }
    return { packets: sent, bytes: sent * size, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  };
  const cChunk = async (): Promise<Measured> => {
    const child = env.spawn(ns, env.cref, [
      'write',
      'wrc',
      tso ? 'vnet' : 'plain',
      String(size),
      String(chunk),
    ]);
    return parseMeasured(await new LineReader(child).next());
  };
  const mptun: Measured = { packets: 0, bytes: 0, seconds: 0 };
  const c: Measured = { packets: 0, bytes: 0, seconds: 0 };
  for (let r = 0; r <= chunks; r++) {
    const m = await mptunChunk();
    const cm = await cChunk();
    if (r === 0) continue; // warm-up
    add(mptun, m);
    add(c, cm);
  }
  const errors = dev.stats.txErrors;
  await env.close(dev);
  if (errors > 0) throw new Error(`write bench: the kernel rejected ${errors} packets`);
  return rowsFor(`write ${label(size)}`, mptun, c);
}

async function forwardBench(env: BenchEnv, opts: BenchOptions): Promise<BenchRow[]> {
  const seconds = opts.quick ? 1 : 2;
  const repeats = opts.quick ? 1 : 4;
  const a = env.netns('fa');
  const b = env.netns('fb');
  env.sh(
    a,
    `ip tuntap add fwa mode tun vnet_hdr
     ip addr add 10.210.0.1/32 dev fwa
     ip link set fwa up
     ip route add 10.210.0.2/32 dev fwa`,
  );
  env.sh(
    b,
    `ip tuntap add fwb mode tun vnet_hdr
     ip addr add 10.210.0.2/32 dev fwb
     ip link set fwb up
     ip route add 10.210.0.1/32 dev fwb`,
  );

  const mptunForwarder = async () => {
    const ta = env.open({ name: 'fwa', netns: a, offload: true });
    const tb = env.open({ name: 'fwb', netns: b, offload: true });
    const pipe = (from: TunDevice, to: TunDevice) => {
      to.onDrain(() => from.resume());
      from.onFrames((frames) => {
        if (!to.write(frames)) from.pause();
      });
    };
    pipe(ta, tb);
    pipe(tb, ta);
    return {
      stop: async () => {
        const packets = ta.stats.rxPackets + tb.stats.rxPackets;
        await env.close(ta);
        await env.close(tb);
        return packets;
      },
    };
  };
  const cForwarder = async () => {
    const child = env.spawn(a, env.cref, ['forward', 'fwa', 'fwb', `/var/run/netns/${b}`]);
    const lines = new LineReader(child);
    await lines.next();
    return {
      stop: async () => {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const packets = parseMeasured(await lines.next()).packets;
        await exited; // its TUNs are free only once it is gone
        return packets;
      },
    };
  };

  // Alternating runs (C first, then mptun first, ...), best of each: other load on the machine
  // then hits both alike.
  const runs = { mptun: [] as number[], c: [] as number[] };
  const best = { mptun: { gbps: 0, packets: 0 }, c: { gbps: 0, packets: 0 } };
  for (let r = 0; r < repeats; r++) {
    for (const which of r % 2 === 0 ? (['c', 'mptun'] as const) : (['mptun', 'c'] as const)) {
      const fwd = which === 'c' ? await cForwarder() : await mptunForwarder();
      const gbps = await iperf(env, a, b, seconds);
      const packets = await fwd.stop();
      runs[which].push(gbps);
      if (gbps > best[which].gbps) best[which] = { gbps, packets };
    }
  }
  const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
  return [
    {
      suite: SUITE,
      name: 'forward a kernel TCP flow TUN-to-TUN, TSO (mptun)',
      value: best.mptun.gbps,
      unit: 'Gbit/s',
      baseline: { name: 'C forwarder', value: best.c.gbps },
      extra: {
        seconds,
        mptunRunsGbps: list(runs.mptun),
        cRunsGbps: list(runs.c),
        mptunPackets: best.mptun.packets,
        cPackets: best.c.packets,
      },
    },
  ];
}

/** One iperf3 TCP test from `a` to `b` (10.210.0.2) for `seconds`; returns the received Gbit/s. */
async function iperf(env: BenchEnv, a: string, b: string, seconds: number): Promise<number> {
  const server = env.spawn(b, 'iperf3', ['-s', '-1', '-B', '10.210.0.2', '-p', '5201', '--forceflush']);
  const serverLines = new LineReader(server);
  for (;;) {
    const line = await serverLines.next(10_000);
    if (/Server listening/.test(line)) break;
  }
  const client = env.spawn(a, 'iperf3', ['-c', '10.210.0.2', '-p', '5201', '-t', String(seconds), '-J']);
  let out = '';
  client.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => client.kill('SIGKILL'), (seconds + 20) * 1000);
  const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
  clearTimeout(timer);
  await new Promise((resolve) => (server.exitCode === null ? server.once('exit', resolve) : resolve(null)));
  if (code !== 0) throw new Error(`iperf3 failed (${code}): ${out.slice(0, 500)}`);
  const result = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return result.end.sum_received.bits_per_second / 1e9;
}
