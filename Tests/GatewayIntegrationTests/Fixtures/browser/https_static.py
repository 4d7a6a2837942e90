#!/usr/bin/env python3
"""A loopback HTTPS static file server for the browser tests: the page's origin (scheme, host, port) must be real.

Usage: https_static.py PORT DIRECTORY CERT KEY
Serves DIRECTORY on 127.0.0.1:PORT over TLS (HTTP/1.1), whatever Host the browser sends, with no caching.
"""
import functools
import http.server
import os
import signal
import ssl
import sys

# The parent may start us with signals blocked or ignored (Foundation's Process does): restore SIGTERM.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

port, directory, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("page-server: " + (fmt % args) + "\n")


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=directory))
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"serving {directory} on https://127.0.0.1:{port}", flush=True)
server.serve_forever()
