#!/usr/bin/env python3
"""An HTTP/1.1 client that asks for PATH and reads the answer slowly but steadily: CHUNK bytes every INTERVAL
seconds, for SECONDS. Prints "closed after S read N" when the server closes first, else "open read N".

Usage: slow_reader.py PORT PATH SECONDS CHUNK INTERVAL
"""
import socket, sys, time

port, path, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
chunk, interval = int(sys.argv[4]), float(sys.argv[5])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET %s HTTP/1.1\r\nHost: gateway.test\r\n\r\n" % path.encode())
start = time.time()
total = 0
while time.time() - start < hold:
    time.sleep(interval)
    s.settimeout(0.5)
    try:
        data = s.recv(chunk)
    except socket.timeout:
        continue
    except ConnectionResetError:
        data = b""
    if not data:
        print("closed after %.1f s read %d" % (time.time() - start, total), flush=True)
        sys.exit(0)
    total += len(data)
print("open read %d" % total, flush=True)
