/**
 * The measured part of a test, the same on client and server: data streams that send or count,
 * interval reports, the results we send at EXCHANGE_RESULTS and the final summary (text lines
 * like iperf3's and the `-J` JSON objects people read: end.sum_sent / end.sum_received).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log.js';
import type { MptcpInfo, MptcpSubflowInfo } from '../../stack/mptcp/connection.js';
import { releaseChunk } from '../../stack/tcp/slab-pool.js';
import {
  formatBytes,
  formatCounterBlock,
  formatLine,
  formatRate,
  intervalHeader,
  type LineFields,
  SEPARATOR,
  senderIntervalHeader,
  summaryHeader,
} from './format.js';
import type { StreamResult, TestResults } from './protocol.js';
import type { PerfConnection, StackCounterReport, TcpInfo } from './stack.js';

/**
 * Writes before yielding to the event loop, so timers (test end, intervals) stay on time and
 * the stack sends while we fill its buffer: at 64 the first turn filled a 4 MiB MPTCP send
 * buffer (fresh pages, ~27 ms here) before the first segment left.
 */
const WRITES_PER_TURN = 4;

export interface SessionOptions {
  /** This side sends data (client without -R, server with -R). */
  sender: boolean;
  blockSize: number;
  /** -n: the test ends once this many bytes were sent or received (0: no byte limit). */
  bytesLimit: number;
  /** Seconds between interval reports; 0 turns them off. */
  intervalSec: number;
  /** Text lines go here (not called in JSON mode). */
  print?: (line: string) => void;
  /** false: interval reports are not printed as lines (a live display shows them instead). */
  intervalLines?: boolean;
  /** Called with each interval report (the object `-J` lists under `intervals`). */
  onInterval?: (interval: Record<string, unknown>) => void;
  log: Logger;
}

export class DataStream {
  bytes = 0;
  markBytes = 0;
  markRetr = 0;
  endSec = 0;
  info: TcpInfo | undefined;
  /** The MPTCP connection as it was at the end of the test (undefined: plain TCP). */
  mptcp: MptcpInfo | undefined;
  /** Per subflow id: its byte count at the last interval report. */
  readonly subflowMarks = new Map<number, number>();

  constructor(
    readonly id: number,
    readonly conn: PerfConnection,
  ) {}
}

type JsonObject = Record<string, unknown>;

export class PerfSession {
  readonly streams: DataStream[] = [];
  readonly intervals: JsonObject[] = [];
  private startMs = 0;
  private markMs = 0;
  private cpuStart: NodeJS.CpuUsage | undefined;
  private cpu = { total: 0, user: 0, system: 0 };
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private running = false;
  private stopped = false;
  private remaining: number;
  private received = 0;
  private block: Buffer;
  private limitListener: (() => void) | undefined;
  private failureListener: ((err: Error) => void) | undefined;

  constructor(private readonly opts: SessionOptions) {
    this.remaining = opts.sender && opts.bytesLimit > 0 ? opts.bytesLimit : Number.POSITIVE_INFINITY;
    // iperf3 fills its block with random bytes once; so do we.
    this.block = Buffer.alloc(opts.blockSize);
    for (let i = 0; i < this.block.length; i += 4)
      this.block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  }

  add(id: number, conn: PerfConnection): DataStream {
    const s = new DataStream(id, conn);
    this.streams.push(s);
    conn.stream.on('error', (err: Error) => {
      if (this.running) {
        this.failureListener?.(err);
      } else {
        this.opts.log.debug({ stream: id, err: err.message }, 'perf: data stream error after the test');
      }
    });
    return s;
  }

  /** Called once when -n is reached (bytes sent by us, or received by us). */
  onLimit(fn: () => void): void {
    this.limitListener = fn;
  }

  /** Called when a data stream fails while the test runs. */
  onFailure(fn: (err: Error) => void): void {
    this.failureListener = fn;
  }

  start(): void {
    this.started = true;
    this.startMs = this.markMs = performance.now();
    this.cpuStart = process.cpuUsage();
    this.running = true;
    if (this.opts.intervalSec > 0) {
      this.intervalPrint?.(this.liveInfo() ? senderIntervalHeader() : intervalHeader());
      this.timer = setInterval(() => this.interval(), this.opts.intervalSec * 1000);
    }
    for (const s of this.streams) {
      if (this.opts.sender) this.pump(s);
      else this.count(s);
    }
  }

