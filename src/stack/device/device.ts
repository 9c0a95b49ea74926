/**
 * A Device moves IP packets (no link-layer header) between the stack and something else: a TUN,
 * an in-memory peer, a pcap tap, a fault injector. Devices with offload carry 64 KB TCP
 * super-packets described by a GSO header (virtio-net semantics): the kernel segments them on
 * the way out and may hand us coalesced ones on the way in.
 */
export type GsoType = 'none' | 'tcpv4' | 'tcpv6';

/** The parts of struct virtio_net_hdr we use (linux/virtio_net.h). */
export interface GsoInfo {
  /** VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at csumStart+csumOffset is only the pseudo-header sum. */
  needsCsum: boolean;
  /** VIRTIO_NET_HDR_F_DATA_VALID: received packet whose checksum the kernel already verified. */
  dataValid: boolean;
  gsoType: GsoType;
  /** Length of the IP + TCP headers that prefix every segment. */
  hdrLen: number;
  /** Payload bytes per segment (the MSS) when gsoType is not 'none'. */
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export interface Frame {
  /** One IP packet (or super-packet when gso.gsoType !== 'none'). */
  data: Uint8Array;
  /** Present on offload-capable devices. */
  gso?: GsoInfo;
}

/**
 * Receives frames in batches. Frames are borrowed: their bytes are only valid during the call
 * (devices reuse their read buffers), so a consumer that keeps one must copy it.
 */
export type FrameHandler = (frames: readonly Frame[]) => void;

export interface Device {
  readonly name: string;
  /** Largest IP packet (without GSO) this device carries. */
  readonly mtu: number;
  /** True when frames carry GsoInfo and super-packets are allowed both ways. */
  readonly offload: boolean;
  /** Start (or replace) delivery of received frames. */
  onFrames(handler: FrameHandler): void;
  /**
   * Queue frames for sending. The device copies what it needs before returning. Returns false
   * when its queue is above the high-water mark: stop writing until the 'drain' callback.
   */
  write(frames: readonly Frame[]): boolean;
  onDrain(callback: () => void): void;
  close(): Promise<void>;
}
