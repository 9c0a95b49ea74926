import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { CommandModule } from 'yargs';
import { PermissionError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { openTun, type TunDevice } from '../../stack/device/tun-device.js';
import { commandContext, type GlobalOptions } from '../cli.js';
import { EchoResponder } from '../echo-responder.js';
import { addAddress, addNetns, deleteNetns, netnsExists } from '../host-net.js';

interface SelfcheckOptions extends GlobalOptions {
  count: number;
  offload: boolean;
}

const TUN_NAME = 'mptun0';
const OUR_ADDR = '100.64.0.1';
const RESPONDER_ADDR = '100.64.0.2';
const UDP_PORT = 7777;

export const selfcheckCommand: CommandModule<GlobalOptions, SelfcheckOptions> = {
  command: 'selfcheck',
  describe: 'Bring up a TUN in a private network namespace and round-trip packets through it',
  builder: (y) =>
    y
      .option('count', {
        type: 'number',
        default: 5,
        describe: 'Pings and UDP datagrams to send (1-100)',
      })
      .option('offload', {
        type: 'boolean',
        default: true,
        describe: 'Open the TUN with virtio-net headers and checksum/TSO offload, as the proxies do',
      })
      .check((a) => {
        if (!Number.isInteger(a.count) || a.count < 1 || a.count > 100) return '--count must be 1-100';
        return true;
      }),
  handler: async (args) => {
    const { log } = commandContext(args);
    const check = new Selfcheck(args.count, args.offload, log);
    const interrupted = (signal: NodeJS.Signals) => {
      process.stderr.write(`selfcheck: ${signal}, cleaning up\n`);
      check.cleanup().finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupted);
    process.once('SIGTERM', interrupted);
    try {
      const report = await check.run();
      process.stdout.write(`${report.lines.join('\n')}\n`);
      if (report.failures.length > 0) {
        process.stdout.write(`selfcheck FAILED: ${report.failures.join('; ')}\n`);
        process.exitCode = 1;
      } else {
        process.stdout.write('selfcheck passed\n');
      }
    } finally {
      await check.cleanup();
      process.off('SIGINT', interrupted);
      process.off('SIGTERM', interrupted);
      log.debug('selfcheck: cleaned up');
    }
  },
};

interface Report {
  lines: string[];
  failures: string[];
}

/** Runs a check once; cleanup() is safe to call at any time and more than once. */
class Selfcheck {
  private readonly ns = `mptun-selfcheck-${process.pid}-${randomBytes(2).toString('hex')}`;
  private nsCreated = false;
  private dev: TunDevice | undefined;
  private readonly children = new Set<ChildProcess>();

  constructor(
    private readonly count: number,
    private readonly offload: boolean,
    private readonly log: Logger,
  ) {}

  async run(): Promise<Report> {
    try {
      addNetns(this.ns);
    } catch (err) {
      if (err instanceof Error && /Operation not permitted|Permission denied/.test(err.message)) {
        throw new PermissionError(
          'selfcheck creates a network namespace and a TUN: run it as root (or with CAP_SYS_ADMIN and CAP_NET_ADMIN)',
          { cause: err },
        );
      }
      throw err;
    }
    this.nsCreated = true;
    this.dev = openTun({ name: TUN_NAME, netns: this.ns, offload: this.offload });
    addAddress(this.ns, TUN_NAME, `${OUR_ADDR}/24`);
    const responder = new EchoResponder(this.dev);
    this.log.info(
      { netns: this.ns, tun: TUN_NAME },
      'selfcheck: TUN up in a private namespace, responder running',
    );
    const lines = [
      `mptun selfcheck: TUN ${TUN_NAME} (offload ${this.offload ? 'on' : 'off'}) in private network namespace ${this.ns}`,
      `  kernel side ${OUR_ADDR}, our responder ${RESPONDER_ADDR} (ICMP echo and UDP echo on port ${UDP_PORT})`,
    ];
    const failures: string[] = [];

    const ping = await this.ping();
    if (ping === undefined) {
      lines.push(
        '  ICMP echo: skipped, the ping command is not installed (Debian: apt-get install iputils-ping)',
      );
    } else {
      lines.push(
        `  ICMP echo (kernel ping):   ${ping.sent} sent, ${ping.received} received${rtt(ping.rtts)}`,
      );
      if (ping.received !== this.count || ping.problem) {
        failures.push(ping.problem ?? `ICMP: ${ping.received} of ${ping.sent} replies came back`);
      }
    }
    const udp = await this.udp();
    lines.push(
      `  UDP echo (kernel socket):  ${udp.sent} sent, ${udp.received} received, ${udp.intact} intact${rtt(udp.rtts)}`,
    );
    if (udp.error) failures.push(`UDP: ${udp.error}`);
    else if (udp.intact !== this.count)
      failures.push(`UDP: ${udp.intact} of ${udp.sent} datagrams came back intact`);
    const s = this.dev.stats;
    lines.push(
      `  device: received ${s.rxPackets} packets in ${s.rxBatches} batches, sent ${s.txPackets}, write errors ${s.txErrors}`,
    );
    const dropped = Object.entries(responder.stats.dropped);
    if (dropped.length > 0)
      lines.push(`  responder ignored: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    return { lines, failures };
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    this.children.clear();
    const dev = this.dev;
    this.dev = undefined;
    if (dev) await dev.close();
    if (this.nsCreated && netnsExists(this.ns)) deleteNetns(this.ns);
    this.nsCreated = false;
  }

  private async ping(): Promise<
    { sent: number; received: number; rtts: number[]; problem?: string } | undefined
  > {
    const args = ['-n', '-c', String(this.count), '-i', '0.2', '-W', '2', '-p', '6d7074756e', RESPONDER_ADDR];
    const r = await this.exec('ping', args);
    if (r.notFound) return undefined;
    const counts = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    const problem = /wrong data|DUP!/.test(r.stdout)
      ? 'ICMP: replies with wrong data or duplicates'
      : undefined;
    return {
      sent: Number(counts?.[1] ?? this.count),
      received: Number(counts?.[2] ?? 0),
      rtts,
      ...(problem ? { problem } : {}),
    };
  }

  /** A Node.js child inside the namespace sends numbered datagrams one at a time and times each. */
  private async udp(): Promise<{
    sent: number;
    received: number;
    intact: number;
    rtts: number[];
    error?: string;
  }> {
    const script = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
const out = { sent: 0, received: 0, intact: 0, rtts: [] };
let i = 0, payload, t0, timer;
function next() {
  if (i === ${this.count}) return done();
  payload = Buffer.from('mptun selfcheck datagram ' + i + ' ' + 'x'.repeat(i * 10));
  t0 = process.hrtime.bigint();
  timer = setTimeout(() => { i++; next(); }, 2000);
  s.send(payload, ${UDP_PORT}, '${RESPONDER_ADDR}');
  out.sent++;
}
s.on('message', (msg, rinfo) => {
  clearTimeout(timer);
  out.received++;
  if (msg.equals(payload) && rinfo.port === ${UDP_PORT} && rinfo.address === '${RESPONDER_ADDR}') out.intact++;
  out.rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  i++; next();
});
function done() { s.close(); process.stdout.write(JSON.stringify(out)); }
next();
`;
    const r = await this.exec(process.execPath, ['-e', script]);
    try {
      return JSON.parse(r.stdout);
    } catch {
      return {
        sent: 0,
        received: 0,
        intact: 0,
        rtts: [],
        error: `the UDP client failed: ${r.stderr.trim() || `exit ${r.code}`}`,
      };
    }
  }

  private exec(
    cmd: string,
    args: string[],
  ): Promise<{ code: number | null; stdout: string; stderr: string; notFound: boolean }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      // Bounded: a wedged child is killed rather than hanging the check.
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000 + this.count * 2_500);
      child.once('close', (code) => {
        clearTimeout(timer);
        this.children.delete(child);
        // `ip netns exec` reports a missing program on stderr and exits 255.
        const notFound = code !== 0 && /No such file or directory/.test(stderr) && /exec of/.test(stderr);
        resolve({ code, stdout, stderr, notFound });
      });
    });
  }
}

function rtt(samples: number[]): string {
  if (samples.length === 0) return '';
  const min = Math.min(...samples);
  const max = Math.max(...samples);
  const avg = samples.reduce((a, b) => a + b, 0) / samples.length;
  return `, rtt min/avg/max ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)} ms`;
}
