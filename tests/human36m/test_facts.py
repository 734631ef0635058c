"""mvn.human36m.facts: names of sequences, frames and trials, and their inverses."""
import numpy as np

from mvn.human36m import facts as h36m


def test_image_names_and_their_parse_are_inverses():
    names = [h36m.image_name(9, 2, 1, 0, 1), h36m.image_name(11, 16, 2, 3, 1383)]
    assert names == ["s_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_000001.jpg",
                     "s_11_act_16_subact_02_ca_04/s_11_act_16_subact_02_ca_04_001383.jpg"]
    assert h36m.frame_numbers(np.array(names, dtype=np.bytes_)).tolist() == [1, 1383]
    folder = names[1].split("/")[0]
    assert h36m.parse_sequence_name(folder) == (11, 16, 2, 3)
    assert h36m.parse_sequence_name("S11/Videos") is None
    assert h36m.frame_file_pattern(folder) % 1383 == names[1].split("/")[1]


def test_trial_names_and_label_files():
    assert h36m.trial_name(2, 1) == "Directions-1" and h36m.trial_name(16, 2) == "WalkingTogether-2"
    assert h36m.ACTIONS == tuple(range(2, 17)) and len(h36m.ACTION_NAMES) == 15
    assert h36m.LABEL_FILES == {"train": "h36m_train.pkl", "val": "h36m_validation.pkl"}
    assert h36m.TRAIN_SUBJECTS == (1, 5, 6, 7, 8) and h36m.TEST_SUBJECTS == (9, 11)


def test_detection_file_names_try_the_renamed_actions():
    assert h36m.detection_names(1, 2, 1) == ("Directions 1",)
    photo = h36m.detection_names(1, 12, 1)   # TakingPhoto -> Photo in VideoPose3D's file
    assert len(photo) == 2 and photo[0].startswith("TakingPhoto") and photo[1].startswith("Photo")
    dog = h36m.detection_names(1, 15, 1)     # WalkingDog -> WalkDog
    assert len(dog) == 2 and dog[1].startswith("WalkDog")


def test_calibration_and_resolutions():
    assert h36m.resolution(0) == (1000, 1002) and h36m.resolution(1) == (1000, 1000)
    camera = h36m.camera(1, 0)
    assert np.asarray(camera["R"]).shape == (3, 3) and len(camera["f"]) == 2
