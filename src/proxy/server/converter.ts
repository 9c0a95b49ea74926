/**
 * Converter mode (RFC 8803) on the server: the first bytes of each connection on the converter
 * port are a Convert message naming the destination (Connect TLV). The destination must be in the
 * allowlist (and, with a pre-shared key, the request authenticated); then the server connects to
 * it over kernel TCP and answers with a bare Convert header, and what follows is bridged. Any
 * failure is answered with a Convert header and an Error TLV, after which the connection is
 * closed (RFC 8803 §6): malformed (1), unsupported message (2), not authorized (32), connection
 * reset by the destination (96), destination unreachable (97), network failure (65). A client
 * that sends an Info TLV gets a Supported TCP Extensions TLV.
 *
 * TCP options a client puts in its Connect TLV are not applied: the converter's side is Node's
 * kernel TCP, which negotiates its own (listed in the Supported TCP Extensions TLV).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../log.js';
import type { Allowlist } from '../convert/allowlist.js';
import { checkAuth } from '../convert/auth.js';
import {
  CONVERT_MAX_LENGTH,
  ConvertError,
  type ConvertTlv,
  convertErrorName,
  encodeConvertError,
  encodeConvertMessage,
  encodeSupportedTcpExtensionsTlv,
  parseConvertMessage,
  TLV_CONNECT,
  TLV_COOKIE,
  TLV_INFO,
  TLV_MPTUN_AUTH,
} from '../convert/codec.js';
import { connectBackend } from './backend-socket.js';

/** TCP option kinds Node's kernel TCP uses towards a destination: MSS, window scale, SACK, timestamps. */
export const CONVERTER_TCP_EXTENSIONS = [2, 3, 4, 8] as const;

export interface ConverterOptions {
  allow: Allowlist;
  key?: Buffer | undefined;
  /** How long the client has to send its whole Convert message. */
  headerTimeoutMs: number;
  connectTimeoutMs: number;
  log: Logger;
}

export type ConvertOutcome =
  | { ok: true; socket: Socket; destination: { host: string; port: number } }
  | {
      ok: false;
      /** The Error TLV code sent, or undefined when nothing was (the client left or only asked for Info). */
      code: number | undefined;
      reason: string;
    };

type ReadResult = { ok: true; message: Buffer } | { ok: false; reason: string };

/**
 * Reads the Convert message off `front` (leaving any bytes after it in the stream, unshifted),
 * without reading ahead of what the message's length says.
 */
function readConvertMessage(front: Duplex, timeoutMs: number): Promise<ReadResult> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (r: ReadResult, rest?: Buffer) => {
      clearTimeout(timer);
      front.off('data', onData);
      front.off('end', onEnd);
      front.off('error', onError);
      front.off('close', onClose);
      front.pause();
      if (rest !== undefined && rest.length > 0) front.unshift(rest);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const p = parseConvertMessage(buf);
      if (!p.ok && p.reason === 'truncated') {
        if (p.need > CONVERT_MAX_LENGTH) done({ ok: false, reason: 'message too long' });
        return;
      }
      // Complete or decidedly bad: hand the message bytes over (the parse is repeated on them).
      const length = p.ok ? p.length : buf.length;
      done({ ok: true, message: buf.subarray(0, length) }, buf.subarray(length));
    };
    const onEnd = () =>
      done({ ok: false, reason: `the client ended after ${buf.length} bytes of a Convert message` });
    const onError = (err: Error) => done({ ok: false, reason: `client error: ${err.message}` });
    // Destroyed here (a drain that ran out): no 'end' or 'error' comes.
    const onClose = () => done({ ok: false, reason: 'closed before a whole Convert message' });
    const timer = setTimeout(
      () =>
        done({ ok: false, reason: `no whole Convert message within ${timeoutMs} ms (${buf.length} bytes)` }),
      timeoutMs,
    );
    front.on('data', onData);
    front.once('end', onEnd);
    front.once('error', onError);
    front.once('close', onClose);
  });
}

/** The Error TLV code for a failed connection to the destination. */
export function connectErrorCode(err: NodeJS.ErrnoException | Error): number {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return ConvertError.ConnectionReset;
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EHOSTDOWN')
    return ConvertError.DestinationUnreachable;
  return ConvertError.NetworkFailure;
}

