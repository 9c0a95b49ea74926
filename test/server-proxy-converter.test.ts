/**
 * `mptun server` features against real peers in namespaces: kernel MPTCP clients in `cli` → the
 * lab's two paths → mptun server in `srv` on its TUN.
 * - PROXY protocol v2 (--proxy-protocol) to a real consumer: nginx with `listen ... proxy_protocol`
 *   answers with `$proxy_protocol_addr`, which must be the client's own address (the source of
 *   the MPTCP connection's initial subflow), not the proxy's 127.0.0.1.
 * - Converter mode (--converter, --allow): a hand-made client speaking RFC 8803 TLVs over kernel
 *   MPTCP reaches an allowed destination (and its early data goes through); a destination outside
 *   the allowlist is answered with Error TLV 32 (not authorized) and nothing connects to it; an
 *   allowed port with nothing listening gets 96 (connection reset); garbage gets 1 (malformed).
 * - --pcap: the file tshark reads holds the MPTCP options our stack sent and received.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { configureMptcp, type TwoPathLab, tsharkFields, twoPathTopology } from './support/mptcp-lab.js';
import { plumbUserServer, userServerAddr } from './support/mptcp-user-lab.js';
import { NetnsLab } from './support/netns.js';
import { type Run, start, startMptun, waitForListen } from './support/perf-lab.js';

const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'mptun-pp-'));
after(() => {
  lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const TUN = 'mpt-ppc';
const VIP = userServerAddr(1, 'v4');
const UNIQUE = userServerAddr(2, 'v4');
const NGINX_PORT = 8080;
const CLOSED_PORT = 8081;
const PCAP = join(dir, 'server.pcap');

/**
 * Kernel MPTCP client. `http HOST PORT`: an HTTP/1.0 GET. `convert HOST PORT DST DPORT`: a
 * Convert header + Connect TLV for DST:DPORT with the same GET as early data. `raw HOST PORT HEX`:
 * those bytes. Prints one JSON line: our local address, the reply (hex and text).
 */
const CLIENT = `
import ipaddress, json, socket, struct, sys
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.settimeout(20)
s.connect((host, port))
get = b"GET / HTTP/1.0\\r\\nHost: svc\\r\\n\\r\\n"
if mode == "http":
    out = get
elif mode == "convert":
    dst = ipaddress.ip_address(sys.argv[4])
    addr = (dst.packed if dst.version == 6 else b"\\0" * 10 + b"\\xff\\xff" + dst.packed)
    connect = bytes([10, 5]) + struct.pack("!H", int(sys.argv[5])) + addr
    out = bytes([1, 1 + len(connect) // 4, 0, 0]) + connect + get
else:
    out = bytes.fromhex(sys.argv[4])
s.sendall(out)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(json.dumps({"local": s.getsockname()[0], "hex": got.hex(), "text": got.decode("latin-1")}), flush=True)
`;

interface Reply {
  local: string;
  hex: string;
  text: string;
}

async function client(...args: string[]): Promise<Reply> {
  const c = start(lab, t.cli, 'python3', ['-c', CLIENT, ...args]);
  const m = await c.waitFor(/^(\{.*\})$/m, 30_000);
  assert.equal((await c.done(10_000)).code, 0, c.stderr());
  return JSON.parse(m[1] ?? '') as Reply;
}

let t: TwoPathLab;
let mptun: Run;
let nginx: Run;

