"""Content sniffing: what a byte stream is, decided by its bytes and never by a file name."""

from __future__ import annotations

from enum import Enum

from modelguard.formats.blob import Blob

__all__ = [
    "LFS_PREFIX",
    "PickleSignature",
    "extension_claim",
    "looks_like_onnx",
    "looks_like_text",
    "pickle_signature",
    "safetensors_header_length",
    "tar_candidate",
    "wrapper_candidate",
    "zip_candidate",
]

LFS_PREFIX = b"version https://git-lfs.github.com/spec/v1"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GGUF_MAGIC = b"GGUF"

# First opcodes a protocol 0/1 pickle can start with and get somewhere: a value push,
# MARK, GLOBAL/INST or PERSID. Anything else fails before doing anything.
_WEAK_FIRST = frozenset(b"(cilSVIJKLFGMNPTUX])}.")


class PickleSignature(Enum):
    """How strongly the first bytes say "pickle"."""

    NONE = "none"
    WEAK = "weak"  # a protocol 0/1 opcode: only a trial run can tell
    STRONG = "strong"  # PROTO 0-5


def pickle_signature(head: bytes) -> PickleSignature:
    """Classify the first bytes of a stream as a pickle start."""
    if not head:
        return PickleSignature.NONE
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return PickleSignature.STRONG
    if head[0] in _WEAK_FIRST:
        return PickleSignature.WEAK
    return PickleSignature.NONE


_JSON_SPACE = (b" ", b"\t", b"\r", b"\n")
# The reference loader's cap on the header (safetensors tensor.rs MAX_HEADER_SIZE).
_SAFETENSORS_MAX_HEADER = 100_000_000
_SPACE_CHUNK = 64 * 1024


def safetensors_header_length(blob: Blob) -> int | None:
    """Return the JSON header length if the blob looks like safetensors, else None.

    The header is JSON that starts with `{`, after optional JSON whitespace: the reference
    loader accepts leading whitespace, so a scanner that does not would let such a file pass
    as unknown content.
    """
    head = blob.read(0, 9)
    if len(head) < 9:
        return None
    length = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and length >= 2:
        if length <= _SAFETENSORS_MAX_HEADER or 8 + length <= blob.size:
            return length  # also when it runs past the end: a truncated file, reported so
        # A length beyond the reference's cap and the file is refused by the loader, but it
        # is still a safetensors header (and reported as invalid) when a JSON object starts.
        nxt = blob.read(9, 1)
        if length < 1 << 48 and nxt in (b'"', b"}", b" ", b"\n", b"\r", b"\t"):
            return length
    if length < 2 or 8 + length > blob.size:
        return None
    if head[8:9] not in _JSON_SPACE:
        return None
    pos = 8
    while pos < 8 + length:
        chunk = blob.read(pos, min(_SPACE_CHUNK, 8 + length - pos))
        stripped = chunk.lstrip(b" \t\r\n")
        if stripped:
            return length if stripped[:1] == b"{" else None
        pos += len(chunk)
    return None


def looks_like_text(head: bytes) -> bool:
    """Return True if the bytes are plausibly UTF-8 text (no NUL, decodes cleanly)."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3 and exc.reason.startswith("unexpected end")
    return True


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


# ONNX ModelProto fields and their wire types (1 = ir_version varint, 2-6 strings, 7 graph,
# 8 opset_import, 14 metadata_props, 20 training_info, 25 functions, 26 configuration).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def looks_like_onnx(head: bytes) -> bool:
    """Return True if the bytes start like an ONNX ModelProto (ir_version, then known fields)."""
    if len(head) < 4 or head[0] != 0x08:
        return False
    pos = 0
    fields = 0
    while pos < len(head) and fields < 4:
        tag = _varint(head, pos)
        if tag is None:
            break
        key, pos = tag
        number, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(number) != wire:
            return False
        if wire == 0:
            val = _varint(head, pos)
            if val is None:
                break
            if number == 1 and not 1 <= val[0] <= 64:
                return False
            pos = val[1]
        else:
            length = _varint(head, pos)
            if length is None:
                break
            pos = length[1] + length[0]
        fields += 1
    return fields >= 2


# What a file-name extension claims the content is; a contradiction is MG201.
_CLAIMS: dict[str, frozenset[str]] = {}
for _exts, _formats in (
    ((".pkl", ".pickle", ".joblib", ".dill"), {"pickle", "zip", "tar", "compressed"}),
    ((".pt", ".pth", ".ckpt"), {"pickle", "zip", "tar", "compressed"}),
    ((".safetensors",), {"safetensors"}),
    ((".gguf",), {"gguf"}),
    ((".onnx",), {"onnx"}),
    ((".h5", ".hdf5"), {"hdf5"}),
    ((".npy",), {"numpy"}),
    ((".npz", ".zip", ".keras"), {"zip"}),
    ((".tar",), {"tar"}),
    ((".gz", ".tgz"), {"compressed"}),
    ((".bz2", ".xz", ".lzma"), {"compressed"}),
    (
        (".json", ".txt", ".md", ".yaml", ".yml", ".csv", ".py", ".cfg", ".ini", ".jinja"),
        {"text"},
    ),
):
    for _ext in _exts:
        _CLAIMS[_ext] = frozenset(_formats)


def extension_claim(name: str) -> frozenset[str] | None:
    """Return the content formats a file name's extension admits, or None if it claims none."""
    dot = name.rfind(".")
    slash = name.rfind("/")
    if dot <= slash + 1:
        return None
    return _CLAIMS.get(name[dot:].lower())


_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_EOCD = b"PK\x05\x06"
_ZIP_TAIL = 22 + 0xFFFF  # the end-of-central-directory record plus the longest comment


def zip_candidate(blob: Blob) -> bool:
    """Return True if the blob starts with a zip local header or ends with an EOCD record.

    Two small reads; `modelguard.formats.zipread.read_zip` decides for real.
    """
    if blob.read(0, 4) == _ZIP_LOCAL:
        return True
    tail_start = max(0, blob.size - _ZIP_TAIL)
    return _ZIP_EOCD in blob.read(tail_start, blob.size - tail_start)


def tar_candidate(head: bytes) -> bool:
    """Return True if a 512-byte first block is a ustar/GNU header or a valid v7 header."""
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    # v7: the checksum field holds the octal sum of the header with the field read as
    # spaces; some old tars summed signed chars (the rule tarfile.calc_chksums applies).
    field = head[148:156].replace(b"\x00", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    stored = int(field, 8)
    rest = head[:148] + b" " * 8 + head[156:512]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for c in rest if c > 127)
    return head[0] != 0 and stored in (unsigned, signed)


# First bytes of every wrapper `modelguard.formats.compress` knows: gzip, bz2 ("BZh"), xz,
# lzma-alone (0x5d), joblib "ZF", lz4, zstd (0x28), 7z ("7"), and zlib (CMF with CM = 8).
_WRAPPER_FIRST = frozenset(b"\x1f\xfd\x5d\x04\x02\x28BZ7") | frozenset(range(0x08, 0x80, 0x10))


def wrapper_candidate(head: bytes) -> bool:
    """Return True if the first byte could start a compressed wrapper (a cheap pre-screen)."""
    return bool(head) and head[0] in _WRAPPER_FIRST
