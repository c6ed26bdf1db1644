"""The trained-state record (the same bytes as the runtime's mcf_state.c): what a device saves
after training and restores at boot.

Layout, little-endian: ``"MCFS"``, uint16 version 2, uint16 header size 52, the state's 32-byte
identity, uint32 state size, uint32 generation (which save it is: of two slots, the newer valid
one is restored), uint32 CRC-32 (zlib's) of bytes 0..47 and the state, then the state.

The identity (``<NAME>_TRAIN_STATE_SHA256``) is the sha256 of the model file's sha256 and the
trained state's layout (every array: layer, what, C type, length), so a record from another model,
or from the same model built with another training policy, is refused even when its size matches.
"""
from __future__ import annotations

import hashlib
import struct
import zlib

from .errors import McuforgeError

MAGIC = b"MCFS"
VERSION = 2
HEADER_SIZE = 52
CRC_OFFSET = 48
_HEAD = struct.Struct("<4sHH32sII")  # up to the CRC


class StateRecordError(McuforgeError):
    """A record that must not be restored; ``reason`` is the runtime's MCF_STATE_ERR_* name."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def identity(plan) -> bytes:
    """32 bytes naming a training build's state: model file and state layout."""
    tp = plan.training
    if tp is None:
        raise McuforgeError("the model was compiled without --training: it has no trained state")
    h = hashlib.sha256()
    h.update((plan.graph.source_hash or "").encode())
    h.update(f"|{tp.state_bytes}".encode())
    for layer, what, ctype, n in tp.state_layout:
        h.update(f"|{layer}:{what}:{ctype}:{n}".encode())
    return h.digest()


def pack(ident: bytes, state: bytes, generation: int = 1) -> bytes:
    if len(ident) != 32:
        raise McuforgeError("a state identity is 32 bytes (the header's <NAME>_TRAIN_STATE_SHA256)")
    head = _HEAD.pack(MAGIC, VERSION, HEADER_SIZE, ident, len(state), generation & 0xFFFFFFFF)
    crc = zlib.crc32(state, zlib.crc32(head))
    return head + struct.pack("<I", crc) + bytes(state)


def unpack(ident: bytes, record: bytes, state_size: int) -> bytes:
    """The state, or StateRecordError with the reason mcf_state_unpack() would give."""
    record = bytes(record)
    if len(record) < HEADER_SIZE or record[:4] != MAGIC:
        raise StateRecordError("MAGIC", "not a state record")
    magic, version, header_size, rid, size, _generation = _HEAD.unpack_from(record)
    if version != VERSION or header_size != HEADER_SIZE:
        raise StateRecordError("VERSION", f"state record version {version}, expected {VERSION}")
    if size != state_size or len(record) - HEADER_SIZE < state_size:
        raise StateRecordError("SIZE", f"state record of {size} bytes ({len(record) - HEADER_SIZE} present), "
                                       f"the model's state is {state_size}")
    state = record[HEADER_SIZE:HEADER_SIZE + state_size]
    crc = struct.unpack_from("<I", record, CRC_OFFSET)[0]
    if zlib.crc32(state, zlib.crc32(record[:CRC_OFFSET])) != crc:
        raise StateRecordError("CRC", "state record CRC mismatch (torn or corrupted write)")
    if rid != ident:
        raise StateRecordError("MODEL", "state record of another model or build")
    return state


def generation(record: bytes) -> int:
    """The generation of a record (check it with unpack first)."""
    return struct.unpack_from("<I", bytes(record), 44)[0]


def c_initializer(ident: bytes) -> str:
    return "{ " + ", ".join(f"0x{b:02x}" for b in ident) + " }"
