#!/usr/bin/env python3
"""A client that uploads a body of LENGTH bytes, PIECE bytes (default 1) every INTERVAL seconds, for at most SECONDS,
and prints what the server did: "status CODE after S" for its answer, then "closed after S" or "reset after S" if
it ended the connection or the stream, "open" if nothing happened. MODE: h1 (plain HTTP/1.1 with Content-Length),
h1c (HTTP/1.1, chunked), h2 (h2c with prior knowledge and content-length), h2n (h2c, no content-length).

Usage: trickle_upload.py PORT MODE LENGTH INTERVAL SECONDS [PIECE]
"""
import socket, sys, time
from h2raw import PREFACE, frame, lit, split_frames

port, mode, length = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
interval, hold = float(sys.argv[4]), float(sys.argv[5])
size = int(sys.argv[6]) if len(sys.argv) > 6 else 1
s = socket.create_connection(("127.0.0.1", port))
if mode in ("h1", "h1c"):
    framing = b"Content-Length: %d" % length if mode == "h1" else b"Transfer-Encoding: chunked"
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\n" + framing + b"\r\n\r\n")
    def piece(data, last):
        if mode == "h1":
            return data
        return b"%x\r\n" % len(data) + data + b"\r\n" + (b"0\r\n\r\n" if last else b"")
else:
    from hpack import Decoder
    decoder = Decoder()
    block = (lit(b":method", b"POST") + lit(b":scheme", b"http") + lit(b":path", b"/upload")
             + lit(b":authority", b"gateway.test"))
    if mode == "h2":
        block += lit(b"content-length", str(length).encode())
    s.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4, 1, block))
    def piece(data, last):
        return frame(0, 0x1 if last else 0, 1, data)
start = time.time()
s.settimeout(0.05)
buffer = b""
sent = 0
next_piece = start
done = None
reported = False
while time.time() - start < hold and done is None:
    now = time.time()
    if sent < length and now >= next_piece:
        n = min(size, length - sent)
        try:
            s.sendall(piece(b"a" * n, sent + n == length))
        except OSError:
            done = "closed"
            break
        sent += n
        next_piece = now + interval
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
    if mode in ("h1", "h1c"):
        if buffer.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in buffer and not reported:
            reported = True
            print("status", buffer[9:12].decode(), elapsed, flush=True)
            if sent == length:
                done = "answered"
        continue
    frames, buffer = split_frames(buffer)
    for kind, flags, sid, payload in frames:
        if kind == 1 and sid == 1:
            status = dict(decoder.decode(payload)).get(":status")
            print("status", status, elapsed, flush=True)
        elif kind == 0 and sid == 1 and flags & 1 and sent == length:
            done = "ended"
        elif kind == 3 and sid == 1:
            done = "reset"
        elif kind == 7:
            done = "closed"
if done:
    print(done, "after %.1f s" % (time.time() - start), "sent", sent, flush=True)
else:
    print("open", "sent", sent, flush=True)
