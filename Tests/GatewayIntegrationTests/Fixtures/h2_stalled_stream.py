#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that asks for PATH with a stream window of 0 and never opens it, but
PINGs every 200 ms: the connection is alive, the stream is stalled. Prints "reset SID CODE after S" when the server
resets the stream, "goaway CODE after S" if it ends the connection, "closed after S", or "open" after SECONDS.

Usage: h2_stalled_stream.py PORT PATH SECONDS
"""
import socket, struct, sys
from h2raw import PREFACE, frame, get, watch

port, path, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, 0)) + get(1, path.encode()))
pings = [0.0]


def ping(elapsed):
    if elapsed >= pings[0]:
        s.sendall(frame(6, 0, 0, b"12345678"))
        pings[0] += 0.2


def on_frame(kind, _, sid, payload, elapsed):
    if kind == 3:
        print("reset %d %d after %.1f s" % (sid, int.from_bytes(payload[:4], "big"), elapsed), flush=True)
    elif kind == 7:
        print("goaway %d after %.1f s" % (int.from_bytes(payload[4:8], "big"), elapsed), flush=True)


watch(s, hold, on_frame, ping)