  /** Ends the measurement: no more writes; the last partial interval is reported. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    // A test that failed before it ran has nothing to report.
    if (!this.started) return;
    if (this.timer) clearInterval(this.timer);
    const now = performance.now();
    const elapsed = (now - this.markMs) / 1000;
    // Like iperf3: a short tail interval is still shown if it is worth a tenth of an interval.
    if (this.opts.intervalSec > 0 && elapsed >= this.opts.intervalSec / 10) this.interval();
    const endSec = (now - this.startMs) / 1000;
    for (const s of this.streams) s.endSec = round6(endSec);
    const used = process.cpuUsage(this.cpuStart);
    const wallUs = Math.max(1, (now - this.startMs) * 1000);
    this.cpu = {
      user: (used.user / wallUs) * 100,
      system: (used.system / wallUs) * 100,
      total: ((used.user + used.system) / wallUs) * 100,
    };
    for (const s of this.streams) {
      if (!this.opts.sender) s.conn.stream.pause();
    }
  }

  /** Reads TCP details for every stream (before the connections close). */
  async collectTcpInfo(): Promise<void> {
    await Promise.all(
      this.streams.map(async (s) => {
        s.info = await s.conn.tcpInfo();
        s.mptcp = s.conn.mptcpInfo?.();
      }),
    );
  }

  /**
   * At TEST_END, like iperf3's close(): a sender's bytes already queued still go out, then FIN
   * (an RST here would make the peer's last reads fail); a receiver just closes (RST if unread
   * bytes remain, as the kernel does).
   */
  finishStreams(): void {
    for (const s of this.streams) {
      const stream = s.conn.stream;
      if (this.opts.sender && !stream.destroyed) stream.end();
      else stream.destroy();
    }
  }

  /** When the test is over for good: whatever is still open is closed now. */
  destroyStreams(): void {
    for (const s of this.streams) s.conn.stream.destroy();
  }

  /** Our half of EXCHANGE_RESULTS. */
  results(congestion: string | undefined): TestResults {
    const haveRetr = this.opts.sender && this.streams.every((s) => s.info?.retransmits !== undefined);
    const streams: StreamResult[] = this.streams.map((s) => ({
      id: s.id,
      bytes: s.bytes,
      retransmits: this.opts.sender ? (s.info?.retransmits ?? -1) : -1,
      jitter: 0,
      errors: 0,
      omitted_errors: 0,
      packets: 0,
      omitted_packets: 0,
      start_time: 0,
      end_time: s.endSec,
    }));
    return {
      cpu_util_total: this.cpu.total,
      cpu_util_user: this.cpu.user,
      cpu_util_system: this.cpu.system,
      sender_has_retransmits: this.opts.sender ? (haveRetr ? 1 : 0) : -1,
      ...(congestion === undefined ? {} : { congestion_used: congestion }),
      streams,
    };
  }

