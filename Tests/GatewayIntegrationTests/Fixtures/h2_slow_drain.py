#!/usr/bin/env python3
"""An HTTP/2 client (h2c, prior knowledge) that drains one answer slowly but steadily: its stream window starts at 0
and grows by STEP bytes every 200 ms. The whole answer is already with the gateway; only this client's pace holds
it. Prints "data N end E" when the stream ends or after SECONDS, with "goaway CODE" or "closed" first if the server
ends the connection.

Usage: h2_slow_drain.py PORT PATH STEP SECONDS
"""
import struct, sys, socket, time
from h2raw import PREFACE, frame, get, split_frames, receive

port, path, step, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, 0)) + get(1, path.encode()))
s.settimeout(0.05)
start, next_grant, buffer, data, ended = time.time(), 0.0, b"", 0, False
while time.time() - start < hold and not ended:
    elapsed = time.time() - start
    if elapsed >= next_grant:
        s.sendall(frame(8, 0, 1, struct.pack(">I", step)))
        next_grant += 0.2
    chunk = receive(s)
    if chunk is None:
        continue
    if not chunk:
        print("closed after %.1f s" % elapsed, flush=True)
        break
    frames, buffer = split_frames(buffer + chunk)
    for kind, flags, sid, payload in frames:
        if kind == 0 and sid == 1:
            data += len(payload)
            ended = ended or bool(flags & 1)
        elif kind == 7:
            print("goaway %d after %.1f s" % (int.from_bytes(payload[4:8], "big"), elapsed), flush=True)
print("data %d end %s" % (data, ended), flush=True)
