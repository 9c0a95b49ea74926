#!/usr/bin/env python3
"""Kernel peers for the MPTCP lab (test/support/mptcp-lab.ts): Linux sockets, MPTCP or plain TCP.

  server --host H --port P [--tcp] [--conns N] [--send N --seed S]
      Listens (IPPROTO_MPTCP, or TCP with --tcp) and serves connections concurrently: receives
      everything until EOF, then sends N deterministic bytes back (0 by default) and closes.
      Stops after --conns connections (0: serves until killed).
  client --host H --port P --bytes N --seed S [--tcp] [--bind ADDR] [--count C]
         [--subflows K] [--subflows-when connected|sent] [--hold]
      Opens C connections one after the other. Each: connect, optionally wait for the outcome of
      K extra subflows (before sending, or after sending and before closing), send N
      deterministic bytes, optionally hold (wait for a line on stdin, so a test can look at the
      live connection), shut down writing, receive until EOF, close.
  marker HOST PORT [TEXT]
      Sends one UDP datagram (a capture that has printed it holds everything sent before it).

Deterministic bytes: chunk k (k = 0, 1, ...) of the stream for seed S is the first 1 MiB of
SHAKE128("mptun-lab:S:k") (ASCII, decimal); the stream is the chunks concatenated and cut to N.
mptcp-lab.ts's labBytes()/labSha256() compute the same stream.

Extra subflows are watched on the mptcp_pm_events generic-netlink group, joined before the
connection exists, filtered by the connection's token: no polling, no event missed.

One line per step on stdout, first word the step, then the connection index where there is one:
  listening HOST PORT
  accepted I PEERHOST PEERPORT proto=mptcp|fallback|tcp token=T|none
  connected I LOCALHOST LOCALPORT proto=mptcp|fallback|tcp token=T|none
  subflow I established|closed SADDR SPORT DADDR DPORT error=E
  subflows I established=E closed=C
  sent I NBYTES SHA256
  holding I
  received I NBYTES SHA256
  info I subflows=N          (MPTCP_INFO just before close: subflows besides the first one)
  closed I
  done
Exits non-zero with a message on stderr on any failure (a timeout included).
"""
import argparse
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_INFO_FLAG_FALLBACK = 1
CHUNK = 1 << 20

# Generic netlink (include/uapi/linux/genetlink.h, netlink.h).
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME = 1
CTRL_ATTR_MCAST_GRP_ID = 2
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
# include/uapi/linux/mptcp_pm.h: event types and their attributes.
EV_SUB_ESTABLISHED = 10
EV_SUB_CLOSED = 11
ATTR_TOKEN = 1
ATTR_SADDR4 = 5
ATTR_SADDR6 = 6
ATTR_DADDR4 = 7
ATTR_DADDR6 = 8
ATTR_SPORT = 9
ATTR_DPORT = 10
ATTR_ERROR = 12

out_lock = threading.Lock()


def say(*words):
    with out_lock:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def fail(msg):
    with out_lock:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()
    # From any thread: the whole process ends, so a test sees the failure at once.
    os._exit(2)


def lab_chunks(seed, nbytes):
    """Yields the deterministic stream for `seed` in chunks of at most 1 MiB, `nbytes` in all."""
    k = 0
    left = nbytes
    while left > 0:
        n = min(CHUNK, left)
        yield hashlib.shake_128(b"mptun-lab:%d:%d" % (seed, k)).digest(CHUNK)[:n]
        left -= n
        k += 1


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def proto_of(sock):
    return "mptcp" if sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == IPPROTO_MPTCP else "tcp"


def mptcp_info(sock):
    """(token, extra subflows) from MPTCP_INFO, or None when the socket is TCP or fell back."""
    if proto_of(sock) != "mptcp":
        return None
    try:
        raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    except OSError:
        return None
    # struct mptcp_info: six u8 counters, then u32 flags at 8 and u32 token at 12.
    if len(raw) < 16 or struct.unpack_from("=I", raw, 8)[0] & MPTCP_INFO_FLAG_FALLBACK:
        return None
    return struct.unpack_from("=I", raw, 12)[0], raw[0]


def describe(sock):
    """proto=mptcp|fallback|tcp and the token: an MPTCP socket that fell back says fallback."""
    info = mptcp_info(sock)
    if info is None:
        proto = "fallback" if proto_of(sock) == "mptcp" else "tcp"
        return f"proto={proto} token=none"
    return f"proto=mptcp token={info[0]:08x}"


def receive_all(sock):
    h = hashlib.sha256()
    n = 0
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    while True:
        got = sock.recv_into(view)
        if got == 0:
            return n, h.hexdigest()
        h.update(view[:got])
        n += got


