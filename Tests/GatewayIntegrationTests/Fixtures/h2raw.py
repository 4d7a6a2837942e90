"""Raw HTTP/2 frames for the small fixture clients (h2conformance.py has the full set)."""
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def lit(name, value):
    """A literal header field without indexing, new name (RFC 7541 §6.2.2)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def get(stream, path, authority=b"login.acme.test"):
    """A HEADERS frame (END_STREAM, END_HEADERS) asking for `path` over h2c."""
    block = lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":path", path) + lit(b":authority", authority)
    return frame(1, 0x5, stream, block)
