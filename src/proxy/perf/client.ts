/** `mptun perf client`: drives a test against an iperf3 server (stock or ours). */
import os from 'node:os';
import { PerfError } from '../../errors.js';
import type { Logger } from '../../log.js';
import {
  ACCESS_DENIED,
  CLIENT_TERMINATE,
  ControlChannel,
  CREATE_STREAMS,
  closeGracefully,
  cookieText,
  DISPLAY_RESULTS,
  EXCHANGE_RESULTS,
  IPERF_DONE,
  IPERF_START,
  makeCookie,
  PARAM_EXCHANGE,
  parseResults,
  SERVER_ERROR,
  SERVER_TERMINATE,
  streamId,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
  type TestParams,
  type TestResults,
} from './protocol.js';
import { PerfSession } from './session.js';
import type { PerfStack } from './stack.js';

export const PERF_VERSION = 'mptun perf 0.1.0 (iperf 3 protocol)';

export interface ClientOptions {
  host: string;
  port: number;
  /** -t, seconds (ignored when bytes > 0, as iperf3 does). */
  time: number;
  /** -n, bytes; 0 for a timed test. */
  bytes: number;
  reverse: boolean;
  parallel: number;
  blockSize: number;
  /** -i, seconds; 0 turns interval reports off. */
  interval: number;
  json: boolean;
  connectTimeoutMs: number;
  bind?: string;
  /** Congestion control the server should use for its sockets (iperf3's -C; iperf3 servers apply it). */
  congestion?: string;
  stack: PerfStack;
  log: Logger;
  /** Where text output goes (a line at a time, without newline). */
  print: (line: string) => void;
  /** false: no interval lines (a live display replaces them; see progress.ts). */
  intervalLines?: boolean;
  /** Called with each interval report, also in JSON mode (live display, plots). */
  onInterval?: (interval: Record<string, unknown>) => void;
  /** Aborting sends CLIENT_TERMINATE and ends the test with an error. */
  signal?: AbortSignal;
}

export type JsonReport = Record<string, unknown>;

/** iperf3's i_errno texts for the codes a server is likely to send us. */
const IPERF_ERRORS: Record<number, string> = {
  5: 'test duration too long',
  6: 'number of parallel streams too large',
  7: 'block size too large',
  13: 'not implemented yet (mptun perf speaks TCP only)',
  37: "client's duration exceeds the server's maximum duration",
};

