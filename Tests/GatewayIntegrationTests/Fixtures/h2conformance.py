#!/usr/bin/env python3
"""h2spec-equivalent HTTP/2 server conformance checks (h2c, prior knowledge).

Raw sockets; frames are built by hand (so deliberately invalid ones are possible), header blocks with
hand-rolled HPACK (plus hpack's Huffman tables); responses are decoded with hpack.Decoder.

Case ids follow h2spec 2.x: http2/<RFC 7540 section>/<n>, hpack/<RFC 7541 section>/<n>, generic/<n>/<n>;
extra cases not in h2spec are prefixed with "extra/".

Verdicts: PASS, FAIL, SKIP, ALT (behaviour differs from h2spec's RFC 7540 expectation but is allowed by
RFC 9113, which obsoletes RFC 7540; the section is named). Exit status 1 when any case FAILs.

Usage: python3 h2conformance.py --port 47201 [--host 127.0.0.1] [--authority acme.test] [--path /]
                                [--timeout 2] [--only PREFIX] [-v]
"""
import argparse
import os
import socket
import struct
import sys
import time

from hpack import Decoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FNAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING",
          7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
ES, ACK, EH, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, \
    REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, \
    HTTP_1_1_REQUIRED = range(14)
ENAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR", 4: "SETTINGS_TIMEOUT",
          5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
          10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, \
    S_MAX_HEADER_LIST_SIZE = range(1, 7)

ARGS = None
OPEN = []  # connections of the running case, closed after it
VIOLATIONS = []  # server-side sending errors seen during the running case
HUFF = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def ename(c):
    return ENAMES.get(c, "0x%x" % c)


# ---------------------------------------------------------------- frame and HPACK building

