"""Reading image files, their integrity checked: a damaged frame is an error, never a grey crop.

OpenCV decodes a truncated JPEG without an error (the missing part comes out grey, and libjpeg's
only trace is a nameless "Premature end of JPEG file" on stderr). `read_frame_bgr` checks the
file's structure first -- a JPEG must end with its end-of-image marker, a PNG with its IEND
chunk -- then decodes it, so a damaged file raises `CorruptImageError` naming it. The check reads
a few bytes of the data already in memory: its cost is measured in bench/bench_data.py.
"""
import cv2
import numpy as np

from mvn.errors import CAPFError

# How a full frame is read: as the released dataset does (an EXIF orientation tag is ignored).
FRAME_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
TAIL_BYTES = 64  # how far from the end an end marker may stand (padding after it is allowed)


class ImageError(CAPFError):
    """An image that cannot be used; the message names the file (and the record, where known)."""


class MissingImageError(ImageError, FileNotFoundError):
    """An image file that is not there."""


class CorruptImageError(ImageError):
    """An image file that is there but damaged (truncated, or not decodable)."""


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


def decode_image(data, flags=FRAME_READ_FLAGS):
    """Encoded bytes (a uint8 array) -> (image (H, W, 3) uint8 BGR, None), or (None, why it is
    damaged)."""
    problem = image_problem(data)
    if problem is not None:
        return None, problem
    image = cv2.imdecode(np.asarray(data, dtype=np.uint8), flags)
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