  /**
   * The final report from our results and the peer's: text lines (iperf3's sender/receiver
   * lines) and the JSON `end` object. A stack that keeps counters (`--stack user`) adds them:
   * a block of text lines and `end.mptun.stack_counters`, non-zero ones only.
   */
  summary(
    peer: TestResults | undefined,
    stackLine: string,
    stackCounters?: StackCounterReport,
  ): { lines: string[]; end: JsonObject } {
    const lines: string[] = [SEPARATOR, summaryHeader()];
    const jsonStreams: JsonObject[] = [];
    const sum = { sent: 0, received: 0, retr: 0, haveRetr: true, sendSec: 0, recvSec: 0 };
    const rows: { sender: LineFields; receiver: LineFields }[] = [];
    for (const s of this.streams) {
      const remote = peer?.streams.find((r) => r.id === s.id);
      const local = { bytes: s.bytes, seconds: s.endSec };
      const other = remote ? { bytes: remote.bytes, seconds: remote.end_time } : undefined;
      const sent = this.opts.sender ? local : other;
      const recv = this.opts.sender ? other : local;
      const retr = this.opts.sender
        ? s.info?.retransmits
        : peer?.sender_has_retransmits === 1 && remote && remote.retransmits >= 0
          ? remote.retransmits
          : undefined;
      if (retr === undefined) sum.haveRetr = false;
      else sum.retr += retr;
      const sender: LineFields = {
        id: s.id,
        start: 0,
        end: sent?.seconds ?? 0,
        seconds: sent?.seconds ?? 0,
        bytes: sent?.bytes ?? 0,
        role: 'sender',
        ...(retr === undefined ? {} : { retransmits: retr }),
      };
      const receiver: LineFields = {
        id: s.id,
        start: 0,
        end: recv?.seconds ?? 0,
        seconds: recv?.seconds ?? 0,
        bytes: recv?.bytes ?? 0,
        role: 'receiver',
      };
      rows.push({ sender, receiver });
      sum.sent += sender.bytes;
      sum.received += receiver.bytes;
      sum.sendSec = Math.max(sum.sendSec, sender.seconds);
      sum.recvSec = Math.max(sum.recvSec, receiver.seconds);
      jsonStreams.push({
        sender: {
          ...endJson(sender, this.opts.sender),
          ...(retr === undefined ? {} : { retransmits: retr }),
        },
        receiver: endJson(receiver, this.opts.sender),
      });
    }
    for (const r of rows) lines.push(formatLine(r.sender), formatLine(r.receiver));
    const sumSent: LineFields = {
      id: 'SUM',
      start: 0,
      end: sum.sendSec,
      seconds: sum.sendSec,
      bytes: sum.sent,
      role: 'sender',
      ...(sum.haveRetr ? { retransmits: sum.retr } : {}),
    };
    const sumRecv: LineFields = {
      id: 'SUM',
      start: 0,
      end: sum.recvSec,
      seconds: sum.recvSec,
      bytes: sum.received,
      role: 'receiver',
    };
    if (rows.length > 1) lines.push(formatLine(sumSent), formatLine(sumRecv));
    const tcp = this.streams.map((s) => ({
      id: s.id,
      options: s.info?.options ?? [],
      ...(s.info?.rttMs === undefined ? {} : { rtt_ms: s.info.rttMs }),
      ...(s.info?.rttVarMs === undefined ? {} : { rttvar_ms: s.info.rttVarMs }),
      ...(s.info?.retransmits === undefined ? {} : { retransmits: s.info.retransmits }),
      ...(s.info?.congestion === undefined ? {} : { congestion: s.info.congestion }),
    }));
    lines.push(`stack: ${stackLine}`);
    for (const t of tcp) {
      const rtt =
        t.rtt_ms === undefined
          ? 'rtt unknown'
          : `rtt ${t.rtt_ms.toFixed(3)} ms (rttvar ${(t.rttvar_ms ?? 0).toFixed(3)} ms)`;
      const opts = t.options.length > 0 ? t.options.join(', ') : 'unknown';
      const retr = t.retransmits === undefined ? 'unknown' : String(t.retransmits);
      lines.push(`${streamLabelShort(t.id)} TCP options: ${opts}; retransmissions ${retr}; ${rtt}`);
    }
    const mptcp: JsonObject[] = [];
    for (const s of this.streams) {
      if (s.mptcp === undefined) continue;
      mptcp.push({ socket: s.id, ...mptcpJson(s.mptcp) });
      lines.push(...mptcpSummaryLines(s.id, s.mptcp));
    }
    if (stackCounters !== undefined) {
      lines.push(
        ...formatCounterBlock('stack counters (non-zero only, totals since the stack started):', [
          ['iface', stackCounters.counters],
          ['tcp', stackCounters.tcp],
          ['mptcp', stackCounters.mptcp ?? {}],
          ['parse errors', stackCounters.parseErrors],
        ]),
      );
    }
    const localCong = this.streams.find((s) => s.info?.congestion)?.info?.congestion;
    const end: JsonObject = {
      streams: jsonStreams,
      sum_sent: { ...endJson(sumSent, this.opts.sender), ...(sum.haveRetr ? { retransmits: sum.retr } : {}) },
      sum_received: endJson(sumRecv, this.opts.sender),
      cpu_utilization_percent: {
        host_total: this.cpu.total,
        host_user: this.cpu.user,
        host_system: this.cpu.system,
        remote_total: peer?.cpu_util_total ?? 0,
        remote_user: peer?.cpu_util_user ?? 0,
        remote_system: peer?.cpu_util_system ?? 0,
      },
      ...(this.opts.sender
        ? {
            ...(localCong ? { sender_tcp_congestion: localCong } : {}),
            ...(peer?.congestion_used ? { receiver_tcp_congestion: peer.congestion_used } : {}),
          }
        : {
            ...(peer?.congestion_used ? { sender_tcp_congestion: peer.congestion_used } : {}),
            ...(localCong ? { receiver_tcp_congestion: localCong } : {}),
          }),
      mptun: {
        stack: stackLine,
        tcp,
        ...(mptcp.length === 0 ? {} : { mptcp }),
        ...(stackCounters === undefined ? {} : { stack_counters: { ...COUNTERS_NOTE, ...stackCounters } }),
      },
    };
    return { lines, end };
  }

  /** Where interval lines go: nowhere when a live display replaces them. */
  private get intervalPrint(): ((line: string) => void) | undefined {
    return this.opts.intervalLines === false ? undefined : this.opts.print;
  }

