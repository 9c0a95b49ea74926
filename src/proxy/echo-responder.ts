/**
 * A tiny IPv4 host on a Device that answers ICMP echo requests and echoes UDP datagrams back to
 * their sender. It exists to prove a device end to end against the kernel (`mptun selfcheck`,
 * the TUN tests); it is not part of the proxy's data path, so it favours clarity over speed.
 */
import type { Device, Frame } from '../stack/device/device.js';
import { pseudoHeaderSumV4 } from '../stack/wire/checksum.js';
import {
  encodeIcmpEcho,
  ICMP_ECHO_HEADER_LENGTH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  parseIcmpEcho,
} from '../stack/wire/icmp.js';
import { encodeIpv4, IPV4_MIN_HEADER_LENGTH, parseIpv4 } from '../stack/wire/ipv4.js';
import { encodeUdp, IPPROTO_UDP, parseUdp, UDP_HEADER_LENGTH } from '../stack/wire/udp.js';

const IPPROTO_ICMP = 1;

export interface EchoResponderStats {
  icmpEchoReplies: number;
  udpEchoes: number;
  /** Frames ignored or rejected, by reason (codec failure reasons and 'not-for-us' kinds). */
  dropped: Record<string, number>;
}

export interface EchoEvent {
  kind: 'icmp' | 'udp';
  src: number;
  dst: number;
  bytes: number;
}

/**
 * Answers on `device` for every destination address (whatever the kernel routes into the
 * device is "us"). `onEcho` is told about each answered packet.
 */
export class EchoResponder {
  readonly stats: EchoResponderStats = { icmpEchoReplies: 0, udpEchoes: 0, dropped: {} };
  private identification = 1;

  constructor(
    private readonly device: Device,
    private readonly onEcho?: (event: EchoEvent) => void,
  ) {
    device.onFrames((frames) => {
      const replies: Frame[] = [];
      for (const frame of frames) {
        const reply = this.answer(frame);
        if (reply) replies.push({ data: reply });
      }
      // The replies are tiny and few; a full queue just drops them, like a busy host would.
      if (replies.length > 0 && !this.device.write(replies)) this.drop('device-busy');
    });
  }

  private answer(frame: Frame): Uint8Array | undefined {
    const buf = frame.data;
    const ip = parseIpv4(buf);
    if (!ip.ok) return this.drop(ip.reason);
    const h = ip.value;
    if (h.moreFragments || h.fragmentOffset !== 0) return this.drop('fragment');
    const start = h.headerLength;
    const end = h.totalLength;
    // A packet from a device with checksum offload may carry only the pseudo-header sum.
    const trusted = frame.gso?.needsCsum === true || frame.gso?.dataValid === true;
    if (h.protocol === IPPROTO_ICMP) {
      const echo = parseIcmpEcho(buf, start, end, !trusted);
      if (!echo.ok) return this.drop(echo.reason);
      if (echo.value.type !== ICMP_ECHO_REQUEST) return this.drop('icmp.not-request');
      const out = new Uint8Array(IPV4_MIN_HEADER_LENGTH + ICMP_ECHO_HEADER_LENGTH + echo.value.data.length);
      this.ipHeader(h.dst, h.src, IPPROTO_ICMP, out);
      encodeIcmpEcho({ ...echo.value, type: ICMP_ECHO_REPLY }, out, IPV4_MIN_HEADER_LENGTH);
      this.stats.icmpEchoReplies++;
      this.onEcho?.({ kind: 'icmp', src: h.src, dst: h.dst, bytes: echo.value.data.length });
      return out;
    }
    if (h.protocol === IPPROTO_UDP) {
      const pseudo = trusted ? undefined : pseudoHeaderSumV4(h.src, h.dst, IPPROTO_UDP, end - start);
      const udp = parseUdp(buf, start, end, pseudo);
      if (!udp.ok) return this.drop(udp.reason);
      const payload = udp.value.payload;
      const udpLength = UDP_HEADER_LENGTH + payload.length;
      const out = new Uint8Array(IPV4_MIN_HEADER_LENGTH + udpLength);
      this.ipHeader(h.dst, h.src, IPPROTO_UDP, out);
      out.set(payload, IPV4_MIN_HEADER_LENGTH + UDP_HEADER_LENGTH);
      encodeUdp(
        { srcPort: udp.value.dstPort, dstPort: udp.value.srcPort },
        payload.length,
        pseudoHeaderSumV4(h.dst, h.src, IPPROTO_UDP, udpLength),
        out,
        IPV4_MIN_HEADER_LENGTH,
      );
      this.stats.udpEchoes++;
      this.onEcho?.({ kind: 'udp', src: h.src, dst: h.dst, bytes: payload.length });
      return out;
    }
    return this.drop(`protocol-${h.protocol}`);
  }

  private ipHeader(src: number, dst: number, protocol: number, out: Uint8Array): void {
    encodeIpv4(
      {
        tos: 0,
        totalLength: out.length,
        identification: this.identification++ & 0xffff,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 64,
        protocol,
        src,
        dst,
        options: new Uint8Array(0),
      },
      out,
      0,
    );
  }

  private drop(reason: string): undefined {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    return undefined;
  }
}
