import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import { resolveServerFlags, type ServerFlags } from '../server/config.js';
import { runUntilSignal } from './run-until-signal.js';

type ServerArgs = GlobalOptions & ServerFlags;

export const serverCommand: CommandModule<GlobalOptions, ServerArgs> = {
  command: 'server',
  describe:
    'Terminate MPTCP on a TUN (VIP + unique address, C flag, ADD_ADDR) and hand each connection to the service over TCP',
  builder: (y) =>
    (y as Argv<GlobalOptions>)
      .usage(
        '$0 server --tun NAME --vip IP [--unique IP] --listen PORT --backend HOST:PORT [...]\n' +
          '$0 server --tun NAME --vip IP [--unique IP] --converter PORT --allow CIDR[:PORTS] [...]\n' +
          '$0 server --config FILE [flags that override it]\n\n' +
          'Owns the load-balanced address (--vip) and its own --unique address(es) on a userspace MPTCP stack on the TUN,\n' +
          'answers MP_CAPABLE with the C flag (clients must not join the VIP) and announces the unique address with\n' +
          'ADD_ADDR, so clients add subflows that bypass the load balancer. Each connection, MPTCP or plain TCP, is\n' +
          'bridged to the backend of its --listen port, half-close preserved. SIGTERM/SIGINT: stop accepting, drain,\n' +
          'close, remove the routes it added.\n\n' +
          '--proxy-protocol sends each backend a PROXY protocol v2 header first (the real client address).\n' +
          '--converter PORT takes RFC 8803 Convert Protocol connections there: the client names the destination\n' +
          'in a Connect TLV; only destinations in an --allow rule are connected (no --allow: refuses to start),\n' +
          'others are answered with an Error TLV (not authorized). --config FILE (JSON or YAML) holds the same\n' +
          'settings under the long flag names; flags given on the command line win.',
      )
      .example(
        '$0 server --tun ptun0 --vip 10.100.0.100 --unique 10.100.1.1 --listen 5001 --backend 10.20.0.2:5001',
        'VIP and unique address routed into ptun0; ADD_ADDR 10.100.1.1',
      )
      .example(
        '$0 server --tun ptun0 --vip 10.100.0.100 --unique 10.100.1.1 --converter 5124 --allow 10.20.0.0/24:80,443',
        'converter mode: clients may reach ports 80 and 443 of 10.20.0.0/24 only',
      )
      .option('config', {
        type: 'string',
        describe: 'JSON or YAML file of these settings, keys = long flag names (flags given here win)',
      })
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
        describe:
          "Set MP_CAPABLE's C flag (no joins to the VIP); --no-c-flag allows them, for comparisons [default: true]",
      })
      .option('checksum', {
        type: 'boolean',
        describe: 'Require DSS checksums (MP_CAPABLE A flag) [default: false]',
      })
      .option('routes', {
        type: 'boolean',
        describe:
          'Route the VIP and --unique addresses into the TUN; --no-routes for topologies wired by someone else [default: true]',
      })
      .option('offload', {
        type: 'boolean',
        describe: 'TUN with virtio-net headers, checksum offload and TSO (64 KB segments) [default: true]',
      })
      .option('drain-timeout', {
        type: 'number',
        describe:
          'On SIGTERM/SIGINT, seconds to let open connections finish before closing them [default: 10]',
      })
      .option('backend-timeout', {
        type: 'number',
        describe:
          'Seconds to wait for the backend (or a converter destination) to accept a connection, and for a converter request [default: 10]',
      })
      .option('proxy-protocol', {
        type: 'boolean',
        describe:
          'Send every backend (and converter destination) a PROXY protocol v2 header with the real client address first [default: false]',
      })
      .option('converter', {
        type: 'number',
        describe:
          'Converter mode (RFC 8803) on this port: the destination comes from the Convert header (needs --allow)',
      })
      .option('allow', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          "Converter allowlist: CIDR[:PORTS], PORTS like 80,443,8000-8099, IPv6 as '[fd00::/64]:443' (repeatable)",
      })
      .option('psk-file', {
        type: 'string',
        describe:
          'Converter requests must be authenticated with the pre-shared key in this file (at least 16 bytes)',
      })
      .option('pcap', {
        type: 'string',
        describe: 'Write what the stack sends and receives on the TUN to this pcap file',
      })
      .option('scheduler', {
        type: 'string',
        describe:
          "Which subflow carries the next data to a client: 'lowest-rtt' (as Linux), 'round-robin', or 'redundant' (every byte on every subflow) [default: lowest-rtt]; a client's backup subflows get data only when no other works",
      })
      .option('congestion', {
        type: 'string',
        describe:
          "The subflows' congestion control: 'lia' (RFC 6356), 'olia' or 'balia' (coupled), or 'cubic' / 'newreno' (per subflow) [default: olia]",
      })
      .check((a) => {
        const r = resolveServerFlags(a as ServerFlags);
        return 'error' in r ? r.error : true;
      }) as unknown as Argv<ServerArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const r = resolveServerFlags(args);
    if ('error' in r) throw new Error(r.error); // the .check() has run already
    const { MptunServer } = await import('../server/server.js');
    await runUntilSignal('server', log, () => MptunServer.start(r.config, log));
  },
};