def send_stream(sock, seed, nbytes):
    h = hashlib.sha256()
    for chunk in lab_chunks(seed, nbytes):
        sock.sendall(chunk)
        h.update(chunk)
    return nbytes, h.hexdigest()


# --- netlink path-manager events -------------------------------------------------------------


def nl_attrs(buf):
    out = {}
    i = 0
    while i + 4 <= len(buf):
        alen, atype = struct.unpack_from("=HH", buf, i)
        if alen < 4:
            break
        out[atype & 0x3FFF] = bytes(buf[i + 4 : i + alen])
        i += (alen + 3) & ~3
    return out


class PmEvents:
    """A subscription to mptcp_pm_events; events are kept per token until someone asks."""

    def __init__(self):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        s.bind((0, 0))
        name = b"mptcp_pm\0"
        attr = struct.pack("=HH", 4 + len(name), CTRL_ATTR_FAMILY_NAME) + name
        attr += b"\0" * (((len(attr) + 3) & ~3) - len(attr))
        body = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0) + attr
        s.send(struct.pack("=IHHII", 16 + len(body), GENL_ID_CTRL, NLM_F_REQUEST, 1, 0) + body)
        reply = s.recv(65536)
        if struct.unpack_from("=IHHII", reply, 0)[1] == NLMSG_ERROR:
            fail("no mptcp_pm generic netlink family")
        top = nl_attrs(reply[20:])
        group = None
        for grp in nl_attrs(top.get(CTRL_ATTR_MCAST_GROUPS, b"")).values():
            g = nl_attrs(grp)
            if g.get(CTRL_ATTR_MCAST_GRP_NAME, b"").rstrip(b"\0") == b"mptcp_pm_events":
                group = struct.unpack("=I", g[CTRL_ATTR_MCAST_GRP_ID])[0]
        if group is None:
            fail("no mptcp_pm_events multicast group")
        self.family = struct.unpack("=H", top[CTRL_ATTR_FAMILY_ID][:2])[0]
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self.sock = s
        self.pending = []

    def _read(self, timeout):
        if not select.select([self.sock], [], [], max(timeout, 0))[0]:
            return
        buf = self.sock.recv(1 << 16)
        i = 0
        while i + 20 <= len(buf):
            mlen, mtype, _, _, _ = struct.unpack_from("=IHHII", buf, i)
            if mlen < 20:
                break
            if mtype == self.family:
                a = nl_attrs(buf[i + 20 : i + mlen])
                if ATTR_TOKEN in a:
                    self.pending.append((buf[i + 16], a))
            i += (mlen + 3) & ~3

    def subflow_outcomes(self, token, want, timeout):
        """Waits for `want` SUB_ESTABLISHED/SUB_CLOSED events of `token`; yields (kind, attrs)."""
        seen = 0
        deadline = time.monotonic() + timeout
        while seen < want:
            keep = []
            for ev, a in self.pending:
                if seen < want and struct.unpack("=I", a[ATTR_TOKEN][:4])[0] == token and ev in (
                    EV_SUB_ESTABLISHED,
                    EV_SUB_CLOSED,
                ):
                    seen += 1
                    yield ("established" if ev == EV_SUB_ESTABLISHED else "closed"), a
                else:
                    keep.append((ev, a))
            self.pending = keep
            if seen >= want:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"only {seen} of {want} extra subflows reached an outcome within {timeout} s")
            self._read(left)


def event_endpoints(a):
    if ATTR_SADDR4 in a:
        src = socket.inet_ntop(socket.AF_INET, a[ATTR_SADDR4][:4])
        dst = socket.inet_ntop(socket.AF_INET, a.get(ATTR_DADDR4, b"\0" * 4)[:4])
    else:
        src = socket.inet_ntop(socket.AF_INET6, a.get(ATTR_SADDR6, b"\0" * 16)[:16])
        dst = socket.inet_ntop(socket.AF_INET6, a.get(ATTR_DADDR6, b"\0" * 16)[:16])
    sport = struct.unpack("!H", a.get(ATTR_SPORT, b"\0\0")[:2])[0]
    dport = struct.unpack("!H", a.get(ATTR_DPORT, b"\0\0")[:2])[0]
    err = a.get(ATTR_ERROR, b"\0")[0]
    return src, sport, dst, dport, err


# --- server -----------------------------------------------------------------------------------