def frame(ftype, flags, sid, payload=b"", length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings_frame(pairs=(), flags=0, sid=0):
    return frame(SETTINGS, flags, sid, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping_frame(data=b"h2spec\x00\x00", flags=0, sid=0):
    return frame(PING, flags, sid, data)


def rst_frame(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def wu_frame(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def priority_frame(sid, dep=0, weight=15, excl=False):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", dep | (0x80000000 if excl else 0), weight))


def hint(value, prefix_bits, first=0):
    """HPACK integer (RFC 7541 §5.1) with the first octet's high bits set to `first`."""
    maxp = (1 << prefix_bits) - 1
    if value < maxp:
        return bytes([first | value])
    out = [first | maxp]
    value -= maxp
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hstr(s, huff=False):
    b = s.encode() if isinstance(s, str) else s
    if huff:
        hb = HUFF.encode(b)
        return hint(len(hb), 7, 0x80) + hb
    return hint(len(b), 7) + b


def lit(name, value, kind="without", index=None, huff=False):
    """Literal header field: kind = incremental | without | never; index = static/dynamic name index."""
    first, bits = {"incremental": (0x40, 6), "without": (0x00, 4), "never": (0x10, 4)}[kind]
    if index is not None:
        return hint(index, bits, first) + hstr(value, huff)
    return bytes([first]) + hstr(name, huff) + hstr(value, huff)


def block(hdrs):
    """Stateless header block: every field a literal without indexing with a literal name."""
    return b"".join(lit(n, v) for n, v in hdrs)


def req(method="GET", extra=(), path=None, authority=None):
    return [(":method", method), (":scheme", "http"), (":path", ARGS.path if path is None else path),
            (":authority", authority or ARGS.authority)] + list(extra)


def headers_frame(sid, hdrs=None, flags=EH | ES, raw=None):
    return frame(HEADERS, flags, sid, block(hdrs if hdrs is not None else req()) if raw is None else raw)


def post_headers(sid, extra=(), flags=EH):
    return headers_frame(sid, req("POST", extra), flags)


# ---------------------------------------------------------------- connection

class Ev:
    def __init__(self, kind, ftype=None, flags=0, sid=0, payload=b""):
        self.kind, self.type, self.flags, self.sid, self.payload = kind, ftype, flags, sid, payload
        self.headers = None
        self.code = None
        self.last = None
        self.datalen = 0

    def __repr__(self):
        if self.kind != "frame":
            return self.kind
        t = FNAMES.get(self.type, "UNKNOWN(0x%x)" % self.type)
        if self.type == GOAWAY:
            dbg = self.payload[8:].decode("latin-1")
            return "GOAWAY(last=%d, %s%s)" % (self.last, ename(self.code), (", '%s'" % dbg) if dbg else "")
        if self.type == RST_STREAM:
            return "RST_STREAM(sid=%d, %s)" % (self.sid, ename(self.code))
        if self.type == HEADERS:
            st = dict(self.headers or []).get(":status", "?")
            return "HEADERS(sid=%d, :status=%s%s)" % (self.sid, st, ", ES" if self.flags & ES else "")
        if self.type == DATA:
            return "DATA(sid=%d, len=%d%s)" % (self.sid, self.datalen, ", ES" if self.flags & ES else "")
        if self.type == SETTINGS:
            return "SETTINGS(ACK)" if self.flags & ACK else "SETTINGS"
        if self.type == PING:
            return "PING(%s)" % ("ACK" if self.flags & ACK else "")
        if self.type == WINDOW_UPDATE:
            return "WINDOW_UPDATE(sid=%d, %d)" % (self.sid, struct.unpack(">I", self.payload[:4])[0])
        return "%s(sid=%d)" % (t, self.sid)


class Conn:
    def __init__(self, settings=(), preface=PREFACE, handshake=True, port=None):
        self.sock = socket.create_connection((ARGS.host, port or ARGS.port), timeout=ARGS.timeout)
        OPEN.append(self)
        self.buf = b""
        self.closed = False
        self.dec = Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.hblock = None  # (sid, flags, bytes) while a response header block is being continued
        self.server_settings = {}
        self.send_win_conn = 65535  # the server's receive window for the connection (its WINDOW_UPDATEs on 0)
        self.send_win_stream = {}   # increments the server granted per stream
        self.seen = []
        self.send(preface + (settings_frame(settings) if preface == PREFACE else b""))
        if handshake:
            self.handshake()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the server may already have closed; reading tells

    def handshake(self):
        got_settings = got_ack = False
        deadline = time.time() + ARGS.timeout
        while not (got_settings and got_ack):
            ev = self.read(deadline)
            if ev.kind != "frame":
                raise RuntimeError("handshake: %s after %s" % (ev, self.seen))
            if ev.type == SETTINGS:
                if ev.flags & ACK:
                    got_ack = True
                else:
                    got_settings = True
            elif ev.type == GOAWAY:
                raise RuntimeError("handshake: %r" % ev)
        self.seen = []

    def _recv(self, deadline):
        remaining = deadline - time.time()
        if remaining <= 0:
            return None
        self.sock.settimeout(remaining)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""
        return d

    def read(self, deadline):
        """Next event: a frame, 'closed', 'timeout', or 'http1' (an HTTP/1.x answer)."""
        if self.closed:
            return Ev("closed")
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if self.buf.startswith(b"HTTP/1."):
                ev = Ev("http1: " + self.buf.split(b"\r\n")[0].decode("latin-1"))
                self.buf = b""
                return ev
            d = self._recv(deadline)
            if d is None:
                return Ev("timeout")
            if d == b"":
                self.closed = True
                if self.buf.startswith(b"HTTP/1."):
                    return Ev("http1: " + self.buf.split(b"\r\n")[0].decode("latin-1"))
                return Ev("closed")
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        if n > 16384:  # the client never raises SETTINGS_MAX_FRAME_SIZE above its initial value
            VIOLATIONS.append("server sent a %d-octet frame of type %d above SETTINGS_MAX_FRAME_SIZE 16384 "
                              "(RFC 9113 §4.2)" % (n, self.buf[3]))
        ev = Ev("frame", self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        self._interpret(ev)
        self.seen.append(ev)
        return ev

    def _interpret(self, ev):
        p = ev.payload
        if ev.type == GOAWAY and len(p) >= 8:
            ev.last, ev.code = struct.unpack(">II", p[:8])
            ev.last &= 0x7FFFFFFF
        elif ev.type == RST_STREAM and len(p) >= 4:
            ev.code = struct.unpack(">I", p[:4])[0]
        elif ev.type == SETTINGS and not ev.flags & ACK:
            for i in range(0, len(p) - len(p) % 6, 6):
                k, v = struct.unpack(">HI", p[i:i + 6])
                self.server_settings[k] = v
            self.send(settings_frame(flags=ACK))
        elif ev.type == WINDOW_UPDATE and len(p) >= 4:
            inc = struct.unpack(">I", p[:4])[0] & 0x7FFFFFFF
            if ev.sid == 0:
                self.send_win_conn += inc
            else:
                self.send_win_stream[ev.sid] = self.send_win_stream.get(ev.sid, 0) + inc
        elif ev.type == DATA:
            pad = p[0] + 1 if ev.flags & PADDED and p else 0
            ev.datalen = len(p) - pad
        elif ev.type in (HEADERS, CONTINUATION):
            if ev.type == HEADERS:
                off, end = 0, len(p)
                if ev.flags & PADDED:
                    off, end = 1, len(p) - p[0]
                if ev.flags & PRIO:
                    off += 5
                self.hblock = (ev.sid, ev.flags, p[off:end])
            elif self.hblock:
                self.hblock = (self.hblock[0], self.hblock[1], self.hblock[2] + p)
            if ev.flags & EH and self.hblock:
                try:
                    ev.headers = self.dec.decode(self.hblock[2])
                except Exception as e:  # noqa
                    ev.headers = [(":status", "<undecodable: %s>" % e)]
                ev.type, ev.sid, ev.flags = HEADERS, self.hblock[0], self.hblock[1] | EH
                self.hblock = None
                self._check_response_fields(ev)

    def _check_response_fields(self, ev):
        """RFC 9113 §8.1, §8.2, §8.3.2 rules for what the server generates."""
        h = ev.headers or []
        bad = []
        final = getattr(self, "final_seen", set())
        self.final_seen = final
        status = [v for n, v in h if n == ":status"]
        if ev.sid in final:  # trailers
            if not ev.flags & ES:
                bad.append("HEADERS after the final response without END_STREAM (§8.1)")
            if any(n.startswith(":") for n, v in h):
                bad.append("pseudo-header in trailers (§8.1)")
        else:
            if len(status) != 1 or not (len(status[0]) == 3 and status[0].isdigit()):
                bad.append("response without exactly one valid :status (§8.3.2): %r" % status)
            elif status[0].startswith("1"):
                if ev.flags & ES:
                    bad.append("interim %s response with END_STREAM (§8.1)" % status[0])
            else:
                final.add(ev.sid)
            if status and status[0] == "204" and any(n == "content-length" for n, v in h):
                bad.append("content-length in a 204 response (RFC 9110 §8.6: a server MUST NOT send it)")
        seen_regular = False
        for n, v in h:
            if n.startswith(":"):
                if seen_regular:
                    bad.append("pseudo-header %s after a regular field (§8.3)" % n)
                if n != ":status":
                    bad.append("pseudo-header %s in a response (§8.3)" % n)
                continue
            seen_regular = True
            if any(ch <= " " or "A" <= ch <= "Z" or ch >= "\x7f" or ch == ":" for ch in n):
                bad.append("invalid field name %r (§8.2.1)" % n)
            if any(ch in v for ch in "\x00\r\n") or v[:1] in (" ", "\t") or v[-1:] in (" ", "\t"):
                bad.append("invalid field value for %s: %r (§8.2.1)" % (n, v))
            if n in ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"):
                bad.append("connection-specific field %s: %s in a response (§8.2.2)" % (n, v))
        for b in bad:
            VIOLATIONS.append("stream %d: %s" % (ev.sid, b))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- verdicts

class Result(Exception):
    def __init__(self, verdict, detail=""):
        super().__init__(detail)
        self.verdict, self.detail = verdict, detail


def fail(c, why):
    raise Result("FAIL", "%s; received: %s" % (why, c.seen[-8:] if c.seen else "nothing"))


def deadline():
    return time.time() + ARGS.timeout


def expect_conn_error(c, *codes):
    """h2spec VerifyConnectionError: GOAWAY with one of codes, or the connection closing."""
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind == "timeout":
            fail(c, "expected GOAWAY(%s) or close, got timeout" % "|".join(map(ename, codes)))
        if ev.kind.startswith("http1"):
            continue
        if ev.type == GOAWAY:
            if ev.code in codes:
                return repr(ev)
            fail(c, "expected GOAWAY(%s)" % "|".join(map(ename, codes)))


def expect_stream_error(c, sid, *codes, alt=None):
    """h2spec VerifyStreamError: RST_STREAM with one of codes, or a connection error with one, or close.
    alt: (section, note) -- on timeout, probe with PING; if the connection is alive, return ALT."""
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind == "timeout":
            if alt:
                probe_alive(c, "expected RST_STREAM/GOAWAY(%s), got timeout" % "|".join(map(ename, codes)))
                raise Result("ALT", "frame ignored, connection alive (PING answered); %s" % alt)
            fail(c, "expected RST_STREAM/GOAWAY(%s), got timeout" % "|".join(map(ename, codes)))
        if ev.kind != "frame":
            continue
        if ev.type == GOAWAY:
            if ev.code in codes:
                return repr(ev)
            fail(c, "expected RST_STREAM/GOAWAY(%s)" % "|".join(map(ename, codes)))
        if ev.type == RST_STREAM and (sid is None or ev.sid == sid):
            if ev.code in codes:
                return repr(ev)
            fail(c, "expected RST_STREAM(%s)" % "|".join(map(ename, codes)))


def probe_alive(c, why):
    data = os.urandom(8)
    c.send(ping_frame(data))
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, why + " and then %s" % ev)
        if ev.type == GOAWAY:
            fail(c, why)
        if ev.type == PING and ev.flags & ACK and ev.payload == data:
            return


def expect_ping_ack(c, data=None, probe=True):
    """Send a PING (unless probe=False) and wait for its ACK: the server ignored what came before."""
    data = data or os.urandom(8)
    if probe:
        c.send(ping_frame(data))
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "expected PING ACK, got %s" % ev)
        if ev.type == GOAWAY:
            fail(c, "expected PING ACK")
        if ev.type == PING and ev.flags & ACK:
            if ev.payload == data:
                return "PING ACK"
            fail(c, "PING ACK with other data %r" % ev.payload)


def expect_headers(c, sid):
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "expected HEADERS on stream %d, got %s" % (sid, ev))
        if ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == sid):
            fail(c, "expected HEADERS on stream %d" % sid)
        if ev.type == HEADERS and ev.sid == sid:
            st = dict(ev.headers or []).get(":status", "")
            if st.startswith("1"):
                continue
            return ":status %s" % st


def expect_malformed_answer(c, sid):
    """A malformed request: RST_STREAM(PROTOCOL_ERROR) (optionally after a 4xx answer, RFC 9113 §8.1.1), or a
    connection error PROTOCOL_ERROR."""
    dl = deadline()
    status = None
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind != "frame":
            if status and status.startswith("4"):
                return ":status %s (answered, stream ended)" % status
            fail(c, "expected RST_STREAM(PROTOCOL_ERROR) or a 4xx, got %s" % ev)
        if ev.type == GOAWAY:
            if ev.code == PROTOCOL_ERROR:
                return repr(ev)
            fail(c, "expected PROTOCOL_ERROR")
        if ev.type == RST_STREAM and ev.sid == sid:
            if ev.code == PROTOCOL_ERROR or (status and status.startswith("4")):
                return ("%s after :status %s" % (ev, status)) if status else repr(ev)
            fail(c, "expected RST_STREAM(PROTOCOL_ERROR)")
        if ev.type == HEADERS and ev.sid == sid:
            status = dict(ev.headers).get(":status", "")
            if not status.startswith(("1", "4")):
                fail(c, "a malformed request was answered :status %s" % status)
            if ev.flags & ES and status.startswith("4"):
                return ":status %s" % status
        if ev.type == DATA and ev.sid == sid and ev.flags & ES and status and status.startswith("4"):
            return ":status %s" % status


def expect_settings_ack(c):
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "expected SETTINGS ACK, got %s" % ev)
        if ev.type == GOAWAY:
            fail(c, "expected SETTINGS ACK")
        if ev.type == SETTINGS and ev.flags & ACK:
            return "SETTINGS ACK"


def expect_data(c, sid, length=None, exact=True):
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "expected DATA on stream %d, got %s" % (sid, ev))
        if ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == sid):
            fail(c, "expected DATA on stream %d" % sid)
        if ev.type == DATA and ev.sid == sid:
            if length is None or ev.datalen == length or (not exact and 0 < ev.datalen <= length):
                return "DATA len=%d" % ev.datalen
            fail(c, "expected DATA of %d octets" % length)


def wait_stream_end(c, sid):
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "setup: expected the response on stream %d to end, got %s" % (sid, ev))
        if ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == sid):
            fail(c, "setup: response on stream %d did not complete" % sid)
        if ev.type in (HEADERS, DATA) and ev.sid == sid and ev.flags & ES:
            return


# ---------------------------------------------------------------- cases

CASES = []


def case(cid, desc):
    def deco(fn):
        CASES.append((cid, desc, fn))
        return fn
    return deco


ALT_CLOSED = ("RFC 9113 §5.1 (closed): \"An endpoint MUST minimally process and then discard any frames it receives "
              "in this state\"; treating them as an error is only a MAY")
ALT_PRIO = ("RFC 9113 §5.3.2 deprecates RFC 7540 priority signals and drops the self-dependency rule (RFC 7540 "
            "§5.3.1); the server sent SETTINGS_NO_RFC7540_PRIORITIES=1")

# ---- http2 §3.5


