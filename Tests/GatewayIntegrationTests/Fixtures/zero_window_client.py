#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that asks for one path with a stream window of 0 and never opens it:
the server can send no DATA, so whatever it reads from its upstream must wait there, not in its memory.

Usage: zero_window_client.py PORT PATH SECONDS
"""
import socket, struct, sys, time
from h2raw import PREFACE, frame, get
port, path, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
# SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send no DATA until the client opens the window (it never does).
s.sendall(PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, 0)))
s.sendall(get(1, path.encode()))
start = time.time()
end = start + hold
s.settimeout(0.2)
received = b""
closed = False
while time.time() < end:
    try:
        data = s.recv(65536)
        if not data:
            closed = True
            break
        received += data
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
        break
# What happened, for a test to read: whether the server closed the connection, when, and its GOAWAY's code.
goaway = None
i = 0
while i + 9 <= len(received):
    length = int.from_bytes(received[i:i + 3], "big")
    if received[i + 3] == 7 and i + 9 + 8 <= len(received):
        goaway = int.from_bytes(received[i + 13:i + 17], "big")
    i += 9 + length
print("closed" if closed else "open", "after %.1f s" % (time.time() - start), "goaway", goaway, flush=True)
