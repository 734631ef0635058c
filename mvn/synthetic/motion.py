"""A 32-joint Human3.6M skeleton that moves plausibly per action (for the synthetic release).

World frame as in Human3.6M: millimetres, z up, floor at z = 0, the capture area around the origin.
Body frame of the rest pose: x to the subject's left, y forward, z up. Joint order and parents are
the release's 32 joints (VideoPose3D's `h36m_skeleton`); joints that coincide in the release
(11 with 0; 13, 16 and 24) coincide here too.
"""
import numpy as np

PARENTS = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22,
           12, 24, 25, 26, 27, 28, 27, 30)
NUM_JOINTS_32 = len(PARENTS)

# Offset of each joint from its parent in the rest pose (body frame, mm, a 1.75 m adult).
REST_OFFSETS_MM = np.array([
    [0, 0, 0],                                                         # 0 pelvis (root)
    [-135, 0, -10], [0, 0, -445], [0, 0, -440], [0, 135, -65], [0, 60, 0],   # 1-5 right leg
    [135, 0, -10], [0, 0, -445], [0, 0, -440], [0, 135, -65], [0, 60, 0],    # 6-10 left leg
    [0, 0, 0], [0, 10, 235], [0, 0, 245], [0, 70, 110], [0, -40, 120],       # 11-15 spine, head
    [0, 0, 245], [150, 0, -15], [0, 0, -280], [0, 0, -245],                  # 16-19 left arm
    [-10, 30, -45], [0, 15, -25], [0, 0, -85], [0, 0, -20],                  # 20-23 left hand
    [0, 0, 245], [-150, 0, -15], [0, 0, -280], [0, 0, -245],                 # 24-27 right arm
    [10, 30, -45], [0, 15, -25], [0, 0, -85], [0, 0, -20],                   # 28-31 right hand
], dtype=np.float64)

# Bones whose length varies together per subject (left and right alike).
_BONE_GROUPS = {"hip": (1, 6), "thigh": (2, 7), "shin": (3, 8), "foot": (4, 9, 5, 10),
                "spine": (12,), "chest": (13, 16, 24), "neck": (14,), "head": (15,),
                "shoulder": (17, 25), "upper_arm": (18, 26), "forearm": (19, 27),
                "hand": (20, 21, 22, 23, 28, 29, 30, 31)}
FOOT_JOINTS = (3, 4, 5, 8, 9, 10)
SOLE_MM = 25.0   # height of the lowest foot point above the floor


def subject_body(rng):
    """Per-subject offsets (32, 3) mm and a girth factor: height 1.58-1.86 m, bones +-4 %."""
    height_scale = rng.uniform(0.90, 1.06)
    offsets = REST_OFFSETS_MM * height_scale
    for joints in _BONE_GROUPS.values():
        offsets[list(joints)] *= rng.uniform(0.96, 1.04)
    return offsets, rng.uniform(0.9, 1.12)


# --- rotations ---------------------------------------------------------------------------------

def rot_x(angle):
    """(T,) radians -> (T, 3, 3)."""
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(angle):
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(angle):
    c, s, o, z = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def forward_kinematics(offsets_mm, local_rotations, root_rotation, root_position_mm):
    """Joint positions (T, 32, 3): p_j = p_parent + W_parent @ offset_j, W_j = W_parent @ L_j.

    offsets_mm (32, 3); local_rotations {joint: (T, 3, 3)} (identity where absent);
    root_rotation (T, 3, 3) body -> world; root_position_mm (T, 3).
    """
    frames = root_position_mm.shape[0]
    world_rot = [None] * NUM_JOINTS_32
    positions = np.zeros((frames, NUM_JOINTS_32, 3))
    for j, parent in enumerate(PARENTS):
        local = local_rotations.get(j)
        if parent < 0:
            world_rot[j] = root_rotation if local is None else root_rotation @ local
            positions[:, j] = root_position_mm
            continue
        positions[:, j] = positions[:, parent] + world_rot[parent] @ offsets_mm[j]
        world_rot[j] = world_rot[parent] if local is None else world_rot[parent] @ local
    return positions


# --- motion ------------------------------------------------------------------------------------

