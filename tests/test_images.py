"""mvn.images: damaged frames are errors naming the file, never grey crops."""
import cv2
import numpy as np
import pytest

from mvn.images import CorruptImageError, MissingImageError, image_problem, read_frame_bgr


def write_jpeg(path, size=(120, 160)):
    image = np.random.default_rng(0).integers(0, 255, size + (3,), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return image


def test_a_whole_jpeg_and_png_read_as_opencv_reads_them(tmp_path):
    write_jpeg(tmp_path / "a.jpg")
    expected = cv2.imread(str(tmp_path / "a.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert np.array_equal(read_frame_bgr(str(tmp_path / "a.jpg")), expected)
    png = np.zeros((10, 12, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), png)
    assert np.array_equal(read_frame_bgr(str(tmp_path / "b.png")), png)
    padded = (tmp_path / "a.jpg").read_bytes() + b"\x00" * 16   # padding after the end marker
    (tmp_path / "padded.jpg").write_bytes(padded)
    assert np.array_equal(read_frame_bgr(str(tmp_path / "padded.jpg")), expected)


@pytest.mark.parametrize("name, cut", [("a.jpg", 0.5), ("a.jpg", 0.98), ("b.png", 0.7)])
def test_a_truncated_image_is_refused_although_opencv_decodes_it(tmp_path, name, cut):
    if name.endswith(".jpg"):
        write_jpeg(tmp_path / name)
    else:
        cv2.imwrite(str(tmp_path / name), np.full((40, 50, 3), 7, np.uint8))
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[:int(len(data) * cut)])
    if name.endswith(".jpg"):  # OpenCV itself returns a (partly grey) picture without an error
        assert cv2.imread(str(tmp_path / name)) is not None
    with pytest.raises(CorruptImageError, match="%s is damaged: truncated" % name):
        read_frame_bgr(str(tmp_path / name))


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(MissingImageError, match="nowhere.jpg does not exist"):
        read_frame_bgr(str(tmp_path / "nowhere.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(CorruptImageError, match="empty"):
        read_frame_bgr(str(tmp_path / "empty.jpg"))
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError, match="not a decodable image"):
        read_frame_bgr(str(tmp_path / "text.jpg"))
    assert image_problem(np.frombuffer(b"\xff\xd8" + b"x" * 100, np.uint8)).startswith("truncated")