before(async () => {
  t = twoPathTopology(lab, { tag: 'srvp' });
  plumbUserServer(lab, t);
  configureMptcp(lab, t.cli, {
    sysctls: { enabled: true },
    limits: { subflows: 2, addAddrAccepted: 2 },
    flush: true,
  });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr "$request"';
  access_log ${dir}/access.log pp;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${NGINX_PORT} proxy_protocol;
    location / {
      return 200 "client=$proxy_protocol_addr:$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port peer=$remote_addr\\n";
    }
  }
}
`,
  );
  nginx = start(lab, t.srv, 'nginx', ['-p', dir, '-c', conf, '-e', `${dir}/error.log`]);
  await waitForListen(lab, t.srv, NGINX_PORT);
  mptun = startMptun(lab, t.srv, [
    'server',
    '--tun',
    TUN,
    '--vip',
    VIP,
    '--unique',
    UNIQUE,
    '--listen',
    '5001',
    '--backend',
    `127.0.0.1:${NGINX_PORT}`,
    '--proxy-protocol',
    '--converter',
    '5124',
    '--allow',
    `127.0.0.1/32:${NGINX_PORT},${CLOSED_PORT}`,
    '--pcap',
    PCAP,
    '--drain-timeout',
    '2',
  ]);
  await mptun.waitFor(/"msg":"server: listening"/);
});

after(async () => {
  if (nginx.child.exitCode === null) nginx.child.kill('SIGTERM');
  await nginx.done(10_000);
});

test('PROXY v2: nginx sees the real client address of the MPTCP connection', async (ctx) => {
  const r = await client('http', VIP, '5001');
  ctx.diagnostic(`client ${r.local}; nginx answered: ${r.text.split('\r\n').at(-1)?.trim()}`);
  assert.match(r.text, /^HTTP\/1\.1 200/);
  const m = /client=([^:]+):(\d+) server=([^:]+):(\d+) peer=(\S+)/.exec(r.text);
  assert.ok(m, r.text);
  assert.equal(m[1], r.local, 'the client address, not the proxy');
  assert.equal(m[3], VIP);
  assert.equal(m[4], '5001');
  assert.equal(m[5], '127.0.0.1', 'the TCP peer nginx sees is mptun');
});

test('converter: an allowed destination is connected, early data goes through, PROXY v2 names the client', async (ctx) => {
  const r = await client('convert', VIP, '5124', '127.0.0.1', String(NGINX_PORT));
  ctx.diagnostic(`reply header ${r.hex.slice(0, 8)}; nginx answered: ${r.text.split('\r\n').at(-1)?.trim()}`);
  assert.equal(r.hex.slice(0, 8), '01010000', 'a bare Convert header: connected');
  assert.match(r.text.slice(4), /^HTTP\/1\.1 200/);
  assert.match(
    r.text,
    new RegExp(`client=${r.local.replaceAll('.', '\\.')}:\\d+ server=127\\.0\\.0\\.1:${NGINX_PORT}`),
  );
});

test('converter: a destination outside the allowlist gets Error TLV 32 and is never connected', async (ctx) => {
  const before = lab.exec(t.srv, 'ss', '-Htn', 'state', 'all');
  for (const [host, port] of [
    ['127.0.0.1', '22'],
    ['10.50.1.1', String(NGINX_PORT)],
  ] as const) {
    const r = await client('convert', VIP, '5124', host, port);
    ctx.diagnostic(`Connect ${host}:${port} answered ${r.hex}`);
    assert.equal(r.hex, '010200001e012000', `${host}:${port} refused: not authorized`);
  }
  assert.doesNotMatch(lab.exec(t.srv, 'ss', '-Htn', 'state', 'all'), /127\.0\.0\.1:22\b/, before);
  await mptun.waitFor(
    /destination 10\.50\.1\.1:8080 is not in the allowlist.*"msg":"converter: request refused"/,
  );
});

test('converter: an allowed port with nothing listening gets 96, garbage gets 1', async () => {
  const r = await client('convert', VIP, '5124', '127.0.0.1', String(CLOSED_PORT));
  assert.equal(r.hex, '010200001e016000', 'connection reset by the destination');
  const g = await client('raw', VIP, '5124', '0100000000000000');
  assert.equal(g.hex, '010200001e010100', 'malformed message');
});

test('SIGTERM: clean exit; the --pcap file holds our MPTCP options, read by tshark', async (ctx) => {
  mptun.child.kill('SIGTERM');
  const { code } = await mptun.done(20_000);
  assert.equal(code, 0, mptun.stderr());
  assert.match(mptun.stderr(), /"refused":4,.*"msg":"server: stopped"/);
  assert.doesNotMatch(lab.exec(t.srv, 'ip', 'link', 'show'), new RegExp(TUN));
  assert.doesNotMatch(
    lab.exec(t.srv, 'ip', 'route', 'show'),
    /10\.52\.[12]\.2/,
    'no route of the server left',
  );
  const rows = await tsharkFields(PCAP, 'tcp.options.mptcp.subtype', ['ip.src', 'tcp.options.mptcp.subtype']);
  const ours = (src: string) => src === VIP || src === UNIQUE;
  const subtypes = (mine: boolean) =>
    new Set(
      rows
        .filter((r) => ours(r['ip.src']) === mine)
        .flatMap((r) => r['tcp.options.mptcp.subtype'].split(',')),
    );
  const sent = subtypes(true);
  const received = subtypes(false);
  ctx.diagnostic(
    `pcap: ${rows.length} packets with MPTCP options; subtypes sent ${[...sent]}, received ${[...received]}`,
  );
  // MP_CAPABLE (0), DSS (2) and ADD_ADDR (3) from us; MP_CAPABLE, MP_JOIN (1) and DSS from the kernel.
  for (const st of ['0', '2', '3']) assert.ok(sent.has(st), `sent subtype ${st}: ${[...sent]}`);
  for (const st of ['0', '2']) assert.ok(received.has(st), `received subtype ${st}: ${[...received]}`);
});