  private interval(): void {
    const print = this.intervalPrint;
    const now = performance.now();
    const start = (this.markMs - this.startMs) / 1000;
    const end = (now - this.startMs) / 1000;
    const seconds = (now - this.markMs) / 1000;
    this.markMs = now;
    const json: JsonObject[] = [];
    let total = 0;
    let totalRetr = 0;
    const live = this.liveInfo();
    for (const s of this.streams) {
      const bytes = s.bytes - s.markBytes;
      s.markBytes = s.bytes;
      total += bytes;
      const info = live ? s.conn.tcpInfoNow?.() : undefined;
      const fields: LineFields = { id: s.id, start, end, seconds, bytes };
      const extra: JsonObject = {};
      if (info?.retransmits !== undefined) {
        const retr = info.retransmits - s.markRetr;
        s.markRetr = info.retransmits;
        totalRetr += retr;
        fields.retransmits = retr;
        extra['retransmits'] = retr;
      }
      if (info?.cwnd !== undefined) {
        fields.cwnd = info.cwnd;
        extra['snd_cwnd'] = info.cwnd;
      }
      // iperf3 reports RTT in microseconds.
      if (info?.rttMs !== undefined) extra['rtt'] = Math.round(info.rttMs * 1000);
      if (info?.rttVarMs !== undefined) extra['rttvar'] = Math.round(info.rttVarMs * 1000);
      print?.(formatLine(fields));
      const mp = s.conn.mptcpInfo?.();
      if (mp !== undefined) {
        const subflows = this.subflowIntervals(s, mp, seconds);
        extra['mptcp'] = { fallback: mp.fallback, subflows: subflows.map((x) => x.json) };
        if (mp.fallback) print?.(`${streamLabelShort(s.id)}   MPTCP fell back to TCP`);
        for (const x of subflows) print?.(x.line);
      }
      json.push({ ...intervalJson(s.id, start, end, seconds, bytes, this.opts.sender), ...extra });
    }
    if (this.streams.length > 1) {
      print?.(
        formatLine({
          id: 'SUM',
          start,
          end,
          seconds,
          bytes: total,
          ...(live ? { retransmits: totalRetr } : {}),
        }),
      );
    }
    const { socket: _socket, ...sum } = intervalJson(0, start, end, seconds, total, this.opts.sender);
    const report = { streams: json, sum: live ? { ...sum, retransmits: totalRetr } : sum };
    this.intervals.push(report);
    this.opts.onInterval?.(report);
  }

  /**
   * One line and one JSON object per live subflow for this interval: its bytes (acknowledged
   * when we send, received when we receive), rate, RTT and congestion window.
   */
  private subflowIntervals(
    s: DataStream,
    mp: MptcpInfo,
    seconds: number,
  ): { line: string; json: JsonObject }[] {
    return mp.subflows.map((sf) => {
      const total = this.opts.sender ? sf.info.bytesAcked : sf.info.bytesReceived;
      const bytes = total - (s.subflowMarks.get(sf.id) ?? 0);
      s.subflowMarks.set(sf.id, total);
      const rate = seconds > 0 ? (bytes * 8) / seconds : 0;
      const rtt = sf.info.srtt === undefined ? 'rtt -' : `rtt ${sf.info.srtt.toFixed(3)} ms`;
      const line = `${streamLabelShort(s.id)}   sf${sf.id} ${sf.role.padEnd(7)} ${sf.local} > ${sf.remote}  ${formatBytes(bytes).padStart(11)}  ${formatRate(rate).padStart(15)}  ${rtt}  cwnd ${formatBytes(sf.info.cwnd).trim()}${sf.backup ? '  backup' : ''}`;
      return {
        line,
        json: {
          ...subflowJson(sf),
          bytes,
          bits_per_second: rate,
        },
      };
    });
  }

  /** A sender whose stack answers TCP questions at once gets iperf3's Retr and Cwnd columns. */
  private liveInfo(): boolean {
    return this.opts.sender && this.streams.length > 0 && this.streams.every((s) => s.conn.tcpInfoNow);
  }

  private count(s: DataStream): void {
    // The only reader of these bytes: each chunk goes back to the receive-slab pool once counted.
    s.conn.stream.on('data', (chunk: Buffer) => {
      releaseChunk(chunk);
      if (!this.running) return;
      s.bytes += chunk.length;
      this.received += chunk.length;
      if (this.opts.bytesLimit > 0 && this.received >= this.opts.bytesLimit) {
        const fire = this.limitListener;
        this.limitListener = undefined;
        fire?.();
      }
    });
    s.conn.stream.resume();
  }

