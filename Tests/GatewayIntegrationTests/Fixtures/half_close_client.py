#!/usr/bin/env python3
"""Sends requests, then finishes sending, then reads every answer: a client that half-closes after its requests.

    half_close_client.py PORT MODE HOST REQUEST...

MODE: plain (a TCP FIN), tls-fin (TLS, then a TCP FIN without close_notify) or tls-notify (TLS, then close_notify:
the TLS half-close of RFC 8446 §6.1, while still reading). Each REQUEST is a path for a GET, or `POST:PATH:N:M`
for a POST that declares N body bytes and sends M of them. Prints what arrived, then `closed` when the gateway
closed the connection, or `timeout` when it did not within 10 s.
"""
import socket
import ssl
import sys

port, mode, host = int(sys.argv[1]), sys.argv[2], sys.argv[3]
wire = b""
for spec in sys.argv[4:]:
    if spec.startswith("POST:"):
        _, path, declared, sent = spec.split(":")
        wire += (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n").encode()
        wire += b"b" * int(sent)
    else:
        wire += f"GET {spec} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

sock = socket.create_connection(("127.0.0.1", port), timeout=10)
received = b""
outcome = "closed"
try:
    if mode == "plain":
        sock.sendall(wire)
        sock.shutdown(socket.SHUT_WR)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    else:
        # A memory-BIO TLS client, so that close_notify can be sent while reading goes on.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=host)

        def pump_out():
            data = outgoing.read()
            if data:
                sock.sendall(data)

        def pump_in():
            data = sock.recv(65536)
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()
            return bool(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_out()
                if not pump_in():
                    raise SystemExit("handshake cut off")
        pump_out()
        tls.write(wire)
        pump_out()
        if mode == "tls-notify":
            try:
                tls.unwrap()
            except ssl.SSLWantReadError:
                pass
            pump_out()
        else:
            sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                data = tls.read(65536)
                if not data:
                    break
                received += data
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            except ssl.SSLError as error:
                # The gateway's close_notify arriving after ours: the read side ends here.
                if "SHUTDOWN" in str(error).upper():
                    break
                raise
            if not pump_in():
                break
except socket.timeout:
    outcome = "timeout"
sys.stdout.write(received.decode("latin-1"))
print()
print(outcome)
