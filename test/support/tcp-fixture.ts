/**
 * Packet-driven test fixture for one TcpConnection (in the manner of smoltcp's send!/recv!
 * helpers): `send` feeds a segment from the peer, `expect` runs dispatch and compares the exact
 * segments that come out (flags, seq, ack, window, options, payload), `expectNothing` checks
 * that nothing is due, `advance` moves the manual clock.
 *
 * Our side is port 80 with ISN LOCAL_ISN; the peer is port 40000 with ISN REMOTE_ISN.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type TcpConfig, TcpConnection, type TcpOpenParams } from '../../src/stack/tcp/connection.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpHeader,
  type TcpOption,
} from '../../src/stack/wire/tcp.js';

export const LOCAL_PORT = 80;
export const REMOTE_PORT = 40000;
export const LOCAL_ISN = 1000;
export const REMOTE_ISN = 5000;

/** Options off: the plainest segments (tests turn on what they are about). */
export const PLAIN: Partial<TcpConfig> = {
  timestamps: false,
  sack: false,
  windowScale: false,
  delayedAckMs: 0,
  recvBufferSize: 65535,
  sendBufferSize: 65536,
};

export interface SegmentSpec {
  /** 'S', 'SA', 'A', 'PA', 'FA', 'R', 'RA', ... : S SYN, A ACK, F FIN, R RST, P PSH. */
  flags: string;
  seq: number;
  ack?: number;
  window?: number;
  options?: TcpOption[];
  payload?: Uint8Array | string;
  gsoSize?: number;
}

const FLAG_LETTERS: [string, number][] = [
  ['S', TCP_SYN],
  ['F', TCP_FIN],
  ['R', TCP_RST],
  ['P', TCP_PSH],
  ['A', TCP_ACK],
];

export function flagsOf(letters: string): number {
  let flags = 0;
  for (const ch of letters) {
    const f = FLAG_LETTERS.find(([l]) => l === ch);
    assert.ok(f !== undefined, `unknown flag letter ${ch}`);
    flags |= f[1];
  }
  return flags;
}

export function lettersOf(flags: number): string {
  return FLAG_LETTERS.filter(([, f]) => (flags & f) !== 0)
    .map(([l]) => l)
    .join('');
}

export function bytes(payload: Uint8Array | string | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array(0);
  return typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
}

/** A payload of `n` bytes with a recognisable pattern. */
export function pattern(n: number, start = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (start + i) & 0xff;
  return out;
}

interface Seen {
  flags: string;
  seq: number;
  ack: number;
  window: number;
  options: TcpOption[];
  payload: string;
  gsoSize: number;
}

/** Short payloads as hex, long ones as length + SHA-256 (readable diffs either way). */
function hex(b: Uint8Array): string {
  if (b.length <= 64) return Buffer.from(b).toString('hex');
  return `${b.length} bytes, sha256 ${createHash('sha256').update(b).digest('hex')}`;
}

export class TcpFixture {
  now = 0;
  conn: TcpConnection;

  constructor(conn: TcpConnection, now = 0) {
    this.conn = conn;
    this.now = now;
  }

  static params(config: Partial<TcpConfig> = {}, now = 0): TcpOpenParams {
    return {
      isn: LOCAL_ISN,
      now,
      localPort: LOCAL_PORT,
      remotePort: REMOTE_PORT,
      config: { ...PLAIN, ...config },
    };
  }

  /** An active open: SYN-SENT, nothing sent yet. */
  static connecting(config: Partial<TcpConfig> = {}): TcpFixture {
    return new TcpFixture(TcpConnection.connect(TcpFixture.params(config)));
  }

  /** A passive open from the peer's SYN (options as given): SYN-RECEIVED, nothing sent yet. */
  static accepting(
    config: Partial<TcpConfig> = {},
    synOptions: TcpOption[] = [],
    window = 65535,
  ): TcpFixture {
    const syn = header({ flags: 'S', seq: REMOTE_ISN, window, options: synOptions });
    return new TcpFixture(TcpConnection.accept(syn, TcpFixture.params(config)));
  }

  /**
   * ESTABLISHED through a passive open with the plain handshake (no options, windows 65535):
   * SND.NXT = LOCAL_ISN + 1, RCV.NXT = REMOTE_ISN + 1; all output consumed.
   */
  static established(
    config: Partial<TcpConfig> = {},
    synOptions: TcpOption[] = [],
    window = 65535,
  ): TcpFixture {
    const f = TcpFixture.accepting(config, synOptions, window);
    f.collect();
    f.send({ flags: 'A', seq: REMOTE_ISN + 1, ack: LOCAL_ISN + 1, window });
    f.conn.takeEvents();
    f.collect();
    return f;
  }