function connectTo(host: string, port: number, timeoutMs: number): Promise<Socket | Error> {
  return new Promise((resolve) => {
    const s = connectBackend(host, port);
    const timer = setTimeout(() => {
      const err: NodeJS.ErrnoException = new Error(`${host}:${port} did not answer within ${timeoutMs} ms`);
      err.code = 'ETIMEDOUT';
      s.destroy();
      resolve(err);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      resolve(err);
    });
  });
}

/** Answers with `reply` and closes: the rest of the client's bytes are read and dropped. */
function answerAndClose(front: Duplex, reply: Buffer | undefined): void {
  front.on('error', () => undefined); // the client may reset once it has read the answer
  front.resume();
  front.end(reply);
  // A client that never closes its side is cut after a while.
  const timer = setTimeout(() => front.destroy(), 10_000);
  front.once('close', () => clearTimeout(timer));
}

/**
 * Runs the converter's side of one connection up to the point where bytes flow: on success the
 * caller bridges `front` to the returned socket; on failure the answer has been sent.
 */
export async function acceptConvert(front: Duplex, o: ConverterOptions): Promise<ConvertOutcome> {
  const read = await readConvertMessage(front, o.headerTimeoutMs);
  const refuse = (code: number, reason: string): ConvertOutcome => {
    answerAndClose(front, encodeConvertError(code));
    return { ok: false, code, reason };
  };
  if (!read.ok) {
    if (read.reason === 'message too long') return refuse(ConvertError.MalformedMessage, read.reason);
    front.destroy();
    return { ok: false, code: undefined, reason: read.reason };
  }
  const p = parseConvertMessage(read.message);
  if (!p.ok) {
    if (p.reason === 'truncated') return refuse(ConvertError.MalformedMessage, 'truncated Convert message');
    return refuse(p.error, `${p.reason} at byte ${p.offset}`);
  }
  let connectTlv: Extract<ConvertTlv, { type: typeof TLV_CONNECT }> | undefined;
  let connectRaw: Buffer | undefined;
  let auth: Extract<ConvertTlv, { type: typeof TLV_MPTUN_AUTH }> | undefined;
  let info = false;
  for (const [i, t] of p.tlvs.entries()) {
    if (t.type === TLV_INFO) info = true;
    else if (t.type === TLV_CONNECT && 'host' in t) {
      if (connectTlv !== undefined) return refuse(ConvertError.MalformedMessage, 'two Connect TLVs');
      connectTlv = t;
      connectRaw = p.raw[i];
    } else if (t.type === TLV_MPTUN_AUTH && o.key !== undefined && 'mac' in t) auth = t;
    else if (t.type === TLV_COOKIE) {
      // No cookies are handed out, so none is required; one sent anyway is ignored.
    } else return refuse(ConvertError.UnsupportedMessage, `unsupported TLV type ${t.type}`);
  }
  if (connectTlv === undefined || connectRaw === undefined) {
    if (info) {
      answerAndClose(
        front,
        encodeConvertMessage([encodeSupportedTcpExtensionsTlv(CONVERTER_TCP_EXTENSIONS)]),
      );
      return { ok: false, code: undefined, reason: 'Info only (answered with the supported TCP extensions)' };
    }
    return refuse(ConvertError.MalformedMessage, 'no Connect TLV');
  }
  const { host, port } = connectTlv;
  if (o.key !== undefined) {
    const verdict = checkAuth(o.key, connectRaw, auth);
    if (verdict !== 'ok') return refuse(ConvertError.NotAuthorized, `authentication ${verdict}`);
  }
  const rule = o.allow.match(host, port);
  if (rule === undefined)
    return refuse(ConvertError.NotAuthorized, `destination ${host}:${port} is not in the allowlist`);
  o.log.debug({ destination: `${host}:${port}`, rule: rule.text }, 'converter: destination allowed');
  const socket = await connectTo(host, port, o.connectTimeoutMs);
  if (socket instanceof Error) {
    const code = connectErrorCode(socket);
    return refuse(code, `${convertErrorName(code)}: ${socket.message}`);
  }
  const reply = info
    ? encodeConvertMessage([encodeSupportedTcpExtensionsTlv(CONVERTER_TCP_EXTENSIONS)])
    : encodeConvertMessage([]);
  front.write(reply);
  return { ok: true, socket, destination: { host, port } };
}
