"""Raw HTTP/2 frames for the small fixture clients (h2conformance.py has the full set)."""
import socket
import struct
import time

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


def split_frames(buffer):
    """The complete frames at the start of `buffer` as (type, flags, stream id, payload), and the bytes left."""
    frames = []
    while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
        n = int.from_bytes(buffer[:3], "big")
        frames.append((buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF, buffer[9:9 + n]))
        buffer = buffer[9 + n:]
    return frames, buffer


def receive(sock):
    """Bytes from `sock`: None when its timeout passed first, b"" once the peer closed or reset the connection."""
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""


def watch(sock, seconds, on_frame, before_read=None):
    """Reads frames from `sock` for up to `seconds`, calling on_frame(type, flags, stream id, payload, elapsed) for
    each and before_read(elapsed) before each read; prints "closed after S" if the peer closes, else "open"."""
    start = time.time()
    sock.settimeout(0.05)
    buffer = b""
    while time.time() - start < seconds:
        if before_read:
            before_read(time.time() - start)
        data = receive(sock)
        if data is None:
            continue
        if not data:
            print("closed after %.1f s" % (time.time() - start), flush=True)
            return
        frames, buffer = split_frames(buffer + data)
        for kind, flags, sid, payload in frames:
            on_frame(kind, flags, sid, payload, time.time() - start)
    print("open", flush=True)
