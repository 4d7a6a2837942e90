#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that opens no stream and only sends a PING every half second: an idle
connection that tries to stay open. Prints "closed after S" when the server closes it, or "open" after SECONDS.

Usage: ping_keeper.py PORT SECONDS
"""
import socket, sys, time
from h2raw import PREFACE, frame

port, seconds = int(sys.argv[1]), float(sys.argv[2])

s = socket.create_connection(("127.0.0.1", port))
s.sendall(PREFACE + frame(4, 0, 0, b""))
start = time.time()
next_ping = start
s.settimeout(0.1)
while time.time() - start < seconds:
    if time.time() >= next_ping:
        try:
            s.sendall(frame(6, 0, 0, b"keepopen"))
        except OSError:
            print("closed after %.1f" % (time.time() - start))
            sys.exit(0)
        next_ping += 0.5
    try:
        if not s.recv(65536):
            print("closed after %.1f" % (time.time() - start))
            sys.exit(0)
    except socket.timeout:
        pass
    except OSError:
        print("closed after %.1f" % (time.time() - start))
        sys.exit(0)
print("open")
