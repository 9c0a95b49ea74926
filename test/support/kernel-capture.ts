import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { NetnsLab } from './netns.js';

/**
 * Captures MPTCP between two Linux kernel sockets (Python, IPPROTO_MPTCP) in private namespaces,
 * for golden vectors. Topology: one veth pair with two addresses on each side, so one tcpdump
 * on the client's veth sees every subflow:
 *
 *   c: veth0  10.77.1.1/24, 10.77.2.1/24 (endpoint "subflow")  ⇄  s: veth0p 10.77.1.2/24, 10.77.2.2/24
 *
 * Connection 1 (3000 bytes echoed, no checksums): MP_CAPABLE SYN/SYN-ACK/ACK, the server's
 * `signal` endpoint announces 10.77.2.2 (ADD_ADDR + echo), the client joins it and joins again
 * from its own subflow endpoint (MP_JOIN SYN/SYN-ACK/ACK twice), DSS mappings and DATA_ACKs,
 * DATA_FIN both ways.
 * Connection 2 (1000 bytes, net.mptcp.checksum_enabled=1 on the client, no announcement): the
 * client's first data segment carries MP_CAPABLE with data-level length and checksum (24 bytes),
 * DSS mappings and DATA_FIN carry checksums, one join.
 * The capture ends with one UDP datagram to port 9 (the marker): when tcpdump has printed it,
 * everything before it is in the file, so tcpdump is stopped without guessing with a sleep.
 */
export const CAPTURE = {
  clientAddr: '10.77.1.1',
  clientAddr2: '10.77.2.1',
  serverAddr: '10.77.1.2',
  serverAddr2: '10.77.2.2',
  port: 40001,
  markerPort: 9,
  /** Connection 1: bytes echoed, extra subflows expected. */
  conn1: { bytes: 3000, joins: 2 },
  conn2: { bytes: 1000, joins: 1 },
} as const;

const PEER = fileURLToPath(new URL('./kernel-mptcp-peer.py', import.meta.url));
const TIMEOUT_MS = 15_000;

/** Collects a child's output lines so a test can wait for one without racing its arrival. */
class LineWatch {
  readonly lines: string[] = [];
  private partial = '';
  private readonly waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  constructor(stream: NodeJS.ReadableStream | null) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          const w = this.waiters[i]!;
          if (w.re.test(line)) {
            this.waiters.splice(i, 1);
            w.resolve(line);
          }
        }
      }
    });
  }

  text(): string {
    return [...this.lines, this.partial].join('\n');
  }

  /** Resolves with the first line (seen before or after the call) matching `re`. */
  find(re: RegExp): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }
}

interface Watched {
  name: string;
  child: ChildProcess;
  stdout: LineWatch;
  stderr: LineWatch;
  exited: Promise<number | string>;
}

function watch(name: string, child: ChildProcess): Watched {
  const exited = new Promise<number | string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { name, child, stdout: new LineWatch(child.stdout), stderr: new LineWatch(child.stderr), exited };
}

function describe(w: Watched): string {
  return `${w.name}: stdout:\n${w.stdout.text()}\nstderr:\n${w.stderr.text()}`;
}

/** Waits for `promise`, failing after a deadline or when the process exits first. */
async function within<T>(w: Watched, what: string, promise: Promise<T>, exitFails = true): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}\n${describe(w)}`)), TIMEOUT_MS);
  });
  const racers: Promise<T>[] = [promise, deadline];
  if (exitFails) {
    racers.push(
      w.exited.then((status) => {
        throw new Error(`${w.name} exited (${status}) before ${what}\n${describe(w)}`);
      }),
    );
  }
  try {
    return await Promise.race(racers);
  } finally {
    clearTimeout(timer);
  }
}

async function expectSuccess(w: Watched): Promise<void> {
  const status = await within(w, 'exit', w.exited, false);
  if (status !== 0) throw new Error(`${w.name} failed (${status})\n${describe(w)}`);
}

export interface KernelCaptureResult {
  /** Path-manager event numbers the client saw, per connection (6 ANNOUNCED, 10 SUB_ESTABLISHED). */
  clientEvents: number[][];
}

/** Builds the namespaces, runs both connections under tcpdump, writes `pcapPath`. */
export async function captureKernelMptcp(lab: NetnsLab, pcapPath: string): Promise<KernelCaptureResult> {
  const c = lab.add('c');
  const s = lab.add('s');
  for (const ns of [c, s]) {
    // No IPv6 chatter (MLD, router solicitations) on the link: the capture holds only our traffic.
    lab.exec(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    lab.exec(ns, 'ip', 'mptcp', 'limits', 'set', 'subflow', '2', 'add_addr_accepted', '2');
  }
  lab.veth(c, `${CAPTURE.clientAddr}/24`, s, `${CAPTURE.serverAddr}/24`, 'veth0');
  lab.exec(c, 'ip', 'addr', 'add', `${CAPTURE.clientAddr2}/24`, 'dev', 'veth0');
  lab.exec(s, 'ip', 'addr', 'add', `${CAPTURE.serverAddr2}/24`, 'dev', 'veth0p');
  lab.exec(c, 'ip', 'mptcp', 'endpoint', 'add', CAPTURE.clientAddr2, 'dev', 'veth0', 'subflow');
  lab.exec(s, 'ip', 'mptcp', 'endpoint', 'add', CAPTURE.serverAddr2, 'dev', 'veth0p', 'signal');

  const tcpdump = watch(
    'tcpdump',
    lab.spawn(c, 'tcpdump', [
      '-i',
      'veth0',
      '-w',
      pcapPath,
      '-U',
      '--immediate-mode',
      // Keep root: the pcap is written by the user that runs the test, not tcpdump's own.
      '-Z',
      'root',
      // Also print each packet (after it is written and flushed): that is how we see the marker.
      '--print',
      '-l',
      '-n',
      `tcp or (udp and dst port ${CAPTURE.markerPort})`,
    ]),
  );
  await within(tcpdump, "tcpdump's 'listening on'", tcpdump.stderr.find(/listening on/));

  const clientEvents: number[][] = [];
  for (const conn of [CAPTURE.conn1, CAPTURE.conn2]) {
    if (conn === CAPTURE.conn2) {
      lab.exec(s, 'ip', 'mptcp', 'endpoint', 'flush');
      lab.exec(c, 'sysctl', '-qw', 'net.mptcp.checksum_enabled=1');
    }
    const server = watch(
      'server',
      lab.spawn(s, 'python3', [PEER, 'server', '0.0.0.0', String(CAPTURE.port)]),
    );
    await within(server, 'the server to listen', server.stdout.find(/^listening$/));
    const client = watch(
      'client',
      lab.spawn(c, 'python3', [
        PEER,
        'client',
        CAPTURE.serverAddr,
        String(CAPTURE.port),
        String(conn.bytes),
        String(conn.joins),
      ]),
    );
    await expectSuccess(client);
    await expectSuccess(server);
    clientEvents.push(
      client.stdout.lines.flatMap((l) => (l.startsWith('event ') ? [Number(l.slice(6))] : [])),
    );
  }

  lab.exec(c, 'python3', PEER, 'marker', CAPTURE.serverAddr, String(CAPTURE.markerPort), 'mptun-capture-end');
  await within(tcpdump, 'the marker in the capture', tcpdump.stdout.find(/ UDP, length/));
  tcpdump.child.kill('SIGINT');
  await expectSuccess(tcpdump);
  return { clientEvents };
}
