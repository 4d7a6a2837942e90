#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that sends a request's HEADERS without END_HEADERS and never the
CONTINUATION that would end the block (slowloris on a header block). Prints "goaway CODE after S" and "closed after
S" as the server ends the connection, or "open" after SECONDS.

Usage: h2_half_headers.py PORT SECONDS
"""
import socket, sys
from h2raw import PREFACE, frame, get, watch

port, hold = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
request = get(1, b"/never")
# The same HEADERS frame with END_STREAM alone: the header block stays open.
s.sendall(PREFACE + frame(4, 0, 0, b"") + request[:4] + bytes([0x1]) + request[5:])


def on_frame(kind, _, __, payload, elapsed):
    if kind == 7:
        print("goaway %d after %.1f s" % (int.from_bytes(payload[4:8], "big"), elapsed), flush=True)


watch(s, hold, on_frame)
