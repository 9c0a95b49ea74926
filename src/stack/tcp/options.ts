/**
 * TCP option negotiation (RFC 9293 §3.7.1 MSS, RFC 7323 window scale and timestamps, RFC 2018
 * SACK-permitted): what a segment's options say, checked for impossible combinations, and
 * what our SYN / SYN-ACK offers.
 */
import type { SackBlock, TcpOption } from '../wire/tcp.js';
import type { TcpConfig } from './types.js';

/** RFC 9293 §3.7.1: the MSS to assume when the SYN has no MSS option (IPv4). */
export const DEFAULT_PEER_MSS = 536;
/** RFC 7323 §2.3: shifts above 14 are used as 14. */
export const MAX_WINDOW_SCALE = 14;
/** Unscaled window field maximum (and the window of any SYN, RFC 7323 §2.2). */
export const MAX_UNSCALED_WINDOW = 0xffff;
/** Smallest MSS we accept from a peer (Linux TCP_MIN_MSS is 88; RFC 9293 IPv4 minimum is 536). */
export const MIN_PEER_MSS = 88;

/** What one segment's options carry. */
export interface SegmentOptions {
  mss: number | undefined;
  windowScale: number | undefined;
  sackPermitted: boolean;
  tsVal: number | undefined;
  tsEcr: number;
  sackBlocks: readonly SackBlock[] | undefined;
}

/**
 * Reads the options we act on into `out`. Returns false for an impossible list: an option that
 * RFC 9293 / 7323 / 2018 allow once appearing twice (which value would count?), or SYN-only
 * options whose values make no sense (MSS 0). Unknown options are ignored (RFC 9293 §3.1).
 */
export function readSegmentOptions(options: readonly TcpOption[], out: SegmentOptions): boolean {
  out.mss = undefined;
  out.windowScale = undefined;
  out.sackPermitted = false;
  out.tsVal = undefined;
  out.tsEcr = 0;
  out.sackBlocks = undefined;
  for (const option of options) {
    switch (option.type) {
      case 'mss':
        if (out.mss !== undefined || option.mss === 0) return false;
        out.mss = option.mss;
        break;
      case 'window-scale':
        if (out.windowScale !== undefined) return false;
        out.windowScale = Math.min(option.shift, MAX_WINDOW_SCALE);
        break;
      case 'sack-permitted':
        if (out.sackPermitted) return false;
        out.sackPermitted = true;
        break;
      case 'timestamps':
        if (out.tsVal !== undefined) return false;
        out.tsVal = option.tsVal;
        out.tsEcr = option.tsEcr;
        break;
      case 'sack':
        if (out.sackBlocks !== undefined) return false;
        out.sackBlocks = option.blocks;
        break;
      default:
        break;
    }
  }
  return true;
}

export function emptySegmentOptions(): SegmentOptions {
  return {
    mss: undefined,
    windowScale: undefined,
    sackPermitted: false,
    tsVal: undefined,
    tsEcr: 0,
    sackBlocks: undefined,
  };
}

/**
 * Our receive window-scale shift: the smallest that lets the largest receive buffer fit the
 * 16-bit window field (RFC 7323 §2.2), or 0 when window scaling is off in the config. A cookie
 * SYN-ACK must advertise this same value.
 */
export function rcvWindowScaleFor(config: Pick<TcpConfig, 'windowScale' | 'maxRecvBufferSize'>): number {
  if (!config.windowScale) return 0;
  let shift = 0;
  while (shift < MAX_WINDOW_SCALE && config.maxRecvBufferSize > MAX_UNSCALED_WINDOW * 2 ** shift) shift++;
  return shift;
}

/**
 * The options of our SYN (active open, `peer` undefined) or SYN-ACK (answering `peer`'s offer):
 * MSS, then SACK-permitted + timestamps, then window scale, in the order Linux sends them so a
 * capture looks familiar (MSS, SACK_PERM, TS, NOP, WS).
 */
export function synOptions(
  config: TcpConfig,
  tsVal: number,
  tsEcr: number,
  peer: { windowScale: boolean; sackPermitted: boolean; timestamps: boolean } | undefined,
): TcpOption[] {
  const options: TcpOption[] = [{ type: 'mss', mss: config.mss }];
  const sack = config.sack && (peer === undefined || peer.sackPermitted);
  const ts = config.timestamps && (peer === undefined || peer.timestamps);
  const ws = config.windowScale && (peer === undefined || peer.windowScale);
  if (sack) options.push({ type: 'sack-permitted' });
  if (ts) options.push({ type: 'timestamps', tsVal, tsEcr });
  else if (sack) options.push({ type: 'nop' }, { type: 'nop' });
  if (ws) options.push({ type: 'nop' }, { type: 'window-scale', shift: rcvWindowScaleFor(config) });
  return options;
}
