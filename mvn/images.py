"""Reading image files, their integrity checked: a damaged frame is an error, never a grey crop.

OpenCV decodes a damaged JPEG without an error: a truncated file comes out partly grey, bytes
zeroed or overwritten in the middle give a displaced stripe, and libjpeg's only trace is a
nameless "Premature end of JPEG file" or "Corrupt JPEG data: ..." on stderr. `decode_image`
checks the file's structure first -- a JPEG must end with its end-of-image marker, a PNG with its
IEND chunk -- then decodes it while catching libjpeg's own verdict (`decode_jpeg_checked`: its
warnings on damaged data), so `read_frame_bgr` raises `CorruptImageError` naming the file.

Why libjpeg's verdict, read from file descriptor 2 (measured, bench/bench_data.py and
docs/fidelity.md): JPEG has no checksum. Zeroed bytes never form a marker, so no scan of the
entropy-coded data sees them; Pillow's decoder silences libjpeg's warnings and returned every
zeroed test file without an error; only a full Huffman decode finds the stream that ends too
early or too late, and libjpeg is the decoder that does it. The capture is a lock and five
system calls: the whole check measured 9.6 us per full frame, 0.3% of its decode
(bench/RESULTS.md).
"""
import atexit
import contextlib
import os
import tempfile
import threading

import cv2
import numpy as np

from mvn.errors import CAPFError

# How a full frame is read: as the released dataset does (an EXIF orientation tag is ignored).
FRAME_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
TAIL_BYTES = 64  # how far from the end an end marker may stand (padding after it is allowed)
# libjpeg's warnings that mean damaged data (jerror.h: JWRN_HIT_MARKER, JWRN_EXTRANEOUS_DATA,
# JWRN_HUFF_BAD_CODE, JWRN_MUST_RESYNC, JWRN_ARITH_BAD_CODE, JWRN_JPEG_EOF, JWRN_BOGUS_PROGRESSION).
# Its other warnings (e.g. an unknown JFIF revision) are passed on to stderr as before.
LIBJPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file",
                  "Inconsistent progression sequence")
_DAMAGE_BYTES = tuple(message.encode() for message in LIBJPEG_DAMAGE)


class ImageError(CAPFError):
    """An image that cannot be used; the message names the file (and the record, where known)."""


class MissingImageError(ImageError, FileNotFoundError):
    """An image file that is not there."""


class CorruptImageError(ImageError):
    """An image file that is there but damaged (truncated, corrupt data, or not decodable)."""


def image_problem(data):
    """Why the encoded image `data` (bytes or a uint8 array) is damaged, or None if it looks whole.

    JPEG: the start-of-image marker, and the end-of-image marker among the last bytes (only zero
    padding may follow it). PNG: the signature and the IEND chunk at the end. Other formats: only
    what decoding finds."""
    head = bytes(data[:8])
    if head[:2] == JPEG_START:
        tail = bytes(data[-TAIL_BYTES:]).rstrip(b"\x00")
        if not tail.endswith(JPEG_END):
            return "truncated JPEG (no end-of-image marker)"
    elif head == PNG_START:
        if not bytes(data[-TAIL_BYTES:]).endswith(PNG_END):
            return "truncated PNG (no IEND chunk)"
    return None


# ----------------------------------------------------------------------------------------------
# libjpeg's warnings: OpenCV lets libjpeg print them on stderr (C stdio, unbuffered), so during a
# decode file descriptor 2 points at a private in-memory file. One decode at a time per process
# (a lock); whatever else reaches fd 2 meanwhile (another thread's output) is written on to the
# real stderr afterwards, never lost. A forked child (a DataLoader worker) makes its own file.

class _Capture:
    lock = threading.Lock()
    fd = None           # the in-memory file fd 2 points at during a decode


def _reset_after_fork():
    _Capture.lock = threading.Lock()
    if _Capture.fd is not None:
        os.close(_Capture.fd)       # shared with the parent: never write into its file
        _Capture.fd = None


def _finish_captures():
    """At exit: let a decode running in another thread (demo.py reads frames in one) end, so
    what reached stderr meanwhile -- e.g. the program's last error line -- is passed on before
    the process ends; no decode starts after it."""
    _Capture.lock.acquire(timeout=10)


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_finish_captures)


def _capture_fd():
    if _Capture.fd is None:
        if hasattr(os, "memfd_create"):
            _Capture.fd = os.memfd_create("mvn-libjpeg-messages", os.MFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            _Capture.fd = os.dup(tempfile.TemporaryFile().fileno())
    return _Capture.fd


@contextlib.contextmanager
def _stderr_into(fd):
    """fd 2 points at `fd` inside the block (it may be closed, e.g. in a daemon)."""
    try:
        saved = os.dup(2)
    except OSError:
        saved = None
    os.dup2(fd, 2)
    try:
        yield
    finally:
        if saved is None:
            os.close(2)
        else:
            os.dup2(saved, 2)
            os.close(saved)


def _take_printed(fd):
    """The bytes written into the capture file since the last call; the file emptied."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b""
    data = os.pread(fd, size, 0)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return data


def decode_jpeg_checked(data, flags=FRAME_READ_FLAGS):
    """cv2.imdecode of the JPEG `data` (a uint8 array) -> (image or None, libjpeg's complaint
    about damaged data or None). Other text printed meanwhile goes on to stderr."""
    with _Capture.lock:
        fd = _capture_fd()
        try:
            with _stderr_into(fd):
                image = cv2.imdecode(data, flags)
        finally:
            lines = _take_printed(fd).splitlines(keepends=True)
            damage = [line.decode("utf-8", "replace").strip() for line in lines
                      if line.startswith(_DAMAGE_BYTES)]
            others = b"".join(line for line in lines if not line.startswith(_DAMAGE_BYTES))
            with contextlib.suppress(OSError):   # fd 2 closed: nowhere to pass it on
                while others:                    # passed on byte for byte
                    others = others[os.write(2, others):]
    return image, ("; ".join(damage) or None)


def decode_image(data, flags=FRAME_READ_FLAGS):
    """Encoded bytes (a uint8 array) -> (image (H, W, 3) uint8 BGR, None), or (None, why it is
    damaged): its structure (image_problem), then the decode, a JPEG's with libjpeg's verdict."""
    problem = image_problem(data)
    if problem is not None:
        return None, problem
    data = np.asarray(data, dtype=np.uint8)
    if bytes(data[:2]) == JPEG_START:
        image, complaint = decode_jpeg_checked(data, flags)
        if complaint is not None:
            return None, "corrupt JPEG (libjpeg: %s)" % complaint.replace("Corrupt JPEG data: ", "")
    else:
        image = cv2.imdecode(data, flags)
    if image is None:
        return None, "not a decodable image"
    return image, None


def read_frame_bgr(path, flags=FRAME_READ_FLAGS):
    """(H, W, 3) uint8 BGR image at `path`, checked; raises MissingImageError or
    CorruptImageError naming the file. `flags`: OpenCV's imread flags (default: as the released
    dataset reads frames)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MissingImageError("image %s does not exist" % path) from None
    except OSError as error:
        raise MissingImageError("image %s cannot be read (%s)" % (path, error)) from None
    if len(data) == 0:
        raise CorruptImageError("image %s is empty (0 bytes)" % path)
    image, problem = decode_image(data, flags)
    if image is None:
        raise CorruptImageError("image %s is damaged: %s" % (path, problem))
    return image
