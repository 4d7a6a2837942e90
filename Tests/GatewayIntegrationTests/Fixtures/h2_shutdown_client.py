#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that watches a graceful shutdown: it asks for PATH (slow) on stream 1,
prints "ready", and waits. When the first GOAWAY comes it sends a second request (/after-notice) on stream 3, as a
client whose request crossed the notice would, then reads until the server closes.

Prints one line per event, for a test to read: "goaway LAST CODE", "headers SID STATUS-BYTE", "end SID", "closed".

Usage: h2_shutdown_client.py PORT PATH SECONDS
"""
import socket, struct, sys, time
from h2raw import PREFACE, frame, get, receive, split_frames
port, path, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(PREFACE + frame(4, 0, 0, b"") + get(1, path.encode()))
print("ready", flush=True)
end = time.time() + hold
s.settimeout(0.2)
buffer = b""
sent_second = False
while time.time() < end:
    data = receive(s)
    if data is None:
        continue
    if not data:
        print("closed", flush=True)
        break
    frames, buffer = split_frames(buffer + data)
    for kind, flags, sid, payload in frames:
        length = len(payload)
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0, b""))
        elif kind == 7:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            print("goaway", last, int.from_bytes(payload[4:8], "big"), flush=True)
            if not sent_second:
                sent_second = True
                s.sendall(get(3, b"/after-notice"))
        elif kind == 1:
            # nghttp2 sends a status of the static table as one indexed byte (0x88 is 200).
            print("headers", sid, hex(payload[0]) if payload else None, flush=True)
            if flags & 1:
                print("end", sid, flush=True)
        elif kind == 0:
            if length:
                s.sendall(frame(8, 0, 0, struct.pack(">I", length)) + frame(8, 0, sid, struct.pack(">I", length)))
            if flags & 1:
                print("end", sid, flush=True)
        elif kind == 3:
            print("reset", sid, int.from_bytes(payload[:4], "big"), flush=True)