@case("http2/3.5/1", "Sends client connection preface")
def _(a):
    c = Conn()  # handshake requires the server's SETTINGS and the ACK of ours
    return "SETTINGS received %s" % c.server_settings


@case("http2/3.5/2", "Sends invalid connection preface")
def _(a):
    c = Conn(preface=b"INVALID CONNECTION PREFACE\r\n\r\n", handshake=False)
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind == "timeout":
            fail(c, "expected GOAWAY(PROTOCOL_ERROR) or close")
        if ev.kind.startswith("http1"):
            continue  # the listener also speaks HTTP/1.1: an HTTP/1.1 400 and a close are fine
        if ev.type == GOAWAY:
            if ev.code == PROTOCOL_ERROR:
                return repr(ev)
            fail(c, "expected GOAWAY(PROTOCOL_ERROR)")

# ---- http2 §4.1


@case("http2/4.1/1", "Sends a frame with unknown type")
def _(a):
    c = Conn()
    c.send(frame(0x16, 0, 0, b"\x00" * 8))
    return expect_ping_ack(c)


@case("http2/4.1/2", "Sends a frame with undefined flag")
def _(a):
    c = Conn()
    data = b"undefflg"
    c.send(ping_frame(data, flags=0x16))
    return expect_ping_ack(c, data, probe=False)


@case("http2/4.1/3", "Sends a frame with reserved field bit")
def _(a):
    c = Conn()
    data = b"reserved"
    c.send(ping_frame(data, sid=0x80000000))
    return expect_ping_ack(c, data, probe=False)

# ---- http2 §4.2


@case("http2/4.2/1", "Sends a DATA frame with 2^14 octets in length")
def _(a):
    c = Conn()
    c.send(post_headers(1, [("content-length", "16384")]) + frame(DATA, ES, 1, b"x" * 16384))
    return expect_headers(c, 1)


@case("http2/4.2/2", "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(a):
    c = Conn()
    mfs = c.server_settings.get(S_MAX_FRAME_SIZE, 16384)
    c.send(post_headers(1) + frame(DATA, ES, 1, b"x" * (mfs + 1)))
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)


@case("http2/4.2/3", "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(a):
    c = Conn()
    mfs = c.server_settings.get(S_MAX_FRAME_SIZE, 16384)
    extra = [("x-dummy%d" % i, "x" * 1000) for i in range(mfs // 1000 + 2)]
    c.send(headers_frame(1, req(extra=extra)))
    return expect_conn_error(c, FRAME_SIZE_ERROR)

# ---- http2 §4.3


@case("http2/4.3/1", "Sends invalid header block fragment")
def _(a):
    c = Conn()
    c.send(headers_frame(1, raw=b"\x40"))  # literal with incremental indexing, no name string
    return expect_conn_error(c, COMPRESSION_ERROR)


@case("http2/4.3/2", "Sends a PRIORITY frame while sending the header blocks")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + priority_frame(1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/4.3/3", "Sends a HEADERS frame to another stream while sending the header blocks")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + headers_frame(3))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §5.1


@case("http2/5.1/1", "idle: Sends a DATA frame")
def _(a):
    c = Conn()
    c.send(frame(DATA, ES, 1, b"test"))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/5.1/2", "idle: Sends a RST_STREAM frame")
def _(a):
    c = Conn()
    c.send(rst_frame(1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame")
def _(a):
    c = Conn()
    c.send(wu_frame(1, 100))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/5.1/4", "idle: Sends a CONTINUATION frame")
def _(a):
    c = Conn()
    c.send(frame(CONTINUATION, EH, 1, block(req())))
    return expect_conn_error(c, PROTOCOL_ERROR)


# half-closed (remote): the client announces INITIAL_WINDOW_SIZE=0 so that the server cannot finish its answer's
# body; the stream then stays half-closed (remote) on the server, whatever the server's speed.
@case("http2/5.1/5", "half closed (remote): Sends a DATA frame")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1))
    c.send(frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/5.1/6", "half closed (remote): Sends a HEADERS frame")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1))
    c.send(headers_frame(1, [("x-trailer", "t")]))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1))
    c.send(frame(CONTINUATION, EH, 1, block([("x-dummy", "x")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + rst_frame(1, CANCEL) + frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, STREAM_CLOSED, alt=ALT_CLOSED)


@case("http2/5.1/9", "closed: Sends a HEADERS frame after sending RST_STREAM frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + rst_frame(1, CANCEL) + headers_frame(1))
    return expect_stream_error(c, 1, STREAM_CLOSED, alt=ALT_CLOSED)


@case("http2/5.1/10", "closed: Sends a CONTINUATION frame after sending RST_STREAM frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + rst_frame(1, CANCEL) + frame(CONTINUATION, EH, 1, block([("x-dummy", "x")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2/5.1/11", "closed: Sends a DATA frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    wait_stream_end(c, 1)
    c.send(frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, STREAM_CLOSED, alt=ALT_CLOSED)


@case("http2/5.1/12", "closed: Sends a HEADERS frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    wait_stream_end(c, 1)
    c.send(headers_frame(1))
    return expect_stream_error(c, 1, STREAM_CLOSED, alt=ALT_CLOSED)


@case("http2/5.1/13", "closed: Sends a CONTINUATION frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    wait_stream_end(c, 1)
    c.send(frame(CONTINUATION, EH, 1, block([("x-dummy", "x")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)

# ---- http2 §5.1.1


@case("http2/5.1.1/1", "Sends even-numbered stream identifier")
def _(a):
    c = Conn()
    c.send(headers_frame(2))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/5.1.1/2", "Sends stream identifier that is numerically smaller than previous")
def _(a):
    c = Conn()
    c.send(headers_frame(5))
    expect_headers(c, 5)
    c.send(headers_frame(3))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §5.1.2


@case("http2/5.1.2/1", "Sends HEADERS frames that causes their advertised concurrent stream limit to be exceeded")
def _(a):
    # INITIAL_WINDOW_SIZE=0 keeps every answer unfinished, so every stream stays half-closed (remote).
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    mcs = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    if mcs is None:
        raise Result("SKIP", "SETTINGS_MAX_CONCURRENT_STREAMS not advertised (unlimited)")
    if mcs > 500:
        raise Result("SKIP", "SETTINGS_MAX_CONCURRENT_STREAMS=%d too large to test lightly" % mcs)
    c.send(b"".join(headers_frame(1 + 2 * i) for i in range(mcs + 1)))
    last = 1 + 2 * mcs
    return "limit %d: " % mcs + expect_stream_error(c, last, PROTOCOL_ERROR, REFUSED_STREAM)

# ---- http2 §5.3.1


@case("http2/5.3.1/1", "Sends HEADERS frame that depends on itself")
def _(a):
    c = Conn()
    c.send(frame(HEADERS, EH | ES | PRIO, 1, struct.pack(">IB", 1, 15) + block(req())))
    return expect_stream_error(c, 1, PROTOCOL_ERROR, alt=ALT_PRIO)


@case("http2/5.3.1/2", "Sends PRIORITY frame that depend on itself")
def _(a):
    c = Conn()
    c.send(priority_frame(2 - 1, dep=1))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)

# ---- http2 §5.4.1


@case("http2/5.4.1/1", "Sends an invalid PING frame for connection close")
def _(a):
    c = Conn()
    c.send(ping_frame(sid=3))
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind != "frame":
            fail(c, "expected the TCP connection to close after the connection error, got %s" % ev)


@case("http2/5.4.1/2", "Sends an invalid PING frame to receive GOAWAY frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    wait_stream_end(c, 1)
    c.send(ping_frame(sid=3))
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "expected GOAWAY(last=1), got %s" % ev)
        if ev.type == GOAWAY:
            if ev.last == 1 and ev.code == PROTOCOL_ERROR:
                return repr(ev)
            fail(c, "expected GOAWAY(last=1, PROTOCOL_ERROR)")

# ---- http2 §5.5


@case("http2/5.5/1", "Sends an unknown extension frame")
def _(a):
    c = Conn()
    c.send(frame(0xFF, 0, 0, b"unknown!"))
    return expect_ping_ack(c)


@case("http2/5.5/2", "Sends an unknown extension frame in the middle of a header block")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + frame(0xFF, 0, 1, b"unknown!"))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §6.1


@case("http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(DATA, ES, 0, b"test"))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.1/2", "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" state")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1) + frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("http2/6.1/3", "Sends a DATA frame with invalid pad length")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(DATA, ES | PADDED, 1, b"\x06Test"))  # pad length 6 >= payload length 5
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §6.2


@case("http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + priority_frame(1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.2/2", "Sends a HEADERS frame to another stream while sending a HEADERS frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + headers_frame(3))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier")
def _(a):
    c = Conn()
    c.send(headers_frame(0))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.2/4", "Sends a HEADERS frame with invalid pad length")
def _(a):
    c = Conn()
    b = block(req())
    c.send(frame(HEADERS, EH | ES | PADDED, 1, bytes([len(b) + 1]) + b))  # pad length > remaining payload
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §6.3


@case("http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier")
def _(a):
    c = Conn()
    c.send(priority_frame(0, dep=1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 octets")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(PRIORITY, 0, 1, b"\x80\x00\x00"))
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)

# ---- http2 §6.4


@case("http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier")
def _(a):
    c = Conn()
    c.send(rst_frame(0))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.4/2", "Sends a RST_STREAM frame on a idle stream")
def _(a):
    c = Conn()
    c.send(rst_frame(1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 octets")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(RST_STREAM, 0, 1, b"\x00\x00\x08"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)

# ---- http2 §6.5


@case("http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_ENABLE_PUSH, 0)], flags=ACK))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5/2", "Sends a SETTINGS frame with a stream identifier other than 0x0")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_ENABLE_PUSH, 0)], sid=1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.5/3", "Sends a SETTINGS frame with a length other than a multiple of 6 octets")
def _(a):
    c = Conn()
    c.send(frame(SETTINGS, 0, 0, b"\x00\x02\x00"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_ENABLE_PUSH, 2)]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control window size")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 2 ** 31)]))
    return expect_conn_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_MAX_FRAME_SIZE, 16383)]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame size")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_MAX_FRAME_SIZE, 16777216)]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier")
def _(a):
    c = Conn()
    c.send(settings_frame([(0xFF, 1)]))
    return expect_settings_ack(c)


@case("http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 100), (S_INITIAL_WINDOW_SIZE, 1)]))
    expect_settings_ack(c)
    c.send(headers_frame(1))
    return expect_data(c, 1, 1)


@case("http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_ENABLE_PUSH, 0)]))
    return expect_settings_ack(c)

# ---- http2 §6.7


@case("http2/6.7/1", "Sends a PING frame")
def _(a):
    return expect_ping_ack(Conn())


@case("http2/6.7/2", "Sends a PING frame with ACK")
def _(a):
    c = Conn()
    c.send(ping_frame(b"unexpect", flags=ACK))
    return expect_ping_ack(c, b"expected")  # the first PING ACK seen must be for the second PING


@case("http2/6.7/3", "Sends a PING frame with a stream identifier field value other than 0x0")
def _(a):
    c = Conn()
    c.send(ping_frame(sid=1))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.7/4", "Sends a PING frame with a length field value other than 8")
def _(a):
    c = Conn()
    c.send(frame(PING, 0, 0, b"\x00" * 6))
    return expect_conn_error(c, FRAME_SIZE_ERROR)

# ---- http2 §6.8


@case("http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other than 0x0")
def _(a):
    c = Conn()
    c.send(frame(GOAWAY, 0, 1, struct.pack(">II", 0, NO_ERROR)))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §6.9


@case("http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0")
def _(a):
    c = Conn()
    c.send(wu_frame(0, 0))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.9/2", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1) + wu_frame(1, 0))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than 4 octets")
def _(a):
    c = Conn()
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


@case("http2/6.9.1/1", "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    expect_settings_ack(c)
    c.send(headers_frame(1))
    return expect_data(c, 1, 1)


@case("http2/6.9.1/2", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1")
def _(a):
    c = Conn()
    c.send(wu_frame(0, 2 ** 31 - 1) + wu_frame(0, 2 ** 31 - 1))
    return expect_conn_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.9.1/3", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1 on a stream")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1) + wu_frame(1, 2 ** 31 - 1) + wu_frame(1, 2 ** 31 - 1))
    return expect_stream_error(c, 1, FLOW_CONTROL_ERROR)


@case("http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers_frame(1))
    expect_headers(c, 1)
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    return expect_data(c, 1, 1)


@case("http2/6.9.2/2", "Sends a SETTINGS frame for window size to be negative")
def _(a):
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 3)])
    c.send(headers_frame(1))
    got, dl = 0, deadline()
    while got < 3:
        ev = c.read(dl)
        if ev.kind != "frame" or ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == 1):
            fail(c, "setup: expected 3 octets of DATA, got %s" % ev)
        if ev.type == DATA and ev.sid == 1:
            if ev.flags & ES:
                raise Result("SKIP", "the response body is too short")
            got += ev.datalen
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 2)]))  # stream window 3-3-1 = -1
    expect_settings_ack(c)
    c.send(wu_frame(1, 2))  # stream window -1+2 = 1
    return expect_data(c, 1, 1)


@case("http2/6.9.2/3", "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size value")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 2 ** 31)]))
    return expect_conn_error(c, FLOW_CONTROL_ERROR)