  /** Feeds one segment from the peer. */
  send(spec: SegmentSpec): void {
    this.conn.process(header(spec), bytes(spec.payload), this.now);
  }

  /** Runs dispatch and returns what came out, payloads copied. */
  collect(): Seen[] {
    const out: Seen[] = [];
    this.conn.dispatch(this.now, (seg) => {
      assert.equal(seg.header.srcPort, LOCAL_PORT);
      assert.equal(seg.header.dstPort, REMOTE_PORT);
      out.push({
        flags: lettersOf(seg.header.flags),
        seq: seg.header.seqNumber,
        ack: seg.header.ackNumber,
        window: seg.header.window,
        options: structuredClone(seg.header.options),
        payload: hex(seg.payload),
        gsoSize: seg.gsoSize,
      });
    });
    return out;
  }

  /** Dispatch must emit exactly these segments (ack 0 and window as given when omitted). */
  expect(...specs: SegmentSpec[]): void {
    const seen = this.collect();
    const want = specs.map((s) => ({
      flags: lettersOf(flagsOf(s.flags)),
      seq: s.seq >>> 0,
      ack: (s.ack ?? 0) >>> 0,
      window: s.window ?? 65535,
      options: s.options ?? [],
      payload: hex(bytes(s.payload)),
      gsoSize: s.gsoSize ?? 0,
    }));
    assert.deepEqual(seen, want);
  }

  expectNothing(): void {
    assert.deepEqual(this.collect(), []);
  }

  /** Moves the clock forward. */
  advance(ms: number): void {
    this.now += ms;
  }

  /** Moves the clock to the connection's next deadline (which must be finite and ahead). */
  advanceToPoll(): number {
    const at = this.conn.pollAt();
    assert.ok(Number.isFinite(at), 'no timer pending');
    assert.ok(at >= this.now, `pollAt ${at} is in the past (now ${this.now})`);
    this.now = at;
    return at;
  }
}

export function header(spec: SegmentSpec): TcpHeader {
  return {
    srcPort: REMOTE_PORT,
    dstPort: LOCAL_PORT,
    seqNumber: spec.seq >>> 0,
    ackNumber: (spec.ack ?? 0) >>> 0,
    flags: flagsOf(spec.flags),
    window: spec.window ?? 65535,
    checksum: 0,
    urgentPointer: 0,
    dataOffset: 5,
    headerLength: 20,
    options: spec.options ?? [],
  };
}

/** Timestamps option with its two leading NOPs, as the engine lays it out on non-SYN segments. */
export function ts(tsVal: number, tsEcr: number): TcpOption[] {
  return [{ type: 'nop' }, { type: 'nop' }, { type: 'timestamps', tsVal, tsEcr }];
}

export function sack(...blocks: [number, number][]): TcpOption[] {
  return [
    { type: 'nop' },
    { type: 'nop' },
    { type: 'sack', blocks: blocks.map(([left, right]) => ({ left, right })) },
  ];
}

// ------------------------------------------------------------ partial matchers

/** Every field optional, recursively (byte arrays and bigints stay whole values). */
export type DeepPartial<T> = T extends Uint8Array | bigint | number | string | boolean
  ? T
  : T extends (infer E)[]
    ? E[]
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

/**
 * Asserts that `got` has every field `want` gives, equal (objects recursively, byte arrays by
 * content, arrays whole); fields `want` leaves out are not checked (gVisor checker style).
 */
export function matchPartial(got: unknown, want: unknown, path = 'value'): void {
  if (want instanceof Uint8Array) {
    assert.ok(got instanceof Uint8Array, `${path}: want bytes, got ${String(got)}`);
    assert.equal(Buffer.from(got).toString('hex'), Buffer.from(want).toString('hex'), path);
    return;
  }
  if (want === null || typeof want !== 'object' || Array.isArray(want)) {
    assert.deepEqual(got, want, path);
    return;
  }
  assert.ok(got !== null && typeof got === 'object', `${path}: want an object, got ${String(got)}`);
  for (const [k, v] of Object.entries(want)) {
    if (v === undefined) continue;
    matchPartial((got as Record<string, unknown>)[k], v, `${path}.${k}`);
  }
}

/** The first option of `type` in `options`, matching `want` partially. */
export function expectOption<T extends TcpOption['type']>(
  options: readonly TcpOption[],
  want: DeepPartial<Extract<TcpOption, { type: T }>> & { type: T },
): Extract<TcpOption, { type: T }> {
  const found = options.find((o) => o.type === want.type);
  assert.ok(found !== undefined, `no ${want.type} option in [${options.map((o) => o.type).join(', ')}]`);
  matchPartial(found, want, want.type);
  return found as Extract<TcpOption, { type: T }>;
}