def serve_one(i, conn, peer, args):
    try:
        say("accepted", i, peer[0], peer[1], describe(conn))
        n, digest = receive_all(conn)
        say("received", i, n, digest)
        if args.send > 0:
            n, digest = send_stream(conn, args.seed, args.send)
            say("sent", i, n, digest)
        info = mptcp_info(conn)
        say("info", i, f"subflows={info[1] if info else 0}")
        conn.shutdown(socket.SHUT_WR)
        # Wait for the peer's close so the last bytes and the DATA_FIN are acknowledged.
        while conn.recv(1 << 16):
            pass
        conn.close()
        say("closed", i)
    except OSError as e:
        fail(f"server connection {i}: {e}")


def server(args):
    fam = family_of(args.host)
    s = socket.socket(fam, socket.SOCK_STREAM, 0 if args.tcp else IPPROTO_MPTCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.host, args.port))
    s.listen(128)
    say("listening", args.host, args.port)
    threads = []
    i = 0
    while args.conns == 0 or i < args.conns:
        conn, peer = s.accept()
        t = threading.Thread(target=serve_one, args=(i, conn, peer, args))
        t.start()
        threads.append(t)
        i += 1
    for t in threads:
        t.join()
    s.close()
    say("done")


# --- client -----------------------------------------------------------------------------------


def wait_subflows(pm, i, sock, args):
    info = mptcp_info(sock)
    if info is None:
        fail(f"connection {i}: not MPTCP (fell back?), cannot wait for subflows")
    established = closed = 0
    for kind, a in pm.subflow_outcomes(info[0], args.subflows, args.timeout):
        src, sport, dst, dport, err = event_endpoints(a)
        say("subflow", i, kind, src, sport, dst, dport, f"error={err}")
        if kind == "established":
            established += 1
        else:
            closed += 1
    say("subflows", i, f"established={established}", f"closed={closed}")


def client_one(i, pm, args):
    fam = family_of(args.host)
    s = socket.socket(fam, socket.SOCK_STREAM, 0 if args.tcp else IPPROTO_MPTCP)
    if args.bind:
        s.bind((args.bind, 0))
    s.settimeout(args.timeout)
    s.connect((args.host, args.port))
    local = s.getsockname()
    say("connected", i, local[0], local[1], describe(s))
    if pm and args.subflows_when == "connected":
        wait_subflows(pm, i, s, args)
    n, digest = send_stream(s, args.seed, args.bytes)
    say("sent", i, n, digest)
    if pm and args.subflows_when == "sent":
        wait_subflows(pm, i, s, args)
    if args.hold:
        say("holding", i)
        if not sys.stdin.readline():
            fail(f"connection {i}: stdin closed while holding")
    s.shutdown(socket.SHUT_WR)
    n, digest = receive_all(s)
    say("received", i, n, digest)
    info = mptcp_info(s)
    say("info", i, f"subflows={info[1] if info else 0}")
    s.close()
    say("closed", i)


def client(args):
    pm = PmEvents() if args.subflows > 0 else None
    for i in range(args.count):
        try:
            client_one(i, pm, args)
        except OSError as e:
            fail(f"client connection {i}: {e}")
    say("done")


def marker(argv):
    if len(argv) < 2:
        fail(__doc__)
    host, port = argv[0], int(argv[1])
    text = argv[2] if len(argv) > 2 else "mptun-lab-marker"
    u = socket.socket(family_of(host), socket.SOCK_DGRAM)
    u.sendto(text.encode(), (host, port))
    u.close()


def main(argv):
    if argv and argv[0] == "marker":
        marker(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--host", required=True)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--tcp", action="store_true", help="plain TCP instead of IPPROTO_MPTCP")
    sv.add_argument("--conns", type=int, default=1, help="connections to serve (0: until killed)")
    sv.add_argument("--send", type=int, default=0, help="bytes to send back on each connection")
    sv.add_argument("--seed", type=int, default=0)
    cl = sub.add_parser("client")
    cl.add_argument("--host", required=True)
    cl.add_argument("--port", type=int, required=True)
    cl.add_argument("--tcp", action="store_true", help="plain TCP instead of IPPROTO_MPTCP")
    cl.add_argument("--bind", help="local address to bind before connecting")
    cl.add_argument("--bytes", type=int, required=True)
    cl.add_argument("--seed", type=int, default=0)
    cl.add_argument("--count", type=int, default=1, help="connections, one after the other")
    cl.add_argument("--subflows", type=int, default=0, help="extra subflows to wait for (outcomes)")
    cl.add_argument("--subflows-when", choices=["connected", "sent"], default="sent")
    cl.add_argument("--hold", action="store_true", help="wait for a line on stdin before closing")
    cl.add_argument("--timeout", type=float, default=15.0, help="seconds for any one wait")
    args = p.parse_args(argv)
    if args.cmd == "server":
        server(args)
    else:
        client(args)


if __name__ == "__main__":
    main(sys.argv[1:])
