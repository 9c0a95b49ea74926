import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import {
  type ClientFlags,
  DEFAULT_TABLE_BASE,
  DEFAULT_TUN_ADDRESS,
  validateClientFlags,
} from '../client/config.js';
import { runUntilSignal } from './run-until-signal.js';

type ClientArgs = GlobalOptions & ClientFlags;

export const clientCommand: CommandModule<GlobalOptions, ClientArgs> = {
  command: 'client',
  describe: "Carry unmodified apps' TCP connections to --intercept prefixes over MPTCP, on several paths",
  builder: (y) =>
    (y as Argv<GlobalOptions>)
      .usage(
        '$0 client --tun NAME --intercept CIDR [--intercept ...] (--path IFACE[=GW] ... | --addr IP ... --no-routes)\n\n' +
          "Routes --intercept prefixes into a TUN, where a userspace stack terminates the apps' TCP connections and\n" +
          "opens an MPTCP connection to each one's own destination (transparent mode: any MPTCP server works, the\n" +
          "kernel's included), from the first path's address; the other paths join. With --path, mptun plumbs each\n" +
          'path (a private stack address, a policy routing table via its gateway, nftables masquerade) and removes\n' +
          'all of it on exit; with --no-routes it uses --addr addresses someone else routed. SIGTERM/SIGINT: stop\n' +
          'intercepting, drain, close, remove what it added.\n\n' +
          'Converter mode (--server IP:PORT, RFC 8803): each connection goes over MPTCP to that mptun server\n' +
          "(started with --converter PORT --allow ...) with a Convert request naming the app's destination; the\n" +
          'server connects on over TCP, so the destination needs no MPTCP. A refusal (Error TLV) resets the app.\n\n' +
          'Not yet: IPv6 interception.',
      )
      .example(
        '$0 client --tun ptun0 --intercept 10.100.0.100/32 --path eth0 --path wwan0',
        'two paths, gateways from their routes',
      )
      .example(
        '$0 client --tun ptun0 --intercept 10.20.0.0/24 --path eth0 --path wwan0 --server 10.100.0.100:5124',
        'converter mode: destinations without MPTCP, via an mptun server',
      )
      .example(
        '$0 client --tun ptun0 --intercept 10.100.0.100/32 --addr 10.1.0.3 --addr 10.2.0.3 --no-routes',
        'topology wired by someone else',
      )
      .option('tun', { type: 'string', describe: 'TUN interface to open (created if missing)' })
      .option('intercept', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'IPv4 prefix whose TCP connections are carried over MPTCP (repeatable), e.g. 10.100.0.100/32',
      })
      .option('path', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'IFACE or IFACE=GATEWAY: a path to plumb (repeatable; the gateway is read from the interface routes if not given)',
      })
      .option('addr', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          "The stack's address per path (repeatable, in --path order; default 100.64.<k>.2); with --no-routes, required",
      })
      .option('routes', {
        type: 'boolean',
        default: true,
        describe:
          'Plumb routes, rules, NAT and the interception route; --no-routes for topologies wired by someone else',
      })
      .option('tun-addr', {
        type: 'string',
        default: DEFAULT_TUN_ADDRESS,
        describe: "The TUN's own address: the source of intercepted connections (never the stack's)",
      })
      .option('table-base', {
        type: 'number',
        default: DEFAULT_TABLE_BASE,
        describe: 'Path k routes in table (and rule priority) base+k',
      })
      .option('offload', {
        type: 'boolean',
        default: true,
        describe: 'TUN with virtio-net headers, checksum offload and TSO (64 KB segments)',
      })
      .option('checksum', {
        type: 'boolean',
        default: false,
        describe: 'Ask for DSS checksums (MP_CAPABLE A flag)',
      })
      .option('connect-timeout', {
        type: 'number',
        default: 10,
        describe: "Seconds to wait for the destination's handshake (then the app's connection is reset)",
      })
      .option('drain-timeout', {
        type: 'number',
        default: 10,
        describe: 'On SIGTERM/SIGINT, seconds to let open connections finish before closing them',
      })
      .option('server', {
        type: 'string',
        describe:
          "Converter mode (RFC 8803): carry each connection to this mptun server's --converter port (IPv4:PORT), which connects on to the original destination",
      })
      .option('psk-file', {
        type: 'string',
        describe:
          "Converter mode: the server's pre-shared key (its --psk-file) to authenticate each Convert request",
      })
      .check((a) => {
        const r = validateClientFlags(a as ClientFlags);
        return 'error' in r ? r.error : true;
      }) as unknown as Argv<ClientArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const r = validateClientFlags(args);
    if ('error' in r) throw new Error(r.error); // the .check() has run already
    const { MptunClient } = await import('../client/client.js');
    await runUntilSignal('client', log, () => MptunClient.start(r.config, log));
  },
};
