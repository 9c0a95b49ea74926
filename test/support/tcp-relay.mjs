// A tiny TCP relay, the usual way to put kernel MPTCP under an unmodified app today: run it under
// `mptcpize run node tcp-relay.mjs ...` and every socket it opens is MPTCP (Node cannot ask for
// IPPROTO_MPTCP itself). On the client side it accepts the app's plain TCP and connects out
// (MPTCP); on the server side it accepts MPTCP and connects to the backend.
//
//   node tcp-relay.mjs --forward LHOST:LPORT=CHOST:CPORT [--forward ...] [--local ADDR]
//
// Each connection accepted on LHOST:LPORT is relayed to CHOST:CPORT (from ADDR with --local),
// piped both ways with backpressure (`pipe`), half-close kept. The relay prints `relay:
// listening` once every listener is up, and one JSON line per connection when both directions
// are done: {"msg":"relayed","port":LPORT,"up":N,"down":N} (up: accepted → connected side), or
// {"msg":"relay failed","port":LPORT,"error":...} when either side failed (both are destroyed).
// Written for the chain bench (bench/chain.ts) and test/chain-relay.test.ts; plain JavaScript so
// that it starts without a TypeScript loader under mptcpize's LD_PRELOAD.
import net from 'node:net';

function usage(why) {
  process.stderr.write(
    `tcp-relay: ${why}; usage: --forward LHOST:LPORT=CHOST:CPORT [--forward ...] [--local ADDR]\n`,
  );
  process.exit(2);
}

function hostPort(text) {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (m === null) usage(`'${text}' is not HOST:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

const forwards = [];
let localAddress;
for (let i = 2; i < process.argv.length; i += 2) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--local') localAddress = value;
  else if (flag === '--forward') {
    const [from, to] = value.split('=');
    if (to === undefined) usage(`--forward '${value}' is not LHOST:LPORT=CHOST:CPORT`);
    forwards.push({ listen: hostPort(from), target: hostPort(to) });
  } else usage(`unknown flag ${flag}`);
}
if (forwards.length === 0) usage('no --forward');

function relay(inbound, port, target) {
  const outbound = net.connect({
    host: target.host,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
    ...(localAddress === undefined ? {} : { localAddress }),
  });
  let closed = 0;
  let failed = false;
  const fail = (err) => {
    if (failed) return;
    failed = true;
    inbound.destroy();
    outbound.destroy();
    process.stdout.write(`${JSON.stringify({ msg: 'relay failed', port, error: err.message })}\n`);
  };
  const closedOne = () => {
    if (++closed === 2 && !failed) {
      const line = { msg: 'relayed', port, up: outbound.bytesWritten, down: inbound.bytesWritten };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
  };
  inbound.on('error', fail);
  outbound.on('error', fail);
  inbound.once('close', closedOne);
  outbound.once('close', closedOne);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
}

let listening = 0;
for (const { listen, target } of forwards) {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) =>
    relay(s, listen.port, target),
  );
  server.on('error', (err) => {
    process.stderr.write(`tcp-relay: ${listen.host}:${listen.port}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(listen.port, listen.host, () => {
    if (++listening === forwards.length) process.stdout.write('relay: listening\n');
  });
}
process.once('SIGTERM', () => process.exit(0));
