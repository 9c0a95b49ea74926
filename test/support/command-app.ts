/**
 * A plain TCP app (python) for the client tests: `send N` on stdin sends N random bytes and
 * prints `sent TOTAL`; `fin` shuts down its side, reads to the end and prints
 * `done SENT SHA256 RECEIVED SHA256`.
 */
export const APP = `
import hashlib, os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
h = hashlib.sha256(); total = 0
print("connected", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "send":
        data = os.urandom(int(cmd[1]))
        s.sendall(data); h.update(data); total += len(data)
        print("sent", total, flush=True)
    elif cmd == ["fin"]:
        break
s.shutdown(socket.SHUT_WR)
r = hashlib.sha256(); got = 0
while True:
    d = s.recv(65536)
    if not d:
        break
    r.update(d); got += len(d)
print("done", total, h.hexdigest(), got, r.hexdigest(), flush=True)
`;
