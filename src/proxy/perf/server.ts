/**
 * `mptun perf server`: answers iperf3 clients (stock or ours), one test at a time like iperf3;
 * a second client while a test runs gets ACCESS_DENIED.
 */
import os from 'node:os';
import { PerfError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { PERF_VERSION } from './client.js';
import {
  ACCESS_DENIED,
  CLIENT_TERMINATE,
  COOKIE_SIZE,
  ControlChannel,
  CREATE_STREAMS,
  closeGracefully,
  cookieText,
  DEFAULT_BLOCK_SIZE,
  DISPLAY_RESULTS,
  EXCHANGE_RESULTS,
  IE_BLOCK_SIZE,
  IE_NUM_STREAMS,
  IE_UNIMPLEMENTED,
  IPERF_DONE,
  MAX_BLOCK_SIZE,
  MAX_STREAMS,
  PARAM_EXCHANGE,
  parseResults,
  readPrefix,
  SERVER_ERROR,
  streamId,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
  type TestParams,
  type TestResults,
} from './protocol.js';
import { PerfSession } from './session.js';
import type { PerfConnection, PerfListener, PerfStack } from './stack.js';

/** A connection that has not sent its cookie by then is dropped. */
const COOKIE_TIMEOUT_MS = 10_000;
/** The client's parameters must arrive within this time after PARAM_EXCHANGE. */
const PARAMS_TIMEOUT_MS = 10_000;
/** Data connections must all arrive within this time after CREATE_STREAMS. */
const STREAMS_TIMEOUT_MS = 10_000;

export interface ServerOptions {
  port: number;
  bind?: string;
  interval: number;
  json: boolean;
  /** Stop after one test (iperf3's -1). */
  oneOff: boolean;
  stack: PerfStack;
  log: Logger;
  print: (line: string) => void;
}

export type JsonReport = Record<string, unknown>;

export class PerfServer {
  private listener: PerfListener | undefined;
  private test: ServerTest | undefined;
  private testCount = 0;
  private doneListeners: ((r: JsonReport | Error) => void)[] = [];
  private closing = false;

  constructor(private readonly o: ServerOptions) {}

  async start(): Promise<PerfListener> {
    this.listener = await this.o.stack.listen(this.o.port, this.o.bind, (c) => this.accept(c));
    this.o.log.info(
      { address: this.listener.address, port: this.listener.port, stack: this.o.stack.name },
      'perf server: listening',
    );
    this.banner();
    return this.listener;
  }

  /** Resolves with each finished test's report (or its error), in order. */
  onTestDone(fn: (r: JsonReport | Error) => void): void {
    this.doneListeners.push(fn);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.test?.abort();
    await this.listener?.close();
  }

  private banner(): void {
    if (this.o.json || this.closing) return;
    this.o.print('-----------------------------------------------------------');
    this.o.print(
      `Server listening on ${this.listener?.port ?? this.o.port} (test #${this.testCount + 1}, stack: ${this.o.stack.description})`,
    );
    this.o.print('-----------------------------------------------------------');
  }

  private accept(conn: PerfConnection): void {
    const timer = setTimeout(() => conn.stream.destroy(), COOKIE_TIMEOUT_MS);
    readPrefix(conn.stream, COOKIE_SIZE)
      .then(({ prefix, rest }) => {
        clearTimeout(timer);
        const test = this.test;
        if (test?.wantsStream(prefix)) {
          test.addStream(conn, rest);
        } else if (test !== undefined || this.closing) {
          // iperf3 runs one test at a time: the newcomer is told the server is busy.
          const deny = Buffer.alloc(1);
          deny.writeInt8(ACCESS_DENIED, 0);
          conn.stream.end(deny);
        } else {
          this.run(conn, prefix, rest);
        }
      })
      .catch((err: Error) => {
        clearTimeout(timer);
        this.o.log.debug({ err: err.message }, 'perf server: connection without a cookie');
        conn.stream.destroy();
      });
  }

  private run(conn: PerfConnection, cookie: Buffer, rest: Buffer): void {
    const test = new ServerTest(this.o, conn, cookie, rest);
    this.test = test;
    this.testCount++;
    test
      .run()
      .then(
        (report) => this.finish(report),
        (err: Error) => {
          if (!this.o.json) this.o.print(`iperf3: error - ${err.message}`);
          this.finish(err);
        },
      )
      .finally(() => {
        this.test = undefined;
        if (!this.o.oneOff) this.banner();
      });
  }

  private finish(r: JsonReport | Error): void {
    if (this.o.json) {
      const report = r instanceof Error ? { error: r.message } : r;
      this.o.print(JSON.stringify(report, null, 2));
    }
    for (const fn of this.doneListeners) fn(r);
  }
}

class ServerTest {
  private readonly ctrl: ControlChannel;
  private session: PerfSession | undefined;
  private expected = 0;
  private streamsReady: (() => void) | undefined;
  private aborted: ((err: Error) => void) | undefined;
  private readonly text: ((line: string) => void) | undefined;
  private readonly output: string[] = [];
  private readonly start: JsonReport;

  constructor(
    private readonly o: ServerOptions,
    private readonly conn: PerfConnection,
    private readonly cookie: Buffer,
    rest: Buffer,
  ) {
    // Text lines are also kept: a client with --get-server-output gets them in our results.
    this.text = o.json
      ? undefined
      : (line: string) => {
          this.output.push(line);
          o.print(line);
        };
    this.ctrl = new ControlChannel(conn.stream, `${conn.remoteAddress} port ${conn.remotePort}`, rest);
    this.start = {
      connected: [],
      version: PERF_VERSION,
      system_info: `${os.type()} ${os.hostname()} ${os.release()} ${os.arch()}`,
      timestamp: { time: new Date().toUTCString(), timesecs: Math.floor(Date.now() / 1000) },
      accepted_connection: { host: conn.remoteAddress, port: conn.remotePort },
      cookie: cookieText(cookie),
      stack: o.stack.description,
    };
  }

  wantsStream(cookie: Buffer): boolean {
    return (
      this.session !== undefined && this.session.streams.length < this.expected && cookie.equals(this.cookie)
    );
  }

  addStream(conn: PerfConnection, rest: Buffer): void {
    const session = this.session!;
    const id = streamId(session.streams.length);
    session.add(id, conn);
    (this.start['connected'] as JsonReport[]).push({
      socket: id,
      local_host: conn.localAddress,
      local_port: conn.localPort,
      remote_host: conn.remoteAddress,
      remote_port: conn.remotePort,
    });
    // Bytes that came with the cookie are already test data.
    if (rest.length > 0) conn.stream.unshift(rest);
    this.text?.(
      `[${String(id).padStart(3)}] local ${conn.localAddress} port ${conn.localPort} connected to ${conn.remoteAddress} port ${conn.remotePort}`,
    );
    if (session.streams.length === this.expected) this.streamsReady?.();
  }

  abort(): void {
    this.aborted?.(new PerfError('the server is shutting down'));
  }

  async run(): Promise<JsonReport> {
    const { ctrl, o } = this;
    const failure = new Promise<never>((_, reject) => {
      this.aborted = reject;
      ctrl.onClose(reject);
    });
    failure.catch((err: Error) => o.log.debug({ err: err.message }, 'perf server: test failed'));
    this.text?.(`Accepted connection from ${this.conn.remoteAddress}, port ${this.conn.remotePort}`);
    try {
      ctrl.writeState(PARAM_EXCHANGE);
      const params = (await Promise.race([
        ctrl.readJson(),
        failure,
        timeout(PARAMS_TIMEOUT_MS),
      ])) as TestParams;
      const refusal = refuse(params);
      if (refusal !== undefined) {
        ctrl.writeState(SERVER_ERROR);
        const codes = Buffer.alloc(8);
        codes.writeInt32BE(refusal.code, 0);
        ctrl.write(codes);
        throw new PerfError(refusal.message);
      }
      const reverse = params.reverse === true;
      const session = new PerfSession({
        sender: reverse,
        blockSize: typeof params.len === 'number' && params.len > 0 ? params.len : DEFAULT_BLOCK_SIZE,
        bytesLimit: reverse && typeof params.num === 'number' ? params.num : 0,
        intervalSec: o.interval,
        log: o.log,
        ...(this.text ? { print: this.text } : {}),
      });
      session.onFailure((err) => this.aborted?.(new PerfError(`a data connection failed: ${err.message}`)));
      this.session = session;
      this.expected = typeof params.parallel === 'number' && params.parallel > 0 ? params.parallel : 1;
      let streamsTimer: NodeJS.Timeout | undefined;
      const ready = new Promise<void>((resolve, reject) => {
        this.streamsReady = resolve;
        streamsTimer = setTimeout(
          () =>
            reject(new PerfError(`the client opened ${session.streams.length} of ${this.expected} streams`)),
          STREAMS_TIMEOUT_MS,
        );
      });
      ctrl.writeState(CREATE_STREAMS);
      try {
        await Promise.race([ready, failure]);
      } finally {
        clearTimeout(streamsTimer);
      }
      this.start['test_start'] = {
        protocol: 'TCP',
        num_streams: this.expected,
        blksize: typeof params.len === 'number' && params.len > 0 ? params.len : DEFAULT_BLOCK_SIZE,
        omit: 0,
        duration: params.time ?? 0,
        bytes: params.num ?? 0,
        blocks: 0,
        reverse: reverse ? 1 : 0,
        tos: 0,
        target_bitrate: 0,
      };
      ctrl.writeState(TEST_START);
      ctrl.writeState(TEST_RUNNING);
      session.start();
      let peer: TestResults | undefined;
      let summary: ReturnType<PerfSession['summary']> | undefined;
      for (;;) {
        const state = await Promise.race([ctrl.readState(), failure]);
        o.log.debug({ state }, 'perf server: state');
        if (state === TEST_END) {
          session.stop();
          await session.collectTcpInfo();
          session.finishStreams();
          ctrl.writeState(EXCHANGE_RESULTS);
          peer = parseResults(await Promise.race([ctrl.readJson(), failure]));
          summary = session.summary(peer, o.stack.description, o.stack.counters?.());
          const results: Record<string, unknown> = {
            ...session.results(session.streams.find((s) => s.info?.congestion)?.info?.congestion),
          };
          // iperf3 -c --get-server-output: our report, in our output mode, inside the results.
          if (params.get_server_output === 1) {
            if (o.json) {
              results['server_output_json'] = {
                start: this.start,
                intervals: session.intervals,
                end: summary.end,
              };
            } else {
              results['server_output_text'] = `${[...this.output, ...summary.lines].join('\n')}\n`;
            }
          }
          ctrl.writeJson(results);
          ctrl.writeState(DISPLAY_RESULTS);
          break;
        }
        if (state === CLIENT_TERMINATE) throw new PerfError('the client has terminated the test');
        if (state !== TEST_START && state !== IPERF_DONE) {
          throw new PerfError(`the client sent an unexpected state ${state}`);
        }
      }
      // The client answers DISPLAY_RESULTS with IPERF_DONE, or just closes.
      await Promise.race([ctrl.readState(), failure]).catch((err: Error) =>
        o.log.debug({ err: err.message }, 'perf server: control closed before IPERF_DONE'),
      );
      const { lines, end } = summary ?? session.summary(peer, o.stack.description, o.stack.counters?.());
      for (const line of lines) this.text?.(line);
      return { start: this.start, intervals: session.intervals, end };
    } finally {
      this.session?.stop();
      this.session?.destroyStreams();
      await closeGracefully(this.conn.stream);
    }
  }
}

function refuse(p: TestParams): { code: number; message: string } | undefined {
  if (p.udp === true || p.sctp === true || p.tcp !== true) {
    return {
      code: IE_UNIMPLEMENTED,
      message: 'the client asked for UDP or SCTP; mptun perf speaks TCP only',
    };
  }
  if (p.bidirectional === true) {
    return { code: IE_UNIMPLEMENTED, message: 'the client asked for --bidir, which mptun perf does not do' };
  }
  if (p.len !== undefined && !(typeof p.len === 'number' && p.len >= 1 && p.len <= MAX_BLOCK_SIZE)) {
    return {
      code: IE_BLOCK_SIZE,
      message: `the client asked for ${p.len}-byte blocks (at most ${MAX_BLOCK_SIZE})`,
    };
  }
  if (typeof p.parallel === 'number' && (p.parallel > MAX_STREAMS || p.parallel < 1)) {
    return {
      code: IE_NUM_STREAMS,
      message: `the client asked for ${p.parallel} streams (at most ${MAX_STREAMS})`,
    };
  }
  return undefined;
}

/** Rejects after `ms` (a peer that goes quiet mid-handshake must not hold the server). */
function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => {
    setTimeout(
      () => reject(new PerfError(`the client sent no parameters within ${ms / 1000} s`)),
      ms,
    ).unref();
  });
}
