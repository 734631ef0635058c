"""The SHA-256 of a checkpoint, kept inside the file: written at save (mvn.checkpoint), checked
at every load (mvn.models.weights.read_weights_file).

Why in the zip comment. `torch.save` writes a zip archive whose last record (the "end of
central directory", 22 bytes) may carry a comment of up to 65535 bytes that every zip reader,
`torch.load` included, skips. Our comment is `CAPF-SHA256:` + the hex SHA-256 of every byte
before it (76 bytes). So:
- the file stays one file: copying or hard-linking `last.bin` / `best_epoch.bin` carries its
  checksum (a sidecar file could be lost, or be renamed out of step with its checkpoint);
- `torch.load(weights_only=True)` reads it unchanged, the key set stays the released one
  ({'epoch', 'lr', 'model', 'optimizer'} for `best_epoch.bin`), and a file from before (the
  published `best_epoch.bin`, or one this project wrote before the checksum) simply has no
  comment and loads as before;
- the digest is over the file's bytes, tensor data included, computed in one sequential read
  of a file that is still in the page cache (bench/bench_checkpoint.py measures it), rather
  than over a second, canonical serialisation of the state, which would cost a copy of every
  tensor and a format of its own to keep stable.

Reading: a file whose end is our record is verified (a mismatch is damage: a flipped bit
anywhere, the record's own bytes included). A zip whose end is any other complete record (no
comment, or a comment of another length: someone else's) has no checksum of ours and is left to
torch.load. A zip with no complete end record (cut short, or its end damaged) is damaged. A
file that is no zip at all (PyTorch's legacy format, or something else) is left to torch.load,
which refuses what it cannot read. An empty file is damaged.
"""
import hashlib
import logging
import os
import struct

logger = logging.getLogger(__name__)

MAGIC = b"CAPF-SHA256:"
COMMENT_BYTES = len(MAGIC) + 64          # the magic and the hex digest
END_RECORD = b"PK\x05\x06"               # zip "end of central directory" signature
END_RECORD_BYTES = 22                    # without its comment
ZIP_START = b"PK\x03\x04"                # a zip's first local file header
CHUNK_BYTES = 8 << 20


class ChecksumError(Exception):
    """The file's bytes are not those written at save; the message says what is wrong."""


def _sha256(handle, length):
    """SHA-256 of the first `length` bytes of an open binary file."""
    digest = hashlib.sha256()
    handle.seek(0)
    left = length
    while left > 0:
        chunk = handle.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise ChecksumError("it is shorter than it was a moment ago (being written?)")
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest().encode("ascii")


def add_checksum(path):
    """Append our comment to the zip that torch.save just wrote at `path` (no comment yet)."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - END_RECORD_BYTES, 0))
        end = handle.read(END_RECORD_BYTES)
        if len(end) < END_RECORD_BYTES or end[:4] != END_RECORD or end[-2:] != b"\0\0":
            raise ValueError("%s does not end as torch.save's zip archives do" % path)
        handle.seek(size - 2)
        handle.write(struct.pack("<H", COMMENT_BYTES))   # the comment's length is hashed too
        handle.flush()
        digest = _sha256(handle, size)
        handle.seek(size)
        handle.write(MAGIC + digest)


def verify_checksum(path):
    """True when `path` carries our checksum and it matches, False when it has none of ours
    (a published file, or one written before; torch.load judges it). Raises ChecksumError
    (empty, cut short, or bytes changed since the save)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            raise ChecksumError("it is empty (0 bytes)")
        tail_bytes = min(size, END_RECORD_BYTES + 0xFFFF)
        handle.seek(size - tail_bytes)
        tail = handle.read(tail_bytes)
        handle.seek(0)
        is_zip = handle.read(4) == ZIP_START
        ours = END_RECORD_BYTES + COMMENT_BYTES
        if (len(tail) >= ours and tail[-ours:-ours + 4] == END_RECORD
                and struct.unpack("<H", tail[-COMMENT_BYTES - 2:-COMMENT_BYTES])[0]
                == COMMENT_BYTES):
            comment = tail[-COMMENT_BYTES:]
            if comment[:len(MAGIC)] != MAGIC:
                raise ChecksumError("its checksum record is damaged")
            if _sha256(handle, size - COMMENT_BYTES) != comment[len(MAGIC):]:
                raise ChecksumError("its SHA-256 differs from the one written when it was saved "
                                    "(bytes changed since)")
            return True
    if _foreign_end_record(tail):
        logger.debug("%s carries no checksum of this project: not verified", path)
        return False
    if is_zip:
        raise ChecksumError("it is cut short or its end is damaged (no complete zip end record)")
    logger.debug("%s is not a zip archive: no checksum to verify", path)
    return False


def _foreign_end_record(tail):
    """True when `tail` (the file's last bytes) ends with a complete zip end record whose
    comment, of another length than ours, runs exactly to the end of the file."""
    position = tail.rfind(END_RECORD)
    while position >= 0:
        if position + END_RECORD_BYTES <= len(tail):
            length = struct.unpack("<H", tail[position + 20:position + 22])[0]
            if position + END_RECORD_BYTES + length == len(tail):
                return length != COMMENT_BYTES
        position = tail.rfind(END_RECORD, 0, position)
    return False
