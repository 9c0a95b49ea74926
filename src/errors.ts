/**
 * The one registry of mptun's error classes. Every error a user can see carries a stable
 * `code` (MPTUN_ERR_...) that scripts may match on; the message says what to do about it.
 * API misuse throws these; untrusted network input never throws (codecs return failures).
 */
export class MptunError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MptunError';
    this.code = code;
  }
}

function defineError(code: string, name: string) {
  return class extends MptunError {
    static readonly code = code;
    constructor(message: string, options?: { cause?: unknown }) {
      super(code, message, options);
      this.name = name;
    }
  };
}

/** A flag, config value or API argument is invalid. */
export const InvalidArgumentError = defineError('MPTUN_ERR_INVALID_ARG', 'InvalidArgumentError');
/** /dev/net/tun is missing (no tun module, or a container without the device). */
export const TunUnavailableError = defineError('MPTUN_ERR_TUN_UNAVAILABLE', 'TunUnavailableError');
/** The process lacks CAP_NET_ADMIN (run as root or grant the capability). */
export const PermissionError = defineError('MPTUN_ERR_PERMISSION', 'PermissionError');
/** An interface name is invalid, or it exists and is not a TUN we may attach to. */
export const InterfaceError = defineError('MPTUN_ERR_INTERFACE', 'InterfaceError');
/** The native TUN binding failed to load (it is built by `npm ci`). */
export const NativeBindingError = defineError('MPTUN_ERR_NATIVE_BINDING', 'NativeBindingError');
/** A device was used after it was closed. */
export const DeviceClosedError = defineError('MPTUN_ERR_DEVICE_CLOSED', 'DeviceClosedError');
/** A host command (ip, nft, tc...) that mptun runs failed. */
export const HostCommandError = defineError('MPTUN_ERR_HOST_COMMAND', 'HostCommandError');
/** An MPTCP/TCP option does not fit in the 40 bytes of TCP option space. */
export const OptionSpaceError = defineError('MPTUN_ERR_OPTION_SPACE', 'OptionSpaceError');
/** `mptun perf`: the peer is unreachable, refused, busy, or broke iperf3's protocol. */
export const PerfError = defineError('MPTUN_ERR_PERF', 'PerfError');