def _wobble(rng, t, amplitude, period_s=(2.0, 7.0)):
    """A smooth random signal: a sum of three sines with random periods and phases."""
    out = np.zeros_like(t)
    for _ in range(3):
        out += np.sin(2 * np.pi * t / rng.uniform(*period_s) + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3.0


def _cycle(rng, t, period_s, sharpness=1.0):
    """A smooth 0..1..0 cycle (raise, hold, lower) with a random phase."""
    phase = rng.uniform(0, 2 * np.pi)
    value = 0.5 - 0.5 * np.cos(2 * np.pi * t / period_s + phase)
    return value ** sharpness


class _Pose:
    """Joint angles (degrees, (T,) each) and root motion, filled in by the action scripts."""

    def __init__(self, t):
        self.t = t
        zero = np.zeros_like(t)
        self.angles = {name: zero.copy() for name in (
            "hip_flex_l", "hip_flex_r", "hip_abd_l", "hip_abd_r", "knee_l", "knee_r",
            "shoulder_flex_l", "shoulder_flex_r", "shoulder_abd_l", "shoulder_abd_r",
            "shoulder_twist_l", "shoulder_twist_r", "elbow_l", "elbow_r",
            "spine_bend", "spine_side", "spine_twist", "chest_bend", "neck_nod", "head_yaw")}
        self.angles["shoulder_abd_l"] += 8
        self.angles["shoulder_abd_r"] += 8
        self.angles["elbow_l"] += 12
        self.angles["elbow_r"] += 12
        self.angles["knee_l"] += 4
        self.angles["knee_r"] += 4
        self.position_mm = np.zeros((len(t), 2))  # x, y on the floor
        self.yaw = zero.copy()                    # radians; 0 faces +y

    def __getitem__(self, name):
        return self.angles[name]

    def __setitem__(self, name, value):
        self.angles[name] = np.broadcast_to(value, self.t.shape).astype(np.float64)


def _stand(pose, rng, t):
    """Idle standing: weight shift, sway, looking around, drifting slowly about a spot."""
    pose.position_mm += rng.uniform(-450, 450, size=2)
    pose.position_mm[:, 0] += _wobble(rng, t, 120, (5, 12))
    pose.position_mm[:, 1] += _wobble(rng, t, 120, (5, 12))
    pose.yaw += rng.uniform(-np.pi, np.pi) + np.radians(_wobble(rng, t, 35, (6, 14)))
    shift = _wobble(rng, t, 1.0, (3, 8))
    pose["knee_l"] = pose["knee_l"] + 8 * np.clip(shift, 0, None)
    pose["knee_r"] = pose["knee_r"] + 8 * np.clip(-shift, 0, None)
    pose["hip_abd_l"] = 4 + 3 * shift
    pose["hip_abd_r"] = 4 - 3 * shift
    pose["spine_side"] = 3 * shift
    pose["spine_bend"] = 3 + _wobble(rng, t, 3)
    pose["head_yaw"] = _wobble(rng, t, 25, (3, 9))
    pose["neck_nod"] = _wobble(rng, t, 8)
    for side in "lr":
        pose["shoulder_flex_" + side] = pose["shoulder_flex_" + side] + _wobble(rng, t, 6)
        pose["elbow_" + side] = pose["elbow_" + side] + np.abs(_wobble(rng, t, 10))


def _sit(pose, rng, t, depth=1.0):
    """Seated on a chair (depth 1) or part way down; feet stay on the floor."""
    pose["hip_flex_l"] = depth * (85 + _wobble(rng, t, 5))
    pose["hip_flex_r"] = depth * (85 + _wobble(rng, t, 5))
    pose["knee_l"] = 4 + depth * (80 + _wobble(rng, t, 10))
    pose["knee_r"] = 4 + depth * (80 + _wobble(rng, t, 10))
    pose["hip_abd_l"] = 4 + depth * 6
    pose["hip_abd_r"] = 4 + depth * 6
    pose["spine_bend"] = pose["spine_bend"] + depth * (8 + _wobble(rng, t, 6))


def _hand_to_face(pose, side, amount, twist=30.0):
    """Raise a hand to the mouth / ear (amount 0..1)."""
    pose["shoulder_flex_" + side] = pose["shoulder_flex_" + side] + 35 * amount
    pose["elbow_" + side] = pose["elbow_" + side] * (1 - amount) + 140 * amount
    pose["shoulder_twist_" + side] = pose["shoulder_twist_" + side] + twist * amount


def _walk(pose, rng, t, speed_mm_s, stride_mm=1350.0):
    """Walking around an ellipse in the capture area, gait cycle matched to the speed."""
    radius = np.array([rng.uniform(900, 1200), rng.uniform(600, 850)])
    direction = rng.choice([-1.0, 1.0])
    omega = speed_mm_s / radius.mean()
    theta = rng.uniform(0, 2 * np.pi) + direction * omega * t
    centre = rng.uniform(-200, 200, size=2)
    pose.position_mm += centre + radius * np.stack([np.cos(theta), np.sin(theta)], -1)
    velocity = direction * radius * np.stack([-np.sin(theta), np.cos(theta)], -1)
    pose.yaw += np.arctan2(-velocity[:, 0], velocity[:, 1])   # face the direction of travel
    phase = 2 * np.pi * speed_mm_s / stride_mm * t + rng.uniform(0, 2 * np.pi)
    for side, offset in (("r", 0.0), ("l", np.pi)):
        p = phase + offset
        pose["hip_flex_" + side] = 6 + 24 * np.sin(p)
        pose["knee_" + side] = 5 + 50 * np.clip(np.sin(p + 0.9), 0, None) ** 1.5
        pose["shoulder_flex_" + side] = -16 * np.sin(p)     # arms swing against the leg
        pose["elbow_" + side] = 18 + 12 * np.clip(-np.sin(p), 0, None)
    pose["spine_bend"] = 5 + _wobble(rng, t, 2)
    pose["spine_twist"] = 5 * np.sin(phase)
    pose["head_yaw"] = _wobble(rng, t, 10)


def action_motion(action, t, rng):
    """Angles and root motion for one trial of `action` (2..16) at times t (T,) seconds."""
    pose = _Pose(t)
    if action in (14, 15, 16):                       # Walking, WalkingDog, WalkingTogether
        _walk(pose, rng, t, {14: 1150.0, 15: 800.0, 16: 950.0}[action])
        if action == 15:                             # bent towards the dog, leash in hand
            pose["spine_bend"] = pose["spine_bend"] + 12 + _wobble(rng, t, 6)
            pose["shoulder_flex_r"] = 40 + _wobble(rng, t, 10)
            pose["elbow_r"] = 20 + _wobble(rng, t, 8)
        if action == 16:                             # talking to the partner beside
            pose["head_yaw"] = pose["head_yaw"] + rng.choice([-25.0, 25.0])
        return pose
    _stand(pose, rng, t)
    if action == 2:                                  # Directions: pointing around
        point = _cycle(rng, t, rng.uniform(4, 6), 2.0)
        side = rng.choice(["l", "r"])
        pose["shoulder_flex_" + side] = pose["shoulder_flex_" + side] + 75 * point
        pose["shoulder_abd_" + side] = pose["shoulder_abd_" + side] + 25 * point
        pose["spine_twist"] = 15 * point * (1 if side == "l" else -1)
    elif action == 3:                                # Discussion: both hands gesturing
        for side in "lr":
            pose["shoulder_flex_" + side] = 30 + _wobble(rng, t, 18, (0.8, 2.5))
            pose["elbow_" + side] = 80 + _wobble(rng, t, 30, (0.8, 2.5))
            pose["shoulder_twist_" + side] = 20 + _wobble(rng, t, 15, (1, 3))
        pose["spine_twist"] = _wobble(rng, t, 12)
        pose["neck_nod"] = _wobble(rng, t, 10, (0.7, 2))
    elif action == 4:                                # Eating: seated, hand to mouth
        _sit(pose, rng, t)
        _hand_to_face(pose, "r", _cycle(rng, t, rng.uniform(3, 5), 2.0))
        pose["shoulder_flex_l"] = 40 + _wobble(rng, t, 8)
        pose["elbow_l"] = 75 + _wobble(rng, t, 10)
    elif action == 5:                                # Greeting: wave, then a small bow
        wave = _cycle(rng, t, rng.uniform(4, 6), 1.5)
        pose["shoulder_abd_r"] = pose["shoulder_abd_r"] + 120 * wave
        pose["shoulder_flex_r"] = pose["shoulder_flex_r"] + 20 * wave
        pose["elbow_r"] = pose["elbow_r"] + wave * (30 + 30 * np.sin(2 * np.pi * 2.0 * t))
        pose["spine_bend"] = pose["spine_bend"] + 20 * _cycle(rng, t, 7.0, 4.0)
    elif action == 6:                                # Phoning: hand at the ear, pacing slowly
        _hand_to_face(pose, "l", 1.0, twist=15.0)
        pose["shoulder_abd_l"] = pose["shoulder_abd_l"] + 20
        pose["head_yaw"] = pose["head_yaw"] + 10
        pose.position_mm[:, 0] += _wobble(rng, t, 250, (6, 12))
    elif action == 7:                                # Posing: hands on hips, arms up, T-pose
        weights = np.stack([_cycle(rng, t, p, 3.0) for p in rng.uniform(5, 9, size=3)])
        weights /= weights.sum(0) + 1e-6
        hips, up, tee = weights
        for side in "lr":
            pose["shoulder_abd_" + side] = 8 + 40 * hips + 150 * up + 82 * tee
            pose["elbow_" + side] = 12 + 95 * hips + 10 * up
            pose["shoulder_twist_" + side] = -50 * hips
        pose["hip_abd_l"] = pose["hip_abd_l"] + 8
        pose["hip_abd_r"] = pose["hip_abd_r"] + 8
    elif action == 8:                                # Purchases: bending to reach and pick
        bend = _cycle(rng, t, rng.uniform(4, 7), 1.5)
        pose["spine_bend"] = pose["spine_bend"] + 40 * bend
        pose["chest_bend"] = 10 * bend
        for side in "lr":
            pose["hip_flex_" + side] = 30 * bend
            pose["knee_" + side] = pose["knee_" + side] + 25 * bend
        pose["shoulder_flex_r"] = pose["shoulder_flex_r"] + 60 * bend
        pose["shoulder_flex_l"] = pose["shoulder_flex_l"] + 35 * bend
    elif action == 9:                                # Sitting
        _sit(pose, rng, t)
        for side in "lr":
            pose["shoulder_flex_" + side] = 25 + _wobble(rng, t, 10)
            pose["elbow_" + side] = 60 + _wobble(rng, t, 20)
    elif action == 10:                               # SittingDown: down to the floor and up
        depth = _cycle(rng, t, rng.uniform(6, 9), 1.0)
        for side in "lr":
            pose["hip_flex_" + side] = 105 * depth + _wobble(rng, t, 4)
            pose["knee_" + side] = pose["knee_" + side] + 125 * depth
            pose["hip_abd_" + side] = pose["hip_abd_" + side] + 12 * depth
            pose["shoulder_flex_" + side] = pose["shoulder_flex_" + side] + 35 * depth
            pose["elbow_" + side] = pose["elbow_" + side] + 40 * depth
        pose["spine_bend"] = pose["spine_bend"] + 25 * depth
    elif action == 11:                               # Smoking: hand to mouth, other arm across
        _hand_to_face(pose, "r", _cycle(rng, t, rng.uniform(5, 8), 3.0))
        pose["shoulder_flex_l"] = 20 + _wobble(rng, t, 5)
        pose["elbow_l"] = 95 + _wobble(rng, t, 8)
        pose["shoulder_twist_l"] = 55
    elif action == 12:                               # TakingPhoto: camera at the face
        for side in "lr":
            _hand_to_face(pose, side, 0.85 + 0.15 * _cycle(rng, t, 3.0), twist=40.0)
        crouch = _cycle(rng, t, rng.uniform(6, 9), 4.0)
        for side in "lr":
            pose["hip_flex_" + side] = 35 * crouch
            pose["knee_" + side] = pose["knee_" + side] + 60 * crouch
        pose["neck_nod"] = pose["neck_nod"] + 10
    elif action == 13:                               # Waiting: arms crossed, looking around
        crossed = _cycle(rng, t, rng.uniform(8, 12), 0.5)
        for side in "lr":
            pose["shoulder_flex_" + side] = pose["shoulder_flex_" + side] + 25 * crossed
            pose["elbow_" + side] = pose["elbow_" + side] + 95 * crossed
            pose["shoulder_twist_" + side] = 60 * crossed
        pose["head_yaw"] = pose["head_yaw"] * 1.8
    else:
        raise ValueError("unknown action %r" % action)
    return pose


def trial_world_poses(offsets_mm, action, frames, fps, rng):
    """World joint positions (frames, 32, 3) mm of one trial, feet on the floor."""
    start_s = rng.uniform(0, 60)                       # each trial starts at another moment
    t = start_s + np.arange(frames) / fps              # (T,) seconds
    pose = action_motion(action, t, rng)
    a = {name: np.radians(value) for name, value in pose.angles.items()}
    local = {}
    for side, hip, knee, ankle, shoulder, elbow in (("r", 1, 2, 3, 25, 26), ("l", 6, 7, 8, 17, 18)):
        sign = 1.0 if side == "l" else -1.0            # +x is the subject's left
        local[hip] = rot_y(-sign * a["hip_abd_" + side]) @ rot_x(a["hip_flex_" + side])
        local[knee] = rot_x(-a["knee_" + side])
        local[ankle] = rot_x(a["knee_" + side] - a["hip_flex_" + side])  # foot kept level
        local[shoulder] = (rot_y(-sign * a["shoulder_abd_" + side])
                           @ rot_x(a["shoulder_flex_" + side])
                           @ rot_z(sign * a["shoulder_twist_" + side]))
        local[elbow] = rot_x(a["elbow_" + side])
    local[11] = rot_z(a["spine_twist"]) @ rot_y(a["spine_side"]) @ rot_x(-a["spine_bend"])
    local[12] = rot_x(-a["chest_bend"])
    local[13] = rot_z(a["head_yaw"]) @ rot_x(-a["neck_nod"])
    root_position = np.concatenate([pose.position_mm, np.zeros((frames, 1))], axis=1)
    positions = forward_kinematics(offsets_mm, local, rot_z(pose.yaw), root_position)
    lowest = positions[:, FOOT_JOINTS, 2].min(axis=1)  # (T,)
    positions[..., 2] += (SOLE_MM - lowest)[:, None]
    return positions
