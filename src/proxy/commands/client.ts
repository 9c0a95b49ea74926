import type { Argv, CommandModule } from 'yargs';
import { commandContext, type GlobalOptions } from '../cli.js';
import {
  type ClientFlags,
  DEFAULT_TABLE_BASE,
  DEFAULT_TUN_ADDRESS,
  DEFAULT_TUN_ADDRESS6,
  resolveClientFlags,
} from '../client/config.js';
import { runUntilSignal } from './run-until-signal.js';

type ClientArgs = GlobalOptions & ClientFlags;

export const clientCommand: CommandModule<GlobalOptions, ClientArgs> = {
  command: 'client',
  describe: "Carry unmodified apps' TCP connections to --intercept prefixes over MPTCP, on several paths",
  builder: (y) =>
    (y as Argv<GlobalOptions>)
      .usage(
        '$0 client --tun NAME --intercept CIDR [--intercept ...] (--path IFACE[=GW] ... | --addr IP ... --no-routes)\n' +
          '$0 client --config FILE [flags that override it]\n\n' +
          "Routes --intercept prefixes into a TUN, where a userspace stack terminates the apps' TCP connections and\n" +
          "opens an MPTCP connection to each one's own destination (transparent mode: any MPTCP server works, the\n" +
          "kernel's included), from the first path's address; the other paths join. With --path, mptun plumbs each\n" +
          'path (a private stack address, a policy routing table via its gateway, nftables masquerade) and removes\n' +
          'all of it on exit; with --no-routes it uses --addr addresses someone else routed. SIGTERM/SIGINT: stop\n' +
          'intercepting, drain, close, remove what it added.\n\n' +
          'With --path it follows each interface: when one goes down (link down, or no address of its own left)\n' +
          'its subflows are closed and the peer gets REMOVE_ADDR; when it is back, its table route is restored\n' +
          'and subflows from it are opened again.\n\n' +
          'IPv6: --intercept takes IPv6 prefixes too. In transparent mode those connections travel over IPv6 on\n' +
          'the paths: each path then also gets a private IPv6 stack address (fd64:<k>::2, or an IPv6 --addr per\n' +
          'path), an ip6 policy table via its IPv6 gateway (from its routes, or --path IFACE=GW4,GW6), ip6\n' +
          'masquerade and IPv6 forwarding. In converter mode an IPv6 destination travels in the Convert request\n' +
          'over the paths to the (IPv4) --server, so the paths need no IPv6.\n\n' +
          'Converter mode (--server IP:PORT, RFC 8803): each connection goes over MPTCP to that mptun server\n' +
          "(started with --converter PORT --allow ...) with a Convert request naming the app's destination; the\n" +
          'server connects on over TCP, so the destination needs no MPTCP. A refusal (Error TLV) resets the app.\n\n' +
          '--config FILE (JSON or YAML) holds the same settings under the long flag names (a list for a repeatable\n' +
          'flag); flags given on the command line win. --pcap FILE records what the stack sends and receives.',
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
      .example(
        '$0 client --tun ptun0 --intercept 10.100.0.100/32 --path eth0 --path wwan0 --backup wwan0',
        'wwan0 carries data only when eth0 cannot',
      )
      .example('$0 client --config /etc/mptun/client.yaml --pcap /tmp/client.pcap', 'settings from a file')
      .option('config', {
        type: 'string',
        describe: 'JSON or YAML file of these settings, keys = long flag names (flags given here win)',
      })
      .option('tun', { type: 'string', describe: 'TUN interface to open (created if missing)' })
      .option('intercept', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'IPv4 or IPv6 prefix whose TCP connections are carried over MPTCP (repeatable), e.g. 10.100.0.100/32, fd00:20::/64',
      })
      .option('path', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'IFACE, IFACE=GATEWAY or IFACE=GW4,GW6: a path to plumb (repeatable; gateways are read from the interface routes if not given); followed going down and up',
      })
      .option('addr', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          "The stack's address per path (repeatable, in --path order, one per path and family; default 100.64.<k>.2, fd64:<k>::2); with --no-routes, required",
      })
      .option('routes', {
        type: 'boolean',
        describe:
          'Plumb routes, rules, NAT and the interception route; --no-routes for topologies wired by someone else [default: true]',
      })
      .option('tun-addr', {
        type: 'string',
        describe: `The TUN's own address: the source of intercepted connections (never the stack's) [default: ${DEFAULT_TUN_ADDRESS}]`,
      })
      .option('tun-addr6', {
        type: 'string',
        describe: `The TUN's own IPv6 address, for intercepted IPv6 connections [default: ${DEFAULT_TUN_ADDRESS6}]`,
      })
      .option('table-base', {
        type: 'number',
        describe: `Path k routes in table (and rule priority) base+k [default: ${DEFAULT_TABLE_BASE}]`,
      })
      .option('offload', {
        type: 'boolean',
        describe: 'TUN with virtio-net headers, checksum offload and TSO (64 KB segments) [default: true]',
      })
      .option('checksum', {
        type: 'boolean',
        describe: 'Ask for DSS checksums (MP_CAPABLE A flag) [default: false]',
      })
      .option('connect-timeout', {
        type: 'number',
        describe:
          "Seconds to wait for the destination's handshake (then the app's connection is reset) [default: 10]",
      })
      .option('drain-timeout', {
        type: 'number',
        describe:
          'On SIGTERM/SIGINT, seconds to let open connections finish before closing them [default: 10]',
      })
      .option('stats-interval', {
        type: 'number',
        describe:
          "Every SEC seconds, log each open connection's bytes sent and received per subflow ('connection stats'; 0: off) [default: 0]",
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
      .option('pcap', {
        type: 'string',
        describe: 'Write what the stack sends and receives on the TUN to this pcap file',
      })
      .option('scheduler', {
        type: 'string',
        describe:
          "Which subflow carries the next data: 'lowest-rtt' (as Linux), 'round-robin', or 'redundant' (every byte on every subflow: lower latency under loss, no aggregation) [default: lowest-rtt]",
      })
      .option('congestion', {
        type: 'string',
        describe:
          "The subflows' congestion control: 'lia' (RFC 6356), 'olia' or 'balia' (coupled: together no more than one TCP flow at a shared bottleneck), or 'cubic' / 'newreno' (per subflow) [default: olia]",
      })
      .option('backup', {
        type: 'string',
        array: true,
        nargs: 1,
        describe:
          'A --path interface (or, with --no-routes, an --addr address) whose subflows are MP_PRIO backups (repeatable): no data goes on them while a subflow on another path works, e.g. a metered LTE link',
      })
      .check((a) => {
        const r = resolveClientFlags(a as ClientFlags);
        return 'error' in r ? r.error : true;
      }) as unknown as Argv<ClientArgs>,
  handler: async (args) => {
    const { log } = commandContext(args);
    const r = resolveClientFlags(args);
    if ('error' in r) throw new Error(r.error); // the .check() has run already
    const { MptunClient } = await import('../client/client.js');
    await runUntilSignal('client', log, () => MptunClient.start(r.config, log));
  },
};
