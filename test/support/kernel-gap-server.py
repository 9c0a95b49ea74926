#!/usr/bin/env python3
"""A kernel MPTCP server that measures delivery gaps, for test/mptcp-failover-kernel.test.ts.

  kernel-gap-server.py --host H --port P [--timeout SEC]
      Listens with IPPROTO_MPTCP, accepts one connection, receives until EOF, closes.

One line per step on stdout:
  listening HOST PORT
  accepted PEERHOST PEERPORT
  gap 0 MS END      each time new bytes arrive 50 ms or more after the previous ones
                    (MS: the gap; END: wall clock ms when it ended, as Date.now()); 0 is the
                    connection, as mptcp-user-peer.ts prints it (failover-lab.ts reads both)
  result {JSON}     bytes, sha256, maxGapMs
Exits non-zero with a message on stderr on any failure (a timeout included).
"""
import argparse
import hashlib
import json
import socket
import sys
import time

IPPROTO_MPTCP = 262


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', required=True)
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--timeout', type=float, default=60.0)
    a = ap.parse_args()
    family = socket.AF_INET6 if ':' in a.host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, a.port))
    srv.listen(1)
    srv.settimeout(a.timeout)
    print('listening', a.host, a.port, flush=True)
    conn, peer = srv.accept()
    # The listener stays: the kernel takes MP_JOIN SYNs through it (closed, they draw an RST).
    conn.settimeout(a.timeout)
    print('accepted', peer[0], peer[1], flush=True)
    h = hashlib.sha256()
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    total = 0
    last = None
    max_gap = 0.0
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        now = time.monotonic()
        if last is not None:
            gap = (now - last) * 1000
            max_gap = max(max_gap, gap)
            if gap >= 50:
                print('gap', 0, round(gap), int(time.time() * 1000), flush=True)
        last = now
        h.update(view[:n])
        total += n
    conn.close()
    srv.close()
    print('result', json.dumps({'bytes': total, 'sha256': h.hexdigest(), 'maxGapMs': max_gap}), flush=True)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as e:  # a timeout or a socket error: said, and a failing status
        print(f'kernel-gap-server: {e!r}', file=sys.stderr, flush=True)
        sys.exit(2)