# ---- http2 §6.10


@case("http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + frame(CONTINUATION, 0, 1, lit("x-dummy1", "x" * 100))
           + frame(CONTINUATION, EH, 1, lit("x-dummy2", "x" * 100)))
    return expect_headers(c, 1)


@case("http2/6.10/2", "Sends a CONTINUATION frame followed by any frame other than CONTINUATION")
def _(a):
    c = Conn()
    c.send(post_headers(1, flags=0) + frame(CONTINUATION, 0, 1, lit("x-dummy1", "x"))
           + frame(DATA, ES, 1, b"test"))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream identifier")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + frame(CONTINUATION, EH, 0, lit("x-dummy1", "x")))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.10/4", "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag")
def _(a):
    c = Conn()
    c.send(headers_frame(1) + frame(CONTINUATION, EH, 1, lit("x-dummy1", "x")))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.10/5", "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag")
def _(a):
    c = Conn()
    c.send(headers_frame(1, flags=ES) + frame(CONTINUATION, EH, 1, lit("x-dummy1", "x"))
           + frame(CONTINUATION, EH, 1, lit("x-dummy2", "x")))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(DATA, 0, 1, b"test") + frame(CONTINUATION, EH, 1, lit("x-dummy1", "x")))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- http2 §8.1


@case("http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM flag")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(DATA, 0, 1, b"test") + headers_frame(1, [("x-trailer", "t")], flags=EH))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


def malformed(hdrs, trailers=None):
    c = Conn()
    if trailers is None:
        c.send(headers_frame(1, hdrs))
    else:
        c.send(headers_frame(1, hdrs, flags=EH) + frame(DATA, 0, 1, b"test") + headers_frame(1, trailers))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/8.1.2/1", "Sends a HEADERS frame that contains the header field name in uppercase letters")
def _(a):
    return malformed(req(extra=[("X-TEST", "ok")]))


@case("http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown pseudo-header field")
def _(a):
    return malformed(req(extra=[(":test", "ok")]))


@case("http2/8.1.2.1/2", "Sends a HEADERS frame that contains the pseudo-header field defined for response")
def _(a):
    return malformed(req(extra=[(":status", "200")]))


@case("http2/8.1.2.1/3", "Sends a HEADERS frame that contains a pseudo-header field as trailers")
def _(a):
    return malformed(req("POST"), trailers=[(":method", "POST")])


@case("http2/8.1.2.1/4", "Sends a HEADERS frame that contains a pseudo-header field that appears in a header block after a regular header field")
def _(a):
    h = req()
    return malformed(h[:3] + [("x-test", "ok")] + h[3:])


@case("http2/8.1.2.2/1", "Sends a HEADERS frame that contains the connection-specific header field")
def _(a):
    return malformed(req(extra=[("connection", "keep-alive")]))


