#!/usr/bin/env python3
"""A loopback HTTP/1.1 upstream for integration tests: records the raw bytes of every request it receives.

Usage: upstream.py PORT RECORD_FILE [--tls CERT KEY] [--jwks FILE]
Paths: /big (1 MiB body), /slow (answers after 3 s), /close (closes without answering), /early (answers
after the request head without reading the body, then closes), /stall... (waits 1 s after the head before
reading the body, so a streaming proxy has to hold the client back),
/status/NNN (answers NNN), /chunked (chunked response), /.well-known/jwks.json (the file named by --jwks or
$UPSTREAM_JWKS_FILE, re-read on every request so a test can rotate keys; 404 while it is missing);
anything else echoes method and path as JSON.
"""
import hashlib
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

# The parent may start us with signals blocked or ignored (Foundation's Process does): restore SIGTERM.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
port = int(sys.argv[1])
record_path = sys.argv[2]
tls = None
jwks_path = os.environ.get("UPSTREAM_JWKS_FILE")
options = sys.argv[3:]
while options:
    if options[0] == "--tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(options[1], options[2])
        options = options[3:]
    elif options[0] == "--jwks":
        jwks_path = options[1]
        options = options[2:]
    else:
        sys.exit("upstream.py: unknown option " + options[0])
lock = threading.Lock()


def record(raw: bytes) -> None:
    with lock, open(record_path, "ab") as f:
        f.write(len(raw).to_bytes(4, "big") + raw)


def read_request(conn, buf: bytes):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if lines[0].split(b" ")[1].startswith(b"/early"):
        return (head + b"\r\n\r\n", lines[0].decode(), b""), b""
    if lines[0].split(b" ")[1].startswith(b"/never-reads"):
        # Takes the head, then neither reads the body nor answers, until the client gives up.
        conn.settimeout(15)
        try:
            conn.recv(1, socket.MSG_PEEK)
            time.sleep(12)
        except OSError:
            pass
        return None, b""
    if lines[0].split(b" ")[1].startswith(b"/stall"):
        time.sleep(1)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    body, remaining = rest[:length], rest[length:]
    return (head + b"\r\n\r\n" + body, lines[0].decode(), body), remaining


def respond(conn, status: int, body: bytes, extra=b"", head_only=False):
    # A HEAD answer carries the Content-Length of the GET answer and no content (RFC 9110 §9.3.2).
    conn.sendall(
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Access-Control-Allow-Origin: https://upstream-said.example\r\n%s\r\n" % (status, len(body), extra)
        + (b"" if head_only else body)
    )


def serve(conn):
    buf = b""
    armed = False
    try:
        while True:
            req, buf = read_request(conn, buf)
            if req is None:
                return
            raw, line, body = req
            record(raw)
            if armed:
                # After /arm-drop: the next request on this connection is read, then the connection is closed
                # without an answer, as an upstream's idle close that crosses a request.
                return
            method, path, _ = line.split(" ", 2)
            if path == "/arm-drop":
                armed = True
                respond(conn, 200, b"{}")
            elif path == "/big":
                respond(conn, 200, b"x" * (1 << 20))
            elif path == "/huge":
                # 48 MiB, written as fast as the socket takes it: only backpressure keeps it out of memory.
                size = 48 << 20
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % size)
                chunk = b"x" * (1 << 20)
                for _ in range(48):
                    conn.sendall(chunk)
            elif path.split("?")[0] == "/slow":
                time.sleep(3)
                respond(conn, 200, b"{}")
            elif path == "/my-org/details?cutoff":
                # Promises 1000 bytes, sends 10, then closes: an answer that breaks off before its end.
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                             b'{"a":"xxx')
                return
            elif path == "/trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n")
                for _ in range(12):
                    time.sleep(0.25)
                    conn.sendall(b"x")
            elif path == "/stall-mid":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc")
                time.sleep(4)
                return
            elif path == "/close":
                return
            elif path.startswith("/early"):
                respond(conn, 200, b'{"early":true}', b"Connection: close\r\n")
                return
            elif path == "/badchunk":
                # A broken upstream: a chunked answer whose first chunk size is not hex, in the same write.
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
                return
            elif path == "/hint-flood":
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 40)
                respond(conn, 200, b"{}")
            elif path == "/bigcl":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc")
                return
            elif path == "/hints":
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                respond(conn, 200, b'{"hinted":true}')
            elif path == "/latin1":
                # obs-text in a field value (RFC 9110 §5.5): a Latin-1 filename, as old servers send it.
                respond(conn, 200, b"{}", b'Content-Disposition: attachment; filename="caf\xe9.txt"\r\n')
            elif path == "/continue":
                # A 100 nobody asked for (RFC 9110 §15.2: a proxy passes it on), then the answer.
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                respond(conn, 200, b'{"continued":true}')
            elif path == "/headbody":
                # A broken upstream: a body after a HEAD answer, shaped like a response of its own.
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 59\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\nX-Poison: 1\r\nContent-Length: 8\r\n\r\npoisoned"
                )
            elif path == "/my-org/details?vary":
                respond(conn, 200, b"{}", b"Vary: Accept-Encoding\r\n")
            elif path == "/my-org/domains/dom_missing":
                # The tenant's problem body for an id it does not know (endpoints.md, A0E-404-0002).
                respond(
                    conn,
                    404,
                    b'{"type":"https://auth0.com/api-errors#A0E-404-0002","status":404,'
                    b'"title":"Resource Not Found","detail":"No domain with id dom_missing."}',
                )
            elif path.startswith("/status/"):
                respond(conn, int(path.split("/")[2]), b'{"status":"set"}')
            elif path == "/.well-known/jwks.json" and jwks_path:
                try:
                    with open(jwks_path, "rb") as f:
                        respond(conn, 200, f.read())
                except OSError:
                    respond(conn, 404, b'{"error":"no jwks"}')
            elif path == "/chunked":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            else:
                payload = json.dumps(
                    {
                        "method": method,
                        "path": path,
                        "body_length": len(body),
                        "body_sha256": hashlib.sha256(body).hexdigest(),
                    }
                ).encode()
                respond(conn, 200, payload, head_only=method == "HEAD")
    except (ConnectionError, ssl.SSLError, OSError):
        return
    finally:
        conn.close()


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(512)
while True:
    c, _ = listener.accept()
    if tls:
        try:
            c = tls.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            c.close()
            continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
