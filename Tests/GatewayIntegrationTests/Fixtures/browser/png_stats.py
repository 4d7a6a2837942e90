#!/usr/bin/env python3
"""Decodes a PNG with the standard library only (zlib and the five PNG row filters) and prints what the browser
tests assert on, as JSON: width, height, distinct colours (capped), the share of pixels that are not the
background (the top-left pixel's colour), and the bounding box of those pixels.

Usage: png_stats.py FILE
Handles 8-bit RGB and RGBA, non-interlaced: what Chromium's --screenshot writes.
"""
import json
import struct
import sys
import zlib

COLOUR_CAP = 4096


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(1)


def add_bytes(a, b):
    """Bytewise (a + b) mod 256 of two equal-length byte strings, as one big-integer operation."""
    n = len(a)
    x = int.from_bytes(a, "big")
    y = int.from_bytes(b, "big")
    low = int.from_bytes(b"\x7f" * n, "big")
    high = int.from_bytes(b"\x80" * n, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def main():
    data = open(sys.argv[1], "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        fail("no IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        fail(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (stride + 1):
        fail("truncated image data")
    previous = bytes(stride)
    colours = set()
    background = None
    painted = 0
    box = [width, height, -1, -1]
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = raw[start + 1:start + 1 + stride]
        if kind == 0:
            row = line
        elif kind == 2:
            row = add_bytes(line, previous)
        else:
            row = bytearray(line)
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                up = previous[i]
                if kind == 1:
                    row[i] = (row[i] + left) & 0xFF
                elif kind == 3:
                    row[i] = (row[i] + ((left + up) >> 1)) & 0xFF
                elif kind == 4:
                    corner = previous[i - bpp] if i >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                    row[i] = (row[i] + predictor) & 0xFF
                else:
                    fail(f"bad filter {kind} on row {y}")
            row = bytes(row)
        if background is None:
            background = row[:bpp]
        if row != background * width:
            for x in range(width):
                pixel = row[x * bpp:(x + 1) * bpp]
                if pixel != background:
                    painted += 1
                    if len(colours) < COLOUR_CAP:
                        colours.add(pixel)
                    box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
        previous = row
    colours.add(background)
    print(json.dumps({
        "width": width, "height": height, "colours": len(colours),
        "painted_fraction": painted / float(width * height),
        "painted_box": box if box[2] >= 0 else None,
    }))


main()