/** Runs one test; returns the report (the object -J prints). Throws PerfError on failure. */
export async function runClient(o: ClientOptions): Promise<JsonReport> {
  const text = o.json ? undefined : o.print;
  const start: JsonReport = {
    connected: [],
    version: PERF_VERSION,
    system_info: `${os.type()} ${os.hostname()} ${os.release()} ${os.arch()}`,
    timestamp: { time: new Date().toUTCString(), timesecs: Math.floor(Date.now() / 1000) },
    connecting_to: { host: o.host, port: o.port },
    stack: o.stack.description,
  };
  text?.(`Connecting to host ${o.host}, port ${o.port} (stack: ${o.stack.description})`);
  if (o.reverse) text?.(`Reverse mode, remote host ${o.host} is sending`);
  const connectOpts = {
    timeoutMs: o.connectTimeoutMs,
    ...(o.bind === undefined ? {} : { localAddress: o.bind }),
  };
  const control = await o.stack.connect(o.host, o.port, connectOpts);
  if (o.signal?.aborted) {
    control.stream.destroy();
    throw new PerfError('interrupted while connecting');
  }
  const cookie = makeCookie();
  start['cookie'] = cookieText(cookie);
  const ctrl = new ControlChannel(control.stream, `${o.host} port ${o.port}`);
  ctrl.write(cookie);
  const session = new PerfSession({
    sender: !o.reverse,
    blockSize: o.blockSize,
    bytesLimit: o.bytes,
    intervalSec: o.interval,
    log: o.log,
    ...(text ? { print: text } : {}),
    ...(o.intervalLines === undefined ? {} : { intervalLines: o.intervalLines }),
    ...(o.onInterval === undefined ? {} : { onInterval: o.onInterval }),
  });
  let failWith: (err: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => {
    failWith = reject;
  });
  failure.catch((err: Error) => o.log.debug({ err: err.message }, 'perf client: failed'));
  session.onFailure((err) =>
    failWith(new PerfError(`a data connection failed: ${err.message}`, { cause: err })),
  );
  const onAbort = () => {
    ctrl.writeState(CLIENT_TERMINATE);
    failWith(new PerfError('interrupted: sent CLIENT_TERMINATE to the server'));
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });

  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const endTest = () => {
    if (ended) return;
    ended = true;
    if (timer) clearTimeout(timer);
    session.stop();
    // TCP details must be read while the connections exist; the server closes them on TEST_END.
    session
      .collectTcpInfo()
      .then(() => ctrl.writeState(TEST_END))
      .catch((err: Error) => failWith(err));
  };
  let peer: TestResults | undefined;
  try {
    for (;;) {
      const state = await Promise.race([ctrl.readState(), failure]);
      o.log.debug({ state }, 'perf client: state');
      switch (state) {
        case PARAM_EXCHANGE:
          ctrl.writeJson(params(o));
          break;
        case CREATE_STREAMS:
          for (let i = 0; i < o.parallel; i++) {
            const conn = await Promise.race([o.stack.connect(o.host, o.port, connectOpts), failure]);
            conn.stream.write(cookie);
            session.add(streamId(i), conn);
            (start['connected'] as JsonReport[]).push({
              socket: streamId(i),
              local_host: conn.localAddress,
              local_port: conn.localPort,
              remote_host: conn.remoteAddress,
              remote_port: conn.remotePort,
            });
            text?.(
              `[${String(streamId(i)).padStart(3)}] local ${conn.localAddress} port ${conn.localPort} connected to ${conn.remoteAddress} port ${conn.remotePort}`,
            );
          }
          break;
        case TEST_START:
          start['test_start'] = {
            protocol: 'TCP',
            num_streams: o.parallel,
            blksize: o.blockSize,
            omit: 0,
            duration: o.bytes > 0 ? 0 : o.time,
            bytes: o.bytes,
            blocks: 0,
            reverse: o.reverse ? 1 : 0,
            tos: 0,
            target_bitrate: 0,
          };
          break;
        case TEST_RUNNING:
          session.onLimit(endTest);
          session.start();
          if (o.bytes === 0) timer = setTimeout(endTest, o.time * 1000);
          break;
        case EXCHANGE_RESULTS:
          ctrl.writeJson(session.results(congestionOf(session)));
          peer = parseResults(await Promise.race([ctrl.readJson(), failure]));
          break;
        case DISPLAY_RESULTS: {
          ctrl.writeState(IPERF_DONE);
          const { lines, end } = session.summary(peer, o.stack.description, o.stack.counters?.());
          for (const line of lines) text?.(line);
          text?.('');
          text?.('iperf Done.');
          return { start, intervals: session.intervals, end };
        }
        case IPERF_START:
        case IPERF_DONE:
          break;
        case SERVER_TERMINATE:
          throw new PerfError('the server has terminated the test');
        case ACCESS_DENIED:
          throw new PerfError('the server is busy running a test. try again later');
        case SERVER_ERROR: {
          const codes = await Promise.race([ctrl.read(8), failure]);
          const code = codes.readInt32BE(0);
          const errno = codes.readInt32BE(4);
          const what = IPERF_ERRORS[code] ?? `iperf3 error ${code}`;
          throw new PerfError(`the server reported an error: ${what}${errno > 0 ? ` (errno ${errno})` : ''}`);
        }
        default:
          throw new PerfError(`the server sent an unknown state ${state}; is it iperf3?`);
      }
    }
  } finally {
    ended = true;
    if (timer) clearTimeout(timer);
    session.stop();
    session.destroyStreams();
    o.signal?.removeEventListener('abort', onAbort);
    await closeGracefully(control.stream);
  }
}

function params(o: ClientOptions): TestParams {
  return {
    tcp: true,
    omit: 0,
    time: o.bytes > 0 ? 0 : o.time,
    num: o.bytes,
    blockcount: 0,
    parallel: o.parallel,
    ...(o.reverse ? { reverse: true } : {}),
    len: o.blockSize,
    pacing_timer: 1000,
    ...(o.congestion === undefined ? {} : { congestion: o.congestion }),
    client_version: '3.12',
  };
}

function congestionOf(session: PerfSession): string | undefined {
  return session.streams.find((s) => s.info?.congestion)?.info?.congestion;
}
