/**
 * The TCP option space budget: a header has at most 40 bytes of options (data offset 15 words,
 * RFC 9293 §3.1). Given what a segment would like to carry, `planOptions` says what fits, what
 * must go on a separate pure ACK, and what cannot be sent on this segment at all.
 *
 * Sizes are as laid out on the wire with 4-byte alignment, as Linux does it: MSS 4, window scale
 * 3+NOP, SACK-permitted 2+2 NOPs (or packed into the two NOPs in front of timestamps),
 * timestamps 10+2 NOPs, SACK 2+8n+2 NOPs, an MPTCP option rounded up to 4.
 *
 * Rules (RFC 8684 §3 and Linux net/mptcp/options.c): the MPTCP signalling options ADD_ADDR,
 * REMOVE_ADDR and MP_PRIO can travel on a pure ACK of their own (Linux always sends ADD_ADDR on
 * a pure ACK with every other MPTCP suboption dropped); handshake options, DSS, MP_FAIL,
 * MP_FASTCLOSE and MP_TCPRST cannot be moved and are `dropped` when they do not fit (a caller
 * bug: size segments so they fit). SACK blocks are trimmed to the number that fits.
 *
 * Note the consequence for ADD_ADDR: beside timestamps (12) only 28 bytes remain, so an IPv6
 * announcement with port and HMAC (30, 32 aligned) can never be sent on a connection that
 * negotiated timestamps; `fitsOnPureAck` says so.
 */
import { type MptcpOption, mptcpOptionLength } from './mptcp-options.js';

/** Maximum TCP option bytes (RFC 9293 §3.1: data offset of 15 words minus the 20-byte header). */
export const TCP_OPTION_SPACE = 40;

const MSS_SPACE = 4; // kind 2, length 4 (RFC 9293 §3.2)
const WINDOW_SCALE_SPACE = 4; // 3 bytes + NOP (RFC 7323 §2.2)
const SACK_PERMITTED_SPACE = 4; // 2 bytes + 2 NOPs (RFC 2018 §2)
const TIMESTAMPS_SPACE = 12; // 10 bytes + 2 NOPs (RFC 7323 §3.2, Appendix A layout)
const SACK_BLOCK_BYTES = 8; // RFC 2018 §3
const SACK_BASE_SPACE = 4; // kind, length + 2 NOPs

export type OptionRequest =
  | { kind: 'mss' }
  | { kind: 'window_scale' }
  | { kind: 'sack_permitted' }
  | { kind: 'timestamps' }
  | { kind: 'sack'; blocks: number }
  | { kind: 'mptcp'; option: MptcpOption };

export interface OptionPlan {
  /** What goes on this segment, in request order (a SACK request possibly with fewer blocks). */
  included: OptionRequest[];
  /** MPTCP signalling options to send on a separate pure ACK. */
  separate: MptcpOption[];
  /** What cannot be sent on this segment and has no other place. */
  dropped: OptionRequest[];
  /** Option bytes used on this segment, padding included (a multiple of 4, ≤ the budget). */
  bytes: number;
}

/** MPTCP option bytes on the wire, rounded up to 4-byte alignment. */
export function mptcpOptionSpace(option: MptcpOption): number {
  return (mptcpOptionLength(option) + 3) & ~3;
}

/** Whether an MPTCP option may be moved to a pure ACK of its own. */
export function isSeparable(option: MptcpOption): boolean {
  return option.subtype === 'add_addr' || option.subtype === 'remove_addr' || option.subtype === 'mp_prio';
}

function sackSpace(blocks: number): number {
  return SACK_BASE_SPACE + SACK_BLOCK_BYTES * blocks;
}

/**
 * Space taken by one request, given whether timestamps are also on the segment (SACK-permitted
 * then rides in the padding in front of them and costs nothing extra).
 */
export function optionSpace(req: OptionRequest, withTimestamps = false): number {
  switch (req.kind) {
    case 'mss':
      return MSS_SPACE;
    case 'window_scale':
      return WINDOW_SCALE_SPACE;
    case 'sack_permitted':
      return withTimestamps ? 0 : SACK_PERMITTED_SPACE;
    case 'timestamps':
      return TIMESTAMPS_SPACE;
    case 'sack':
      return sackSpace(req.blocks);
    case 'mptcp':
      return mptcpOptionSpace(req.option);
  }
}

/**
 * Greedy plan in request order (put the must-haves first): each request is included if it still
 * fits; SACK keeps as many blocks as fit (at least one); an MPTCP signalling option that does
 * not fit moves to `separate`; anything else that does not fit is `dropped`. SACK-permitted is
 * placed with the timestamps (free in their padding) when both are requested.
 */
export function planOptions(requests: readonly OptionRequest[], budget = TCP_OPTION_SPACE): OptionPlan {
  const plan: OptionPlan = { included: [], separate: [], dropped: [], bytes: 0 };
  // SACK-permitted rides in the padding of timestamps: decide it together with them.
  let timestamps: 'later' | 'included' | 'none' = requests.some((r) => r.kind === 'timestamps')
    ? 'later'
    : 'none';
  let sackPermitted: OptionRequest | undefined;
  const place = (req: OptionRequest, space: number): boolean => {
    if (space > budget - plan.bytes) return false;
    plan.included.push(req);
    plan.bytes += space;
    return true;
  };
  for (const req of requests) {
    switch (req.kind) {
      case 'sack': {
        const room = budget - plan.bytes;
        const blocks = Math.min(req.blocks, Math.floor((room - SACK_BASE_SPACE) / SACK_BLOCK_BYTES));
        if (blocks >= 1) place({ kind: 'sack', blocks }, sackSpace(blocks));
        else if (req.blocks > 0) plan.dropped.push(req);
        break;
      }
      case 'sack_permitted':
        if (timestamps === 'included') plan.included.push(req);
        else if (timestamps === 'later') sackPermitted = req;
        else if (!place(req, SACK_PERMITTED_SPACE)) plan.dropped.push(req);
        break;
      case 'timestamps':
        if (place(req, TIMESTAMPS_SPACE)) {
          timestamps = 'included';
          if (sackPermitted !== undefined) plan.included.push(sackPermitted);
        } else {
          plan.dropped.push(req);
          timestamps = 'none';
          if (sackPermitted !== undefined && !place(sackPermitted, SACK_PERMITTED_SPACE))
            plan.dropped.push(sackPermitted);
        }
        sackPermitted = undefined;
        break;
      case 'mptcp':
        if (!place(req, mptcpOptionSpace(req.option))) {
          if (isSeparable(req.option)) plan.separate.push(req.option);
          else plan.dropped.push(req);
        }
        break;
      default:
        if (!place(req, optionSpace(req))) plan.dropped.push(req);
    }
  }
  return plan;
}

/**
 * Whether an MPTCP option fits on a pure ACK by itself (with timestamps when the connection
 * negotiated them: RFC 7323 §3.2 wants them on every non-RST segment).
 */
export function fitsOnPureAck(
  option: MptcpOption,
  withTimestamps: boolean,
  budget = TCP_OPTION_SPACE,
): boolean {
  return mptcpOptionSpace(option) + (withTimestamps ? TIMESTAMPS_SPACE : 0) <= budget;
}
