"""mvn.human36m.labels: label pickles read safely and held as columns."""
import os
import pickle

import numpy as np
import pytest

from mvn import geometry
from mvn.datasets.label_files import LabelError
from mvn.human36m import facts as h36m
from mvn.human36m.labels import load_label_columns, read_label_pickle


def record(frame, center=(500.25, 400.125), crop_shape=geometry.CROP_SHAPE):
    """A label record whose crop keypoints are those of a `crop_shape` crop of its box."""
    joints_2d = np.linspace(-0.5, 0.5, 34).reshape(17, 2).astype(np.float32) * 0.1 * frame
    scale = (np.float64(2.0000000001), np.float64(2.5))
    width, height = h36m.resolution(0)
    affine = geometry.get_affine_transform(np.asarray(center), np.asarray(scale), crop_shape)
    joints_crop = geometry.affine_transform_points(
        geometry.image_coordinates(joints_2d.astype(np.float64), width, height), affine)
    return {"image": "s_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_%06d.jpg" % frame,
            "joints_2d_cpn": joints_2d, "joints_2d_cpn_crop": joints_crop.astype(np.float32),
            "joints_3d": np.full((17, 3), 0.01 * frame), "center": center, "scale": scale,
            "subject": 9, "action": 2, "subaction": 1, "camera_id": 0}


def write(path, records):
    with open(path, "wb") as f:
        pickle.dump(records, f)
    return str(path)


def test_columns_keep_the_order_values_and_float64_boxes(tmp_path):
    path = write(tmp_path / "labels.pkl", [record(i + 1) for i in range(6)])
    columns = load_label_columns(path)
    assert len(columns) == 6 and columns.keypoints_3d.shape == (6, 17, 3)
    assert columns.center.dtype == np.float64 and columns.scale[0, 0] == 2.0000000001
    assert columns.image[5].decode().endswith("_000006.jpg")
    np.testing.assert_array_equal(columns.keypoints_3d[:, 0, 0],
                                  np.float32([0.01, 0.02, 0.03, 0.04, 0.05, 0.06]))
    strided = load_label_columns(path, frame_stride=4)
    np.testing.assert_array_equal(strided.keypoints_3d[:, 0, 0], np.float32([0.01, 0.05]))
    np.testing.assert_array_equal(strided.keypoints_2d_crop, columns.keypoints_2d_crop[[0, 4]])


def test_a_label_file_of_another_crop_size_is_refused(tmp_path):
    path = write(tmp_path / "labels.pkl", [record(i + 1, crop_shape=(384, 288)) for i in range(4)])
    with pytest.raises(LabelError, match="not made for the 256x192 crops.*generate_labels_h36m"):
        load_label_columns(path)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo never",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = write(tmp_path / "evil.pkl", [RunsCode()])
    with pytest.raises(LabelError, match="refusing to load posix.system|refusing to load os.system"):
        read_label_pickle(path)


def test_wrong_kind_truncated_and_missing_files_are_one_clear_error(tmp_path):
    wrong = write(tmp_path / "coco.pkl", [{"image": "a.jpg", "keypoints": np.zeros((17, 3))}])
    with pytest.raises(LabelError, match="not a CA-PF Human3.6M label file.*joints_3d"):
        load_label_columns(wrong)
    good = write(tmp_path / "good.pkl", [record(1), record(2)])
    with open(good, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(LabelError, match="truncated"):
        load_label_columns(str(truncated))
    with pytest.raises(LabelError, match="does not exist.*generate_labels_h36m.py"):
        load_label_columns(str(tmp_path / "missing.pkl"))
    with pytest.raises(LabelError, match="shape"):
        bad = record(1)
        bad["joints_3d"] = np.zeros((16, 3))
        load_label_columns(write(tmp_path / "bad.pkl", [bad, bad]))


@pytest.mark.parametrize("field, value, reason", [
    ("joints_3d", np.nan, "joints_3d is not finite"),
    ("joints_3d", np.inf, "joints_3d is not finite"),
    ("joints_2d_cpn", np.nan, "joints_2d_cpn is not finite"),
    ("joints_2d_cpn", -np.inf, "joints_2d_cpn is not finite"),
    ("joints_2d_cpn_crop", np.nan, "joints_2d_cpn_crop is not finite"),
    ("joints_2d_cpn_crop", np.inf, "joints_2d_cpn_crop is not finite")])
def test_a_non_finite_value_names_its_record_and_image(tmp_path, field, value, reason):
    records = [record(i + 1) for i in range(8)]
    records[5][field] = records[5][field].copy()
    records[5][field][3, 1] = value
    path = write(tmp_path / "labels.pkl", records)
    with pytest.raises(LabelError) as error:
        load_label_columns(path, frame_stride=4)   # the strided view still names file records
    message = str(error.value)
    assert "1 of 8 records are unusable" in message
    assert "record 5 (s_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_000006.jpg): " \
           + reason in message
    assert "dataset.bad_records=drop" in message and "\n" not in message


def test_bad_records_can_be_dropped_and_are_reported(tmp_path, caplog):
    records = [record(i + 1) for i in range(6)]
    records[1]["joints_3d"] = np.full((17, 3), np.nan)
    records[4]["action"] = 17                       # no such action
    records[3]["center"] = (np.inf, 3.0)
    path = write(tmp_path / "labels.pkl", records)
    with pytest.raises(LabelError, match="3 of 6 records are unusable"):
        load_label_columns(path)
    columns = load_label_columns(path, bad_records="drop")
    assert columns.record.tolist() == [0, 2, 5]    # each row keeps its record in the file
    assert "dropped 3 of 6 unusable records" in caplog.text
    assert "record 4 (" in caplog.text and "out of range" in caplog.text
    assert "record 3 (" in caplog.text and "box" in caplog.text


@pytest.mark.parametrize("image", ["../../etc/passwd", "/abs/frame.jpg",
                                   "s_09/../../outside.jpg", "..\\windows.jpg"])
def test_an_image_path_leaving_the_root_is_an_error_unless_allowed(tmp_path, image):
    records = [record(1), record(2)]
    records[1]["image"] = image
    path = write(tmp_path / "labels.pkl", records)
    with pytest.raises(LabelError, match="record 1 .*leaves dataset.root"):
        load_label_columns(path)
    columns = load_label_columns(path, allow_images_outside_root=True)
    assert columns.image[1].decode() == image
