"""The released code's crop arithmetic, written out step by step for the tests to compare with.

Independent of mvn.geometry on purpose: each line below is one numpy operation of the released
pipeline, with numpy's own dtype rules (docs/fidelity.md, "Crop").
"""
import cv2
import numpy as np


def released_affine(center, scale, crop_width=192, crop_height=256):
    """The released get_affine_transform(center, scale, rot=0, (192, 256))."""
    center = np.array(center)                 # float64 from the label file, float32 if cast
    box_px = np.array(scale) * 200.0
    source_step = np.array([0, (box_px[0] - 1) * -0.5], np.float32)   # rounded to float32
    target_step = np.array([0, (crop_width - 1) * -0.5], np.float32)
    source = np.zeros((3, 2), np.float32)
    target = np.zeros((3, 2), np.float32)
    source[0] = center + box_px * np.zeros(2, np.float32)
    source[1] = center + source_step + box_px * np.zeros(2, np.float32)
    target[0] = [(crop_width - 1) * 0.5, (crop_height - 1) * 0.5]
    target[1] = np.array([(crop_width - 1) * 0.5, (crop_height - 1) * 0.5]) + target_step
    for points in (source, target):
        d = points[0] - points[1]
        points[2] = points[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(np.float32(source), np.float32(target))


def released_crop(image, center, scale):
    """The released crop_image: bilinear warp to 192 x 256, default (zero) border."""
    return cv2.warpAffine(image, released_affine(center, scale), (192, 256),
                          flags=cv2.INTER_LINEAR)


def released_crop_keypoints(points_px, matrix):
    """The released label script: one np.dot per joint into a float32 (17, 2) array."""
    out = np.zeros([len(points_px), 2], dtype="float32")
    for j, point in enumerate(points_px):
        out[j] = np.dot(matrix, np.array([point[0], point[1], 1.0]).T)[:2]
    return out


# --- MPI-INF-3DHP: ContextPose_mpi/dataset/data_util/data_to_npz_3dhp.py (and its _test copy,
# convert_to_small.py, convert_to_small_test.py: the same three functions) ---------------------

def released_mpi_infer_box(pose3d, camera):
    """_infer_box(pose3d (17, 3), camera, 14) -> [x1, y1, x2, y2], in pose3d's dtype.

    `camera`: an entry of the released intrinsics table ('focal_length', 'center' as lists)."""
    root_joint = pose3d[14, :]
    tl_joint = root_joint.copy()
    tl_joint[0] -= 1000.0
    tl_joint[1] -= 900.0
    br_joint = root_joint.copy()
    br_joint[0] += 1000.0
    br_joint[1] += 1100.0
    corners_2d = []
    for joint in (np.reshape(tl_joint, (1, 3)), np.reshape(br_joint, (1, 3))):
        pose2d = joint[:, :2] / joint[:, 2:3]                  # _weak_project, in place
        pose2d[:, 0] *= camera["focal_length"][0]
        pose2d[:, 1] *= camera["focal_length"][1]
        pose2d[:, 0] += camera["center"][0]
        pose2d[:, 1] += camera["center"][1]
        corners_2d.append(pose2d.flatten())
    tl2d, br2d = corners_2d
    return np.array([tl2d[0], tl2d[1], br2d[0], br2d[1]])


def released_mpi_center_scale(pose3d, camera):
    """The label and crop scripts' c and s: tuples of numpy scalars of the box's dtype."""
    box = released_mpi_infer_box(pose3d, camera)
    c = (0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]))
    s = ((box[2] - box[0]) / 200.0, (box[3] - box[1]) / 200.0)
    return c, s


def released_mpi_crop_keypoints(data_2d, data_3d, camera):
    """data_2d_crop as the label scripts make it: a copy of data_2d (its dtype), each joint
    replaced by affine_transform(pt, get_affine_transform(c, s, 0, [192, 256])) (the MPI copy
    of get_affine_transform is the same function as released_affine's)."""
    data_2d_crop = np.copy(data_2d)
    for i in range(data_2d.shape[0]):
        c, s = released_mpi_center_scale(data_3d[i], camera)
        trans = released_affine(c, s)
        for j in range(data_2d.shape[1]):
            pt = data_2d[i, j]
            new_pt = np.array([pt[0], pt[1], 1.]).T
            data_2d_crop[i, j] = np.dot(trans, new_pt)[:2]
    return data_2d_crop


def released_mpi_crop_image(image, pose3d, camera):
    """convert_to_small(_test).py on one full frame: warpAffine to 192 x 256, INTER_LINEAR."""
    c, s = released_mpi_center_scale(pose3d, camera)
    return cv2.warpAffine(image, released_affine(c, s), (192, 256), flags=cv2.INTER_LINEAR)