@case("http2/8.1.2.2/2", "Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"")
def _(a):
    return malformed(req(extra=[("te", "trailers, deflate")]))


@case("http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" pseudo-header field")
def _(a):
    return malformed(req(path=""))


@case("http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" pseudo-header field")
def _(a):
    return malformed([h for h in req() if h[0] != ":method"])


@case("http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" pseudo-header field")
def _(a):
    return malformed([h for h in req() if h[0] != ":scheme"])


@case("http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" pseudo-header field")
def _(a):
    return malformed([h for h in req() if h[0] != ":path"])


@case("http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated \":method\" pseudo-header field")
def _(a):
    h = req()
    return malformed(h[:1] + [(":method", "GET")] + h[1:])


@case("http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header field")
def _(a):
    h = req()
    return malformed(h[:2] + [(":scheme", "http")] + h[2:])


@case("http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated \":path\" pseudo-header field")
def _(a):
    h = req()
    return malformed(h[:3] + [(":path", ARGS.path)] + h[3:])


@case("http2/8.1.2.6/1", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the DATA frame payload length")
def _(a):
    c = Conn()
    c.send(post_headers(1, [("content-length", "1")]) + frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/8.1.2.6/2", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the sum of the multiple DATA frames payload length")
def _(a):
    c = Conn()
    c.send(post_headers(1, [("content-length", "1")]) + frame(DATA, 0, 1, b"test") + frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("http2/8.2/1", "Sends a PUSH_PROMISE frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + frame(PUSH_PROMISE, EH, 1, struct.pack(">I", 2) + block(req())))
    return expect_conn_error(c, PROTOCOL_ERROR)

# ---- extra (RFC 9113 rules h2spec does not cover)


@case("extra/5.1.2/1", "the stream over the concurrent-stream limit is refused, the others answered (RFC 9113 §5.1.2)")
def _(a):
    # INITIAL_WINDOW_SIZE=0 keeps every answer's body back, so the streams within the limit stay open.
    c = Conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    mcs = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    if mcs is None or mcs > 500:
        raise Result("SKIP", "SETTINGS_MAX_CONCURRENT_STREAMS %s: unlimited or too large to test lightly" % mcs)
    c.send(b"".join(headers_frame(1 + 2 * i) for i in range(mcs + 1)))
    last = 1 + 2 * mcs
    answered, refused = set(), False
    dl = deadline()
    while not (refused and len(answered) == mcs):
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "%s with %d of %d streams answered, refused=%s" % (ev.kind, len(answered), mcs, refused))
        if ev.type == GOAWAY:
            fail(c, "GOAWAY instead of refusing one stream")
        if ev.type == RST_STREAM:
            if ev.sid != last or ev.code != REFUSED_STREAM:
                fail(c, "expected RST_STREAM(REFUSED_STREAM) on stream %d only" % last)
            refused = True
        if ev.type == HEADERS:
            if ev.sid == last:
                fail(c, "the stream over the limit was answered")
            answered.add(ev.sid)
    return "limit %d: %d answered, stream %d refused" % (mcs, len(answered), last)


@case("extra/8.1.1/1", "content-length larger than the DATA received before END_STREAM (RFC 9113 §8.1.1)")
def _(a):
    c = Conn()
    c.send(post_headers(1, [("content-length", "10")]) + frame(DATA, ES, 1, b"test"))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("extra/8.1.1/2", "content-length on a HEADERS with END_STREAM and no DATA (RFC 9113 §8.1.1)")
def _(a):
    return malformed(req("POST", [("content-length", "5")]))


@case("extra/8.2.1/1", "field value containing CR LF (RFC 9113 §8.2.1)")
def _(a):
    return malformed(req(extra=[("x-test", "a\r\nx-injected: 1")]))


@case("extra/8.2.1/2", "field value containing NUL (RFC 9113 §8.2.1)")
def _(a):
    return malformed(req(extra=[("x-test", "a\x00b")]))


@case("extra/8.2.1/3", "field value with leading whitespace (RFC 9113 §8.2.1)")
def _(a):
    return malformed(req(extra=[("x-test", " leading")]))


@case("extra/8.2.1/4", "field name containing a space (RFC 9113 §8.2.1)")
def _(a):
    return malformed(req(extra=[("x test", "ok")]))


@case("extra/8.2.1/5", "field name containing a colon (RFC 9113 §8.2.1)")
def _(a):
    return malformed(req(extra=[("x:test", "ok")]))


@case("extra/8.2.2/1", "transfer-encoding header field (RFC 9113 §8.2.2)")
def _(a):
    return malformed(req("POST", [("transfer-encoding", "chunked")]))


@case("extra/8.2.2/2", "keep-alive / proxy-connection / upgrade header fields (RFC 9113 §8.2.2)")
def _(a):
    out = []
    for name, value in (("keep-alive", "timeout=5"), ("proxy-connection", "keep-alive"), ("upgrade", "h2c")):
        out.append(name + ": " + malformed(req(extra=[(name, value)])))
    return "; ".join(out)


@case("extra/8.2.2/3", "TE: trailers is allowed (RFC 9113 §8.2.2)")
def _(a):
    c = Conn()
    c.send(headers_frame(1, req(extra=[("te", "trailers")])))
    return expect_headers(c, 1)


@case("extra/8.3.1/1", "http request with neither :authority nor Host is malformed (RFC 9113 §8.3.1)")
def _(a):
    c = Conn()
    c.send(headers_frame(1, [(":method", "GET"), (":scheme", "http"), (":path", ARGS.path)]))
    return expect_malformed_answer(c, 1)


@case("extra/8.1.1/3", "non-numeric content-length is malformed (RFC 9113 §8.1.1, RFC 9110 §8.6)")
def _(a):
    c = Conn()
    c.send(post_headers(1, [("content-length", "4x")]) + frame(DATA, ES, 1, b"test"))
    return expect_malformed_answer(c, 1)


@case("extra/5.1.1/1", "skipping stream identifiers on one connection is allowed (RFC 9113 §5.1.1)")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    r = expect_headers(c, 1)
    c.send(headers_frame(7))
    return r + ", then stream 7: " + expect_headers(c, 7)


@case("extra/10.5.1/1", "field block over SETTINGS_MAX_HEADER_LIST_SIZE: refused, HPACK state kept (RFC 9113 §10.5.1)")
def _(a):
    c = Conn()
    limit = c.server_settings.get(S_MAX_HEADER_LIST_SIZE)
    if limit is None:
        raise Result("SKIP", "no SETTINGS_MAX_HEADER_LIST_SIZE advertised")
    n = limit // 1000 + 4
    b = block(req(extra=[("x-big%d" % i, "y" * 1000) for i in range(n)])) + lit("x-state", "kept", "incremental")
    chunks = [b[i:i + 16000] for i in range(0, len(b), 16000)]
    out = frame(HEADERS, ES if len(chunks) > 1 else ES | EH, 1, chunks[0])
    for i, ch in enumerate(chunks[1:]):
        out += frame(CONTINUATION, EH if i == len(chunks) - 2 else 0, 1, ch)
    c.send(out)
    dl = deadline()
    first = None
    while first is None:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed (allowed: \"unless the connection is closed\")"
        if ev.kind != "frame":
            fail(c, "expected 431 or RST_STREAM for a %d-octet field section, got %s" % (len(b), ev))
        if ev.type == GOAWAY:
            return "connection error: %r" % ev
        if ev.type == RST_STREAM and ev.sid == 1:
            first = repr(ev)
        if ev.type == HEADERS and ev.sid == 1:
            first = ":status %s" % dict(ev.headers).get(":status")
            if not first.endswith("431") and not first.startswith(":status 4"):
                fail(c, "an over-limit field section was answered %s" % first)
    # stream 3 refers to the dynamic-table entry the refused block added (index 62): the decoder must have kept it
    c.send(headers_frame(3, raw=block(req()) + hint(62, 7, 0x80)))
    return first + "; next request using its dynamic-table entry: " + expect_headers(c, 3)


@case("extra/6.5.2/1", "SETTINGS_ENABLE_PUSH=1 from a client is accepted (RFC 9113 §6.5.2)")
def _(a):
    c = Conn()
    c.send(settings_frame([(S_ENABLE_PUSH, 1)]))
    return expect_settings_ack(c)


@case("extra/6.5.2/2", "SETTINGS_HEADER_TABLE_SIZE=0 from the client: response header blocks still decode")
def _(a):
    c = Conn(settings=[(S_HEADER_TABLE_SIZE, 0)])
    c.dec.header_table_size = 0
    c.send(headers_frame(1))
    r1 = expect_headers(c, 1)
    c.send(headers_frame(3))
    return r1 + ", " + expect_headers(c, 3)


@case("extra/4.3/1", "header block split across HEADERS and CONTINUATION in the middle of a field (RFC 9113 §4.3)")
def _(a):
    c = Conn()
    b = block(req())
    c.send(frame(HEADERS, ES, 1, b[:7]) + frame(CONTINUATION, 0, 1, b[7:20]) + frame(CONTINUATION, EH, 1, b[20:]))
    return expect_headers(c, 1)

# ---- hpack (RFC 7541)


def hpack_error(raw):
    c = Conn()
    c.send(headers_frame(1, raw=raw))
    return expect_conn_error(c, COMPRESSION_ERROR)


@case("hpack/2.3.3/1", "Sends a indexed header field representation with invalid index")
def _(a):
    return hpack_error(block(req()) + hint(70, 7, 0x80))


@case("hpack/2.3.3/2", "Sends a literal header field representation with invalid index")
def _(a):
    return hpack_error(block(req()) + hint(70, 6, 0x40) + hstr("test"))


@case("hpack/4.2/1", "Sends a dynamic table size update at the end of header block")
def _(a):
    return hpack_error(block(req()) + hint(4096, 5, 0x20))


@case("hpack/5.2/1", "Sends a Huffman-encoded string literal representation with padding longer than 7 bits")
def _(a):
    hb = HUFF.encode(b"test") + b"\xff"
    return hpack_error(block(req()) + b"\x00" + hstr("x-test") + hint(len(hb), 7, 0x80) + hb)


@case("hpack/5.2/2", "Sends a Huffman-encoded string literal representation padded by zero")
def _(a):
    hb = b"\x18"  # 'a' (00011) followed by 000: padding that is not the EOS prefix
    return hpack_error(block(req()) + b"\x00" + hstr("x-test") + hint(len(hb), 7, 0x80) + hb)


@case("hpack/5.2/3", "Sends a Huffman-encoded string literal representation containing the EOS symbol")
def _(a):
    hb = b"\x1f\xff\xff\xff\xff"  # 'a' then EOS (30 ones) then padding
    return hpack_error(block(req()) + b"\x00" + hstr("x-test") + hint(len(hb), 7, 0x80) + hb)


@case("hpack/6.1/1", "Sends a indexed header field representation with index 0")
def _(a):
    return hpack_error(block(req()) + b"\x80")


@case("hpack/6.3/1", "Sends a dynamic table size update larger than the value of SETTINGS_HEADER_TABLE_SIZE")
def _(a):
    return hpack_error(hint(4097, 5, 0x20) + block(req()))

# ---- generic


def respond_to(raw=None, hdrs=None, extra_frames=b"", flags=EH | ES, settings=()):
    c = Conn(settings=settings)
    c.send(headers_frame(1, hdrs, flags=flags, raw=raw) + extra_frames)
    return expect_headers(c, 1)


@case("generic/1/1", "Sends a client connection preface")
def _(a):
    Conn()
    return "SETTINGS exchanged"


@case("generic/2/1", "Sends a PRIORITY frame on idle stream")
def _(a):
    c = Conn()
    c.send(priority_frame(1, dep=0, weight=255) + headers_frame(1))
    return expect_headers(c, 1)


@case("generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) stream")
def _(a):
    c = Conn()
    c.send(headers_frame(1) + wu_frame(1, 1))
    return expect_headers(c, 1)


@case("generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream")
def _(a):
    c = Conn()
    c.send(headers_frame(1) + priority_frame(1, weight=255))
    return expect_headers(c, 1)


@case("generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) stream")
def _(a):
    c = Conn()
    c.send(headers_frame(1) + rst_frame(1, CANCEL))
    return expect_ping_ack(c)


@case("generic/2/5", "Sends a PRIORITY frame on closed stream")
def _(a):
    c = Conn()
    c.send(headers_frame(1))
    wait_stream_end(c, 1)
    c.send(priority_frame(1, weight=255))
    return expect_ping_ack(c)


@case("generic/3.1/1", "Sends a DATA frame")
def _(a):
    return respond_to(hdrs=req("POST"), flags=EH, extra_frames=frame(DATA, ES, 1, b"test"))


@case("generic/3.1/2", "Sends multiple DATA frames")
def _(a):
    return respond_to(hdrs=req("POST"), flags=EH,
                      extra_frames=frame(DATA, 0, 1, b"test") + frame(DATA, ES, 1, b"test"))


@case("generic/3.1/3", "Sends a DATA frame with padding")
def _(a):
    return respond_to(hdrs=req("POST"), flags=EH,
                      extra_frames=frame(DATA, ES | PADDED, 1, b"\x06test" + b"\x00" * 6))


@case("generic/3.2/1", "Sends a HEADERS frame")
def _(a):
    return respond_to()


@case("generic/3.2/2", "Sends a HEADERS frame with padding")
def _(a):
    b = block(req())
    c = Conn()
    c.send(frame(HEADERS, EH | ES | PADDED, 1, b"\x08" + b + b"\x00" * 8))
    return expect_headers(c, 1)


@case("generic/3.2/3", "Sends a HEADERS frame with priority")
def _(a):
    c = Conn()
    c.send(frame(HEADERS, EH | ES | PRIO, 1, struct.pack(">IB", 0, 255) + block(req())))
    return expect_headers(c, 1)


@case("generic/3.3/1", "Sends a PRIORITY frame with priority 1")
def _(a):
    return respond_to(extra_frames=priority_frame(1, weight=0))


@case("generic/3.3/2", "Sends a PRIORITY frame with priority 256")
def _(a):
    return respond_to(extra_frames=priority_frame(1, weight=255))


@case("generic/3.3/3", "Sends a PRIORITY frame with stream dependency")
def _(a):
    c = Conn()
    c.send(priority_frame(3, dep=0) + headers_frame(1, flags=EH | ES) + priority_frame(1, dep=3))
    return expect_headers(c, 1)


@case("generic/3.3/4", "Sends a PRIORITY frame with exclusive")
def _(a):
    c = Conn()
    c.send(priority_frame(3, dep=0) + headers_frame(1) + priority_frame(1, dep=3, excl=True))
    return expect_headers(c, 1)


@case("generic/3.3/5", "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower stream ID")
def _(a):
    c = Conn()
    c.send(priority_frame(5, dep=0) + headers_frame(3))
    return expect_headers(c, 3)


@case("generic/3.4/1", "Sends a RST_STREAM frame")
def _(a):
    c = Conn()
    c.send(post_headers(1) + rst_frame(1, CANCEL))
    return expect_ping_ack(c)


for _i, (_n, _v) in enumerate([(S_HEADER_TABLE_SIZE, 4096), (S_ENABLE_PUSH, 0), (S_MAX_CONCURRENT_STREAMS, 100),
                               (S_INITIAL_WINDOW_SIZE, 65535), (S_MAX_FRAME_SIZE, 16384),
                               (S_MAX_HEADER_LIST_SIZE, 65535), (0xFF, 1)]):
    _names = {1: "SETTINGS_HEADER_TABLE_SIZE", 2: "SETTINGS_ENABLE_PUSH", 3: "SETTINGS_MAX_CONCURRENT_STREAMS",
              4: "SETTINGS_INITIAL_WINDOW_SIZE", 5: "SETTINGS_MAX_FRAME_SIZE", 6: "SETTINGS_MAX_HEADER_LIST_SIZE"}

    def _mk(n, v):
        def fn(a):
            c = Conn()
            c.send(settings_frame([(n, v)]))
            return expect_settings_ack(c)
        return fn
    case("generic/3.5/%d" % (_i + 1), "Sends a SETTINGS frame with %s" % _names.get(_n, "an unknown identifier"))(
        _mk(_n, _v))


@case("generic/3.7/1", "Sends a PING frame")
def _(a):
    return expect_ping_ack(Conn())


@case("generic/3.8/1", "Sends a GOAWAY frame")
def _(a):
    c = Conn()
    c.send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR) + b"bye"))
    data = os.urandom(8)
    c.send(ping_frame(data))
    dl = deadline()
    while True:
        ev = c.read(dl)
        if ev.kind == "closed":
            return "connection closed"
        if ev.kind != "frame":
            fail(c, "expected PING ACK or close, got %s" % ev)
        if ev.type == GOAWAY and ev.code != NO_ERROR:
            fail(c, "expected PING ACK or close")
        if ev.type == PING and ev.flags & ACK and ev.payload == data:
            return "PING ACK"


@case("generic/3.9/1", "Sends a WINDOW_UPDATE frame with arbitrary value on the connection")
def _(a):
    c = Conn()
    c.send(wu_frame(0, 1))
    return expect_ping_ack(c)


@case("generic/3.9/2", "Sends a WINDOW_UPDATE frame with arbitrary value on a stream")
def _(a):
    c = Conn()
    c.send(headers_frame(1) + wu_frame(1, 1))
    return expect_headers(c, 1)


@case("generic/3.10/1", "Sends a CONTINUATION frame")
def _(a):
    b = block(req())
    c = Conn()
    c.send(frame(HEADERS, ES, 1, b[:10]) + frame(CONTINUATION, EH, 1, b[10:]))
    return expect_headers(c, 1)


@case("generic/3.10/2", "Sends multiple CONTINUATION frames")
def _(a):
    b = block(req())
    c = Conn()
    c.send(frame(HEADERS, ES, 1, b[:10]) + frame(CONTINUATION, 0, 1, b[10:20]) + frame(CONTINUATION, EH, 1, b[20:]))
    return expect_headers(c, 1)


@case("generic/4/1", "Sends a GET request")
def _(a):
    return respond_to()


@case("generic/4/2", "Sends a HEAD request")
def _(a):
    c = Conn()
    c.send(headers_frame(1, req("HEAD")))
    dl = deadline()
    st = None
    while True:
        ev = c.read(dl)
        if ev.kind != "frame" or ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == 1):
            fail(c, "expected a HEAD response, got %s" % ev)
        if ev.type == HEADERS and ev.sid == 1:
            st = dict(ev.headers).get(":status")
        if ev.type == DATA and ev.sid == 1 and ev.datalen:
            fail(c, "HEAD response carries %d octets of content (RFC 9110 §9.3.2)" % ev.datalen)
        if ev.type in (HEADERS, DATA) and ev.sid == 1 and ev.flags & ES:
            return ":status %s, no content" % st


@case("generic/4/3", "Sends a POST request")
def _(a):
    return respond_to(hdrs=req("POST", [("content-length", "4")]), flags=EH, extra_frames=frame(DATA, ES, 1, b"test"))


@case("generic/4/4", "Sends a POST request with trailers")
def _(a):
    return respond_to(hdrs=req("POST"), flags=EH,
                      extra_frames=frame(DATA, 0, 1, b"test") + headers_frame(1, [("x-trailer", "ok")]))


def pseudo_indexed():
    # :method GET (2), :scheme http (6), :path from the request, :authority (1) literal without indexing
    return b"\x82\x86" + (b"\x84" if ARGS.path == "/" else lit("", ARGS.path, index=4)) + lit("", ARGS.authority,
                                                                                            index=1)


_GEN5 = [
    ("Sends a indexed header field representation", lambda: b""),  # the pseudo-header fields are indexed
    ("Sends a literal header field with incremental indexing - indexed name", lambda: lit("", "h2spec", "incremental", 58)),
    ("Sends a literal header field with incremental indexing - indexed name (with Huffman coding)",
     lambda: lit("", "h2spec", "incremental", 58, True)),
    ("Sends a literal header field with incremental indexing - new name", lambda: lit("x-test", "h2spec", "incremental")),
    ("Sends a literal header field with incremental indexing - new name (with Huffman coding)",
     lambda: lit("x-test", "h2spec", "incremental", huff=True)),
    ("Sends a literal header field without indexing - indexed name", lambda: lit("", "h2spec", "without", 58)),
    ("Sends a literal header field without indexing - indexed name (with Huffman coding)",
     lambda: lit("", "h2spec", "without", 58, True)),
    ("Sends a literal header field without indexing - new name", lambda: lit("x-test", "h2spec", "without")),
    ("Sends a literal header field without indexing - new name (huffman encoded)",
     lambda: lit("x-test", "h2spec", "without", huff=True)),
    ("Sends a literal header field never indexed - indexed name", lambda: lit("", "h2spec", "never", 58)),
    ("Sends a literal header field never indexed - indexed name (huffman encoded)",
     lambda: lit("", "h2spec", "never", 58, True)),
    ("Sends a literal header field never indexed - new name", lambda: lit("x-test", "h2spec", "never")),
    ("Sends a literal header field never indexed - new name (huffman encoded)",
     lambda: lit("x-test", "h2spec", "never", huff=True)),
]
for _i, (_d, _f) in enumerate(_GEN5):
    def _mk5(f):
        return lambda a: respond_to(raw=pseudo_indexed() + f())
    case("generic/5/%d" % (_i + 1), _d)(_mk5(_f))


@case("generic/5/14", "Sends a dynamic table size update")
def _(a):
    return respond_to(raw=hint(0, 5, 0x20) + pseudo_indexed())


@case("generic/5/15", "Sends multiple dynamic table size update")
def _(a):
    return respond_to(raw=hint(0, 5, 0x20) + hint(4096, 5, 0x20) + pseudo_indexed())


@case("extra/7541-2.3/1", "Indexed fields from the dynamic table across requests on one connection (RFC 7541 §2.3.2)")
def _(a):
    c = Conn()
    c.send(headers_frame(1, raw=pseudo_indexed() + lit("x-test", "h2spec", "incremental")))
    r = expect_headers(c, 1)
    c.send(headers_frame(3, raw=pseudo_indexed() + hint(62, 7, 0x80)))  # dynamic entry 62 = x-test: h2spec
    return r + ", " + expect_headers(c, 3)



# ---- fwd: exchanges that reach an upstream (need --forward-port)


def fwd_conn(settings=()):
    if not ARGS.forward_port:
        raise Result("SKIP", "needs --forward-port (a listener that forwards to an echoing upstream)")
    return Conn(settings=settings, port=ARGS.forward_port)


def freq(method="GET", path="/h2conformance", extra=()):
    return req(method, extra, path=path, authority=ARGS.forward_authority)


def send_body(c, sid, body, end=True, timeout=10.0):
    """Send body as DATA within the server's flow-control windows (RFC 9113 §6.9), reading WINDOW_UPDATEs."""
    mfs = c.server_settings.get(S_MAX_FRAME_SIZE, 16384)
    c.pending = []
    dl = time.time() + timeout
    off = 0
    sent_stream = 0
    while True:
        stream_win = c.server_settings.get(S_INITIAL_WINDOW_SIZE, 65535) + c.send_win_stream.get(sid, 0) - sent_stream
        n = min(mfs, c.send_win_conn, stream_win, len(body) - off)
        if n > 0 or off == len(body):
            last = off + n >= len(body)
            c.send(frame(DATA, ES if (end and last) else 0, sid, body[off:off + n]))
            off += n
            sent_stream += n
            c.send_win_conn -= n
            if last:
                return
            continue
        ev = c.read(dl)  # blocked: wait for a WINDOW_UPDATE
        if ev.kind != "frame":
            fail(c, "request body stalled at %d/%d octets (windows conn=%d stream=%d): %s"
                 % (off, len(body), c.send_win_conn, stream_win, ev))
        if ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == sid):
            fail(c, "request body interrupted at %d/%d octets" % (off, len(body)))
        if ev.type != WINDOW_UPDATE:
            c.pending.append(ev)


def read_response(c, sid, window=65535, conn_window=65535, timeout=10.0):
    """Collect one response, checking that the server keeps within the client's windows and sending
    WINDOW_UPDATEs as the content is consumed."""
    status, hdrs, body, trailers = None, None, b"", None
    sw, cw, consumed_s, consumed_c = window, conn_window, 0, 0
    dl = time.time() + timeout
    queue = list(getattr(c, "pending", []))
    while True:
        ev = queue.pop(0) if queue else c.read(dl)
        if ev.kind != "frame":
            fail(c, "response on stream %d incomplete after %d octets: %s" % (sid, len(body), ev))
        if ev.type == GOAWAY or (ev.type == RST_STREAM and ev.sid == sid):
            fail(c, "response on stream %d interrupted" % sid)
        if ev.type == HEADERS and ev.sid == sid:
            st = dict(ev.headers).get(":status")
            if st is None:
                trailers = ev.headers
            elif not st.startswith("1"):
                status, hdrs = st, ev.headers
        if ev.type == DATA and ev.sid == sid:
            n = len(ev.payload)
            sw -= n
            cw -= n
            if sw < 0 or cw < 0:
                VIOLATIONS.append("server exceeded the client's flow-control window (stream %d, conn %d) "
                                  "(RFC 9113 §6.9.1)" % (sw, cw))
            body += ev.payload[1:len(ev.payload) - ev.payload[0]] if ev.flags & PADDED else ev.payload
            consumed_s += n
            consumed_c += n
            if consumed_c >= conn_window // 2:
                c.send(wu_frame(0, consumed_c))
                cw += consumed_c
                consumed_c = 0
            if consumed_s >= window // 2 and not ev.flags & ES:
                c.send(wu_frame(sid, consumed_s))
                sw += consumed_s
                consumed_s = 0
        if ev.type in (HEADERS, DATA) and ev.sid == sid and ev.flags & ES:
            return status, dict(hdrs or []), body, trailers


def echo(body):
    import json
    try:
        return json.loads(body)
    except ValueError:
        return {}


@case("fwd/6.9/1", "request body larger than the server's initial windows is accepted as windows open (RFC 9113 §6.9)")
def _(a):
    c = fwd_conn()
    body = os.urandom(200000)
    c.send(headers_frame(1, freq("POST", extra=[("content-length", str(len(body)))]), flags=EH))
    send_body(c, 1, body)
    st, h, rb, _t = read_response(c, 1)
    e = echo(rb)
    import hashlib
    if st != "200" or e.get("body_length") != len(body) or e.get("body_sha256") != hashlib.sha256(body).hexdigest():
        fail(c, "expected 200 and the upstream to see the %d-octet body, got %s %r" % (len(body), st, rb[:200]))
    return "200, upstream saw %d octets, sha256 matches" % len(body)


@case("fwd/6.9.1/1", "1 MiB response within a 16 KiB stream window / 64 KiB connection window (RFC 9113 §6.9.1)")
def _(a):
    c = fwd_conn(settings=[(S_INITIAL_WINDOW_SIZE, 16384)])
    c.send(headers_frame(1, freq(path="/big")))
    st, h, rb, _t = read_response(c, 1, window=16384, timeout=20)
    if st != "200" or len(rb) != 1 << 20:
        fail(c, "expected 200 with 1048576 octets, got %s with %d" % (st, len(rb)))
    if h.get("content-length") not in (None, str(len(rb))):
        fail(c, "content-length %s but %d octets" % (h.get("content-length"), len(rb)))
    return "200, %d octets, windows respected" % len(rb)


@case("fwd/8.1/1", "POST with trailers is forwarded whole (RFC 9113 §8.1)")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("POST"), flags=EH) + frame(DATA, 0, 1, b"test")
           + headers_frame(1, [("x-trailer", "ok")]))
    st, h, rb, _t = read_response(c, 1)
    if st != "200" or echo(rb).get("body_length") != 4:
        fail(c, "expected 200 and a 4-octet body upstream, got %s %r" % (st, rb[:200]))
    return "200, upstream saw 4 octets"


@case("fwd/8.1.1/1", "forwarded: DATA beyond content-length is malformed (RFC 9113 §8.1.1)")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("POST", extra=[("content-length", "4")]), flags=EH)
           + frame(DATA, 0, 1, b"test") + frame(DATA, ES, 1, b"more"))
    return expect_malformed_answer(c, 1)