  private pump(s: DataStream): void {
    const stream = s.conn.stream;
    const write = (): void => {
      for (let i = 0; i < WRITES_PER_TURN; i++) {
        if (!this.running || stream.destroyed) return;
        const n = Math.min(this.block.length, this.remaining);
        if (n <= 0) {
          const fire = this.limitListener;
          this.limitListener = undefined;
          fire?.();
          return;
        }
        this.remaining -= n;
        s.bytes += n;
        const ok = stream.write(n === this.block.length ? this.block : this.block.subarray(0, n));
        if (!ok) return; // 'drain' resumes us
      }
      setImmediate(write);
    };
    stream.on('drain', write);
    // Data from the receiver on a data connection is unexpected; read and drop it.
    stream.resume();
    write();
  }
}

/** A subflow in -J: addresses, bytes, RTT, congestion window (RTT in µs like iperf3's). */
function subflowJson(sf: MptcpSubflowInfo): JsonObject {
  const i = sf.info;
  return {
    id: sf.id,
    role: sf.role,
    local: sf.local,
    remote: sf.remote,
    state: i.state,
    fully_established: sf.fullyEstablished,
    backup: sf.backup,
    bytes_sent: i.bytesSent,
    bytes_acked: i.bytesAcked,
    bytes_received: i.bytesReceived,
    bytes_retransmitted: i.bytesRetransmitted,
    retransmits: i.retransmitSegments,
    ...(i.srtt === undefined ? {} : { rtt: Math.round(i.srtt * 1000) }),
    ...(i.rttvar === undefined ? {} : { rttvar: Math.round(i.rttvar * 1000) }),
    snd_cwnd: i.cwnd,
  };
}

function hexToken(t: number): string {
  return t.toString(16).padStart(8, '0');
}

/** The connection in -J: fallback, tokens (hex, as `ss -M` prints them), the peer's C flag. */
function mptcpJson(mp: MptcpInfo): JsonObject {
  return {
    fallback: mp.fallback,
    checksum: mp.checksum,
    local_token: hexToken(mp.localToken),
    remote_token: hexToken(mp.remoteToken),
    peer_c_flag: mp.peerCFlag,
    bytes_sent: mp.bytesSent,
    bytes_received: mp.bytesReceived,
    reinjected_bytes: mp.reinjectedBytes,
    subflows: mp.subflows.map(subflowJson),
  };
}

function mptcpSummaryLines(id: number, mp: MptcpInfo): string[] {
  const label = streamLabelShort(id);
  if (mp.fallback)
    return [`${label} MPTCP: fell back to TCP (the peer has no MPTCP, or options were stripped)`];
  const lines = [
    `${label} MPTCP: tokens local ${hexToken(mp.localToken)} remote ${hexToken(mp.remoteToken)}; peer C flag ${mp.peerCFlag ? 'set' : 'clear'}; DSS checksums ${mp.checksum ? 'on' : 'off'}; ${mp.subflows.length} subflow${mp.subflows.length === 1 ? '' : 's'}; reinjected ${mp.reinjectedBytes} bytes`,
  ];
  for (const sf of mp.subflows) {
    const i = sf.info;
    const rtt = i.srtt === undefined ? 'rtt unknown' : `rtt ${i.srtt.toFixed(3)} ms`;
    lines.push(
      `${label}   sf${sf.id} ${sf.role} ${sf.local} > ${sf.remote}: sent ${formatBytes(i.bytesSent).trim()}, received ${formatBytes(i.bytesReceived).trim()}; retransmissions ${i.retransmitSegments}; ${rtt}; cwnd ${formatBytes(i.cwnd).trim()}${sf.backup ? '; backup' : ''}`,
    );
  }
  return lines;
}

/** Says in the JSON itself what the counters are (absent names are zero). */
const COUNTERS_NOTE = { note: 'non-zero counters only (absent means 0); totals since the stack started' };

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function streamLabelShort(id: number): string {
  return `[${String(id).padStart(3)}]`;
}

function endJson(f: LineFields, sender: boolean): JsonObject {
  return {
    ...(f.id === 'SUM' ? {} : { socket: f.id }),
    start: f.start,
    end: f.end,
    seconds: f.seconds,
    bytes: f.bytes,
    bits_per_second: f.seconds > 0 ? (f.bytes * 8) / f.seconds : 0,
    sender,
  };
}

function intervalJson(
  id: number,
  start: number,
  end: number,
  seconds: number,
  bytes: number,
  sender: boolean,
): JsonObject {
  return {
    socket: id,
    start,
    end,
    seconds,
    bytes,
    bits_per_second: seconds > 0 ? (bytes * 8) / seconds : 0,
    omitted: false,
    sender,
  };
}
