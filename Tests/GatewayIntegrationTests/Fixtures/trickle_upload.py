#!/usr/bin/env python3
"""A client that uploads a body of LENGTH bytes one byte every INTERVAL seconds (plain HTTP/1.1, or h2c with prior
knowledge), for at most SECONDS, and prints what the server did: "status CODE after S" for its answer, then
"closed after S" or "reset after S" if it ended the connection or the stream. "open" if nothing happened.

Usage: trickle_upload.py PORT h1|h2 LENGTH INTERVAL SECONDS
"""
import socket, struct, sys, time
from h2raw import PREFACE, frame, lit, split_frames

port, mode, length = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
interval, hold = float(sys.argv[4]), float(sys.argv[5])
s = socket.create_connection(("127.0.0.1", port))
if mode == "h1":
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: %d\r\n\r\n" % length)
    def piece(byte):
        return byte
else:
    from hpack import Decoder
    decoder = Decoder()
    block = (lit(b":method", b"POST") + lit(b":scheme", b"http") + lit(b":path", b"/upload")
             + lit(b":authority", b"gateway.test") + lit(b"content-length", str(length).encode()))
    s.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4, 1, block))
    def piece(byte):
        return frame(0, 0, 1, byte)
start = time.time()
s.settimeout(0.05)
buffer = b""
sent = 0
next_byte = start
done = None
while time.time() - start < hold and done is None:
    now = time.time()
    if sent < length and now >= next_byte:
        try:
            s.sendall(piece(b"a"))
        except OSError:
            done = "closed"
            break
        sent += 1
        next_byte = now + interval
    try:
        data = s.recv(65536)
        if not data:
            done = "closed"
        buffer += data
    except socket.timeout:
        pass
    except ConnectionResetError:
        done = "closed"
    elapsed = "after %.1f s" % (time.time() - start)
    if mode == "h1":
        if buffer.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in buffer and not getattr(sys, "reported", False):
            sys.reported = True
            print("status", buffer[9:12].decode(), elapsed, flush=True)
        continue
    frames, buffer = split_frames(buffer)
    for kind, _, sid, payload in frames:
        if kind == 1 and sid == 1:
            status = dict(decoder.decode(payload)).get(":status")
            print("status", status, elapsed, flush=True)
        elif kind == 3 and sid == 1:
            done = "reset"
        elif kind == 7:
            done = "closed"
if done:
    print(done, "after %.1f s" % (time.time() - start), "sent", sent, flush=True)
else:
    print("open", "sent", sent, flush=True)