@case("fwd/8.1.1/2", "forwarded: END_STREAM before content-length octets is malformed (RFC 9113 §8.1.1)")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("POST", extra=[("content-length", "10")]), flags=EH)
           + frame(DATA, ES, 1, b"test"))
    return expect_malformed_answer(c, 1)


@case("fwd/8.1/2", "forwarded HEAD: header section only, no content (RFC 9110 §9.3.2)")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("HEAD")))
    st, h, rb, _t = read_response(c, 1)
    if rb:
        fail(c, "HEAD answered with %d octets of content" % len(rb))
    return ":status %s, content-length %s, no content" % (st, h.get("content-length"))


@case("fwd/5.4.2/1", "RST_STREAM(CANCEL) mid-upload, then a new request on the connection completes")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("POST", extra=[("content-length", "100000")]), flags=EH)
           + frame(DATA, 0, 1, b"x" * 1000) + rst_frame(1, CANCEL))
    time.sleep(0.2)
    c.send(headers_frame(3, freq()))
    st, h, rb, _t = read_response(c, 3)
    if st != "200":
        fail(c, "expected 200 on stream 3, got %s" % st)
    return "stream 3: 200"


@case("fwd/5.1.2/1", "ten concurrent forwarded requests on one connection all complete")
def _(a):
    c = fwd_conn()
    c.send(b"".join(headers_frame(1 + 2 * i, freq(path="/c%d" % i)) for i in range(10)))
    done, dl = {}, time.time() + 10
    while len(done) < 10:
        ev = c.read(dl)
        if ev.kind != "frame" or ev.type == GOAWAY or ev.type == RST_STREAM:
            fail(c, "%d of 10 answered, then %s" % (len(done), ev))
        if ev.type == HEADERS and ":status" in dict(ev.headers or []):
            done.setdefault(ev.sid, dict(ev.headers)[":status"])
    return "statuses %s" % sorted(set(done.values()))



