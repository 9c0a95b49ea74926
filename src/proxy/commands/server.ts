import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import { type ServerFlags, validateServerFlags } from '../server/config.js';

type ServerArgs = GlobalOptions & ServerFlags;

export const serverCommand: CommandModule<GlobalOptions, ServerArgs> = {
  command: 'server',
  describe:
    'Terminate MPTCP on a TUN (VIP + unique address, C flag, ADD_ADDR) and hand each connection to the service over TCP',
  builder: (y) =>
    (y as Argv<GlobalOptions>)
      .usage(
        '$0 server --tun NAME --vip IP [--unique IP] --listen PORT --backend HOST:PORT [...]\n\n' +
          'Owns the load-balanced address (--vip) and its own --unique address(es) on a userspace MPTCP stack on the TUN,\n' +
          'answers MP_CAPABLE with the C flag (clients must not join the VIP) and announces the unique address with\n' +
          'ADD_ADDR, so clients add subflows that bypass the load balancer. Each connection, MPTCP or plain TCP, is\n' +
          'bridged to the backend of its --listen port, half-close preserved. SIGTERM/SIGINT: stop accepting, drain,\n' +
          'close, remove the routes it added.\n\n' +
          'Not yet: the PROXY protocol v2 header to the backend, converter mode (RFC 8803) with an allowlist.',
      )
      .example(
        '$0 server --tun ptun0 --vip 10.100.0.100 --unique 10.100.1.1 --listen 5001 --backend 10.20.0.2:5001',
        'VIP and unique address routed into ptun0; ADD_ADDR 10.100.1.1',
      )
      .option('tun', { type: 'string', describe: 'TUN interface to open (created if missing)' })
      .option('vip', {
        type: 'string',
        describe: 'The load-balanced address (VIP) clients connect to; the stack owns it',
      })
      .option('unique', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          "This server's own address, reachable without the load balancer (repeatable); the stack owns it",
      })
      .option('announce', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'Announce with ADD_ADDR: IP[:PORT] or [IPv6]:PORT, a --unique address or the VIP with a per-server port (repeatable; default: every --unique)',
      })
      .option('listen', {
        type: 'number',
        array: true,
        nargs: 1,
        describe: 'Port to accept MPTCP (and plain TCP) connections on, on every address (repeatable)',
      })
      .option('backend', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'HOST:PORT of the service for the --listen in the same position (repeatable, one per --listen)',
      })
      .option('c-flag', {
        type: 'boolean',
        default: true,
        describe: "Set MP_CAPABLE's C flag (no joins to the VIP); --no-c-flag allows them, for comparisons",
      })
      .option('checksum', {
        type: 'boolean',
        default: false,
        describe: 'Require DSS checksums (MP_CAPABLE A flag)',
      })
      .option('routes', {
        type: 'boolean',
        default: true,
        describe:
          'Route the VIP and --unique addresses into the TUN; --no-routes for topologies wired by someone else',
      })
      .option('offload', {
        type: 'boolean',
        default: true,
        describe: 'TUN with virtio-net headers, checksum offload and TSO (64 KB segments)',
      })
      .option('drain-timeout', {
        type: 'number',
        default: 10,
        describe: 'On SIGTERM/SIGINT, seconds to let open connections finish before closing them',
      })
      .option('backend-timeout', {
        type: 'number',
        default: 10,
        describe: 'Seconds to wait for the backend to accept a connection (then the client is reset)',
      })
      .check((a) => {
        const r = validateServerFlags(a as ServerFlags);
        return 'error' in r ? r.error : true;
      }) as unknown as Argv<ServerArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const r = validateServerFlags(args);
    if ('error' in r) throw new Error(r.error); // the .check() has run already
    const { MptunServer } = await import('../server/server.js');
    // Signal handlers go in before the listeners exist: a signal right after start is a clean stop.
    let onSignal: (sig: NodeJS.Signals) => void = () => undefined;
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      onSignal = resolve;
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    });
    try {
      const server = await MptunServer.start(r.config, log);
      const sig = await stopped;
      log.info({ signal: sig }, 'server: stopping');
      await server.close();
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
