"""mvn.datasets.labels: label pickles read safely and held as columns."""
import os
import pickle

import numpy as np
import pytest

from mvn.datasets.labels import LabelError, load_label_columns, read_label_pickle


def record(frame, center=(500.25, 400.125)):
    return {"image": "s_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_%06d.jpg" % frame,
            "joints_2d_cpn": np.full((17, 2), 0.1 * frame, np.float32),
            "joints_2d_cpn_crop": np.full((17, 2), frame, np.float32),
            "joints_3d": np.full((17, 3), 0.01 * frame), "center": center,
            "scale": (np.float64(2.0000000001), np.float64(2.5)), "subject": 9, "action": 2,
            "subaction": 1, "camera_id": 0}


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
    np.testing.assert_array_equal(columns.keypoints_2d_crop[:, 0, 0], [1, 2, 3, 4, 5, 6])
    strided = load_label_columns(path, frame_stride=4)
    np.testing.assert_array_equal(strided.keypoints_2d_crop[:, 0, 0], [1, 5])


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