def upstream_case(path, method="GET", check=None):
    """Fetch path through the forwarding listener; check(status, headers, body) returns a detail or calls fail."""
    c = fwd_conn()
    c.send(headers_frame(1, freq(method, path=path)))
    dl = time.time() + 8
    status, hdrs, body, interim, ended = None, {}, b"", [], None
    while ended is None:
        ev = c.read(dl)
        if ev.kind != "frame":
            fail(c, "%s %s: no complete answer: %s" % (method, path, ev))
        if ev.type == GOAWAY:
            ended = repr(ev)
        elif ev.type == RST_STREAM and ev.sid == 1:
            ended = repr(ev)
        elif ev.type == HEADERS and ev.sid == 1:
            st = dict(ev.headers).get(":status")
            if st and st.startswith("1"):
                interim.append(st)
            elif st:
                status, hdrs = st, dict(ev.headers)
            if ev.flags & ES:
                ended = "END_STREAM"
        elif ev.type == DATA and ev.sid == 1:
            body += ev.payload[1:len(ev.payload) - ev.payload[0]] if ev.flags & PADDED else ev.payload
            if ev.flags & ES:
                ended = "END_STREAM"
    if ended == "END_STREAM" and status and "content-length" in hdrs and method != "HEAD" \
            and status not in ("204", "304") and hdrs["content-length"].isdigit() \
            and int(hdrs["content-length"]) != len(body):
        VIOLATIONS.append("content-length %s but %d octets of DATA before END_STREAM (RFC 9113 §8.1.1)"
                          % (hdrs["content-length"], len(body)))
    r = check(c, status, hdrs, body, interim, ended)
    r = r if isinstance(r, str) else None
    return r or "%s%s, %d octets, %s" % ("interim %s, " % interim if interim else "", status, len(body), ended)


