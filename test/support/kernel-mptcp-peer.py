#!/usr/bin/env python3
"""Kernel MPTCP peers for the golden-vector capture (test/support/kernel-capture.ts).

  server HOST PORT              accept one MPTCP connection, echo until EOF, close
  client HOST PORT NBYTES JOINS connect, send NBYTES, read the echo, wait until JOINS extra
                                subflows are up (path-manager netlink events, not polling),
                                then close cleanly (DATA_FIN both ways)
  marker HOST PORT TEXT         send one UDP datagram (tells the capture it has everything)

Each prints one line per step on stdout ("listening", "event N", "done"), so the test waits on
events rather than sleeping. Exits non-zero with a message on stderr on any failure.
"""
import select
import socket
import struct
import sys
import time

IPPROTO_MPTCP = 262
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
# include/uapi/linux/mptcp_pm.h
MPTCP_EVENT_ANNOUNCED = 6
MPTCP_EVENT_SUB_ESTABLISHED = 10
TIMEOUT_S = 10.0


def fail(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(2)


def attrs(buf):
    out = {}
    i = 0
    while i + 4 <= len(buf):
        alen, atype = struct.unpack_from("HH", buf, i)
        if alen < 4:
            break
        out[atype & 0x3FFF] = buf[i + 4 : i + alen]
        i += (alen + 3) & ~3
    return out


def subscribe_pm_events():
    """Joins the mptcp_pm_events multicast group before anything happens, so no event is missed."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    s.bind((0, 0))
    name = b"mptcp_pm\0"
    attr = struct.pack("HH", 4 + len(name), CTRL_ATTR_FAMILY_NAME) + name
    attr += b"\0" * (((len(attr) + 3) & ~3) - len(attr))
    body = struct.pack("BBH", CTRL_CMD_GETFAMILY, 1, 0) + attr
    s.send(struct.pack("IHHII", 16 + len(body), GENL_ID_CTRL, NLM_F_REQUEST, 1, 0) + body)
    reply = s.recv(65536)
    _, mtype, _, _, _ = struct.unpack_from("IHHII", reply, 0)
    if mtype == NLMSG_ERROR:
        fail("no mptcp_pm generic netlink family")
    top = attrs(reply[20:])
    group = None
    for grp in attrs(top.get(CTRL_ATTR_MCAST_GROUPS, b"")).values():
        g = attrs(grp)
        if g.get(CTRL_ATTR_MCAST_GRP_NAME, b"").rstrip(b"\0") == b"mptcp_pm_events":
            group = struct.unpack("I", g[CTRL_ATTR_MCAST_GRP_ID])[0]
    if group is None:
        fail("no mptcp_pm_events multicast group")
    family = struct.unpack("H", top[CTRL_ATTR_FAMILY_ID][:2])[0]
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    return s, family


def read_events(nl, family):
    """Returns the MPTCP event numbers in one netlink read."""
    buf = nl.recv(65536)
    events = []
    i = 0
    while i + 20 <= len(buf):
        mlen, mtype, _, _, _ = struct.unpack_from("IHHII", buf, i)
        if mlen < 16:
            break
        if mtype == family:
            events.append(buf[i + 16])
        i += (mlen + 3) & ~3
    return events


def server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1)
    print("listening", flush=True)
    c, _ = s.accept()
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
    s.close()
    print("done", flush=True)


def client(host, port, nbytes, joins):
    nl, family = subscribe_pm_events()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    s.connect((host, port))
    data = bytes((i * 7 + 3) & 0xFF for i in range(nbytes))
    s.sendall(data)
    got = bytearray()
    while len(got) < nbytes:
        b = s.recv(65536)
        if not b:
            fail("connection closed before the echo came back")
        got += b
    if bytes(got) != data:
        fail("echo differs from what was sent")
    print("echoed", flush=True)
    established = 0
    deadline = time.monotonic() + TIMEOUT_S
    while established < joins:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([nl], [], [], left)[0]:
            fail(f"only {established} of {joins} extra subflows came up")
        for ev in read_events(nl, family):
            print(f"event {ev}", flush=True)
            if ev == MPTCP_EVENT_SUB_ESTABLISHED:
                established += 1
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    nl.close()
    print("done", flush=True)


def marker(host, port, text):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(text.encode(), (host, port))
    u.close()


def main(argv):
    if len(argv) >= 3 and argv[0] == "server":
        server(argv[1], int(argv[2]))
    elif len(argv) >= 5 and argv[0] == "client":
        client(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif len(argv) >= 4 and argv[0] == "marker":
        marker(argv[1], int(argv[2]), argv[3])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
