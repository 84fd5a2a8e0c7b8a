"""SMP serial framing on bytes: the pure encoder/decoder, against the maintained ``smp`` package."""

from __future__ import annotations

import os
import random

import pytest

smppacket = pytest.importorskip("smp.packet")
cbor2 = pytest.importorskip("cbor2")

from firmware_tools.framing import FrameDecoder, crc16, encode_frame, encoded_size, iter_packets  # noqa: E402
from firmware_tools.protocol import FILE_UPLOAD, GROUP_FILE, OP_WRITE, STAGED_NAME, make_packet, parse_packet  # noqa: E402


def _packet(n: int) -> bytes:
    return make_packet(OP_WRITE, GROUP_FILE, FILE_UPLOAD, 7, {"off": 0, "data": os.urandom(n), "name": STAGED_NAME, "len": n})


def test_crc16_is_xmodem():
    # The CRC-16/XMODEM check value from the CRC catalogue, and smp's own implementation.
    assert crc16(b"123456789") == 0x31C3
    data = os.urandom(300)
    assert crc16(data) == smppacket.crc16_func(data)


@pytest.mark.parametrize("size", [0, 1, 90, 500, 2000])
def test_encoded_frames_decode_with_smp_and_back(size):
    packet = _packet(size)
    wire = encode_frame(packet)
    lines = wire.split(b"\n")[:-1]
    assert all(len(line) + 1 <= 127 for line in lines)
    assert lines[0][:2] == b"\x06\x09" and all(line[:2] == b"\x04\x14" for line in lines[1:])
    assert len(wire) == encoded_size(len(packet))
    # smp's reference decoder reads what we write...
    decoder = smppacket.decode()
    next(decoder)
    with pytest.raises(StopIteration) as done:
        for line in lines:
            decoder.send(line + b"\n")
    assert done.value.value == packet
    # ...and ours reads what smp writes (its 128-byte lines included).
    theirs = b"".join(smppacket.encode(packet, line_length=128))
    assert FrameDecoder().feed(theirs) == [packet]


def test_decoder_skips_boot_noise_and_console_text_between_frames():
    a, b = _packet(10), _packet(400)
    noise = b"*** Booting Zephyr OS build v3.7.0 ***\r\n\x04 stray control\r\nuart:~$ "
    stream = noise + encode_frame(a) + b"[00:00:01.000] <inf> app: hi\r\n" + encode_frame(b) + noise
    d = FrameDecoder()
    assert d.feed(stream) == [a, b]
    assert d.errors == 0 and d.noise >= 2 * len(noise) - 10


def test_decoder_handles_any_split_of_the_stream():
    packets = [_packet(n) for n in (5, 300, 1200)]
    stream = b"boot\r\n".join(encode_frame(p) for p in packets)
    rng = random.Random(1)
    chunks, i = [], 0
    while i < len(stream):
        n = rng.randint(1, 17)
        chunks.append(stream[i:i + n])
        i += n
    assert list(iter_packets(chunks)) == packets
    assert list(iter_packets(bytes([c]) for c in stream)) == packets


def test_damaged_frames_are_dropped_and_the_next_one_still_decodes():
    good = _packet(200)
    wire = bytearray(encode_frame(good))
    flipped = bytearray(wire)
    flipped[40] ^= 0x01  # one bit inside the base64 body: bad CRC (or bad base64)
    truncated = wire[: len(wire) // 2]  # a frame cut off mid-way, then a new start delimiter
    d = FrameDecoder()
    assert d.feed(bytes(flipped)) == []
    assert d.feed(bytes(truncated)) == []
    assert d.feed(bytes(wire)) == [good]
    assert d.errors == 2


def test_parse_packet_reads_header_and_cbor():
    head, body = parse_packet(make_packet(3, 64, 1, 200, {"active": None}))
    assert head == {"op": 3, "version": 1, "flags": 0, "length": len(cbor2.dumps({"active": None})),
                    "group": 64, "seq": 200, "id": 1}
    assert body == {"active": None}