def no_clean_truncation(c, status, hdrs, body, interim, ended, promised):
    if status == "200" and ended == "END_STREAM" and len(body) < promised:
        fail(c, "a response the upstream broke off after %d of %d octets was ended with END_STREAM as if complete"
             % (len(body), promised))


for _path, _desc, _check in [
    ("/chunked", "chunked upstream answer: re-framed as DATA, no transfer-encoding (RFC 9113 §8.1, §8.2.2)",
     lambda c, st, h, b, i, e: (st == "200" and b == b"hello world") or fail(c, "expected 200 'hello world'")),
    ("/early", "upstream 'Connection: close' is not forwarded (RFC 9113 §8.2.2)",
     lambda c, st, h, b, i, e: st == "200" or fail(c, "expected 200")),
    ("/hints", "103 Early Hints: interim HEADERS without END_STREAM, then the final answer (RFC 9113 §8.1)",
     lambda c, st, h, b, i, e: (st == "200" and e == "END_STREAM") or fail(c, "expected 103 then 200")),
    ("/status/204", "upstream 204 that wrongly carries content: no DATA content forwarded (RFC 9110 §15.3.5)",
     lambda c, st, h, b, i, e: (st != "204" or not b) or fail(c, "204 forwarded with %d octets" % len(b))),
    ("/status/304", "upstream 304 that wrongly carries content: no DATA content forwarded (RFC 9110 §15.4.5)",
     lambda c, st, h, b, i, e: (st != "304" or not b) or fail(c, "304 forwarded with %d octets" % len(b))),
    ("/stall-mid", "upstream answer cut off mid-body (3 of 100 octets, then close): reset, never ended as complete",
     lambda c, st, h, b, i, e: no_clean_truncation(c, st, h, b, i, e, 100)),
    ("/badchunk", "upstream invalid chunked framing: 502 or reset, never a clean 200",
     lambda c, st, h, b, i, e: (st == "200" and e == "END_STREAM") and fail(c, "forwarded as a clean 200")),
    ("/bigcl", "upstream content-length overflow: 502 or reset, never a clean 200",
     lambda c, st, h, b, i, e: (st == "200" and e == "END_STREAM") and fail(c, "forwarded as a clean 200")),
    ("/close", "upstream closes without answering: a 5xx answer or a reset",
     lambda c, st, h, b, i, e: (st is None or st.startswith("5")) or fail(c, "expected 5xx, got %s" % st)),
]:
    def _mku(path, check):
        return lambda a: upstream_case(path, check=check)
    case("fwd/up%s" % _path, _desc)(_mku(_path, _check))


@case("fwd/up/headbody", "HEAD answered by an upstream that sends a body anyway: no content, next request clean")
def _(a):
    c = fwd_conn()
    c.send(headers_frame(1, freq("HEAD", path="/headbody")))
    st, h, rb, _t = read_response(c, 1)
    if rb:
        fail(c, "HEAD answered with %d octets of content" % len(rb))
    c.send(headers_frame(3, freq(path="/after-headbody")))
    st3, h3, rb3, _t = read_response(c, 3)
    if "x-poison" in h3 or echo(rb3).get("path") != "/after-headbody":
        fail(c, "the next answer on the connection is not the upstream's answer to it: %s %r" % (st3, rb3[:120]))
    return "HEAD %s no content; next: %s %s" % (st, st3, echo(rb3).get("path"))


# ---------------------------------------------------------------- main

def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--authority", default="acme.test")
    ap.add_argument("--path", default="/")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--forward-port", type=int, help="a listener that forwards every path to an upstream answering 200 "
                    "with a JSON echo (body_length, body_sha256), e.g. a custom-domain listener; fwd/* cases SKIP "
                    "without it")
    ap.add_argument("--forward-authority", default="login.acme.test")
    ap.add_argument("--only", action="append", help="run only the case ids starting with this (repeatable)")
    ap.add_argument("--pause", type=float, default=0.02, help="pause between cases (keeps load light)")
    ARGS = ap.parse_args()
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ALT": 0}
    for cid, desc, fn in CASES:
        if ARGS.only and not any(cid.startswith(p) for p in ARGS.only):
            continue
        try:
            verdict, detail = "PASS", fn(ARGS)
            detail = detail if isinstance(detail, str) else ""
        except Result as r:
            verdict, detail = r.verdict, r.detail
        except (RuntimeError, OSError) as e:
            verdict, detail = "FAIL", "%s: %s" % (type(e).__name__, e)
        while OPEN:
            OPEN.pop().close()
        if VIOLATIONS and verdict != "FAIL":
            verdict, detail = "FAIL", "; ".join(VIOLATIONS) + " (case otherwise: %s %s)" % (verdict, detail)
        del VIOLATIONS[:]
        counts[verdict] += 1
        print("%-16s %-4s %s -- %s" % (cid, verdict, desc, detail.replace("\n", " ")), flush=True)
        time.sleep(ARGS.pause)
    print("\n%d cases: %d PASS, %d FAIL, %d ALT, %d SKIP" % (sum(counts.values()), counts["PASS"], counts["FAIL"],
                                                            counts["ALT"], counts["SKIP"]))
    sys.exit(1 if counts["FAIL"] else 0)


if __name__ == "__main__":
    main()
