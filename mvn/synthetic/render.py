"""Rendering the synthetic subject: a shaded, depth-ordered capsule figure in a textured room.

Image features carry depth cues the 2D joints lack: limbs are drawn far to near (painter's
algorithm over short capsule pieces, so nearer parts occlude farther ones), their width follows the
perspective (f * radius / Z), their brightness falls with depth, each is shaded like a cylinder,
and the body casts a shadow on a tiled floor. Joints are projected with the camera's lens model
(mvn.synthetic.camera.Camera), so the figure agrees with the released 2D annotations. The room
(per camera) is computed once, vectorised over pixels; a frame is that background plus cv2 drawing.
The figure is the 32-joint skeleton of motion.py (world mm, z up, floor at z = 0).
"""
import cv2
import numpy as np

# (joint a, joint b, radius mm, part) of the 32-joint skeleton; a == b draws a sphere.
CAPSULES = (
    (0, 12, 120, "shirt"), (12, 13, 135, "shirt"), (1, 6, 95, "pants"), (17, 25, 70, "shirt"),
    (13, 14, 48, "skin"), (14, 15, 0, "head"),
    (17, 18, 46, "sleeve_l"), (18, 19, 38, "skin"), (19, 22, 30, "skin"),
    (25, 26, 46, "sleeve_r"), (26, 27, 38, "skin"), (27, 30, 30, "skin"),
    (6, 7, 76, "pants_l"), (7, 8, 56, "pants_l"), (8, 9, 42, "shoes"), (9, 10, 34, "shoes"),
    (1, 2, 76, "pants_r"), (2, 3, 56, "pants_r"), (3, 4, 42, "shoes"), (4, 5, 34, "shoes"),
)
HEAD_RADIUS_MM = 105.0
PIECES = 3                                      # each capsule is sorted as 3 pieces
SHADE_LAYERS = ((1.0, 0.50), (0.8, 0.72), (0.55, 0.9), (0.3, 1.05))  # (width, brightness)
SHIFT = 3                                       # cv2 sub-pixel bits


def subject_appearance(rng):
    """Clothing colours (BGR) of a subject; the left sleeve and trouser leg are a little lighter."""
    shirt = rng.uniform(40, 220, size=3)
    pants = rng.uniform(30, 140, size=3)
    skin = np.array([120, 150, 200]) * rng.uniform(0.6, 1.05)
    colours = {"shirt": shirt, "sleeve_r": shirt, "sleeve_l": np.minimum(shirt * 1.25 + 20, 255),
               "pants": pants, "pants_r": pants, "pants_l": np.minimum(pants * 1.3 + 20, 255),
               "skin": skin, "head": skin * 0.95, "shoes": np.array([35.0, 35.0, 45.0])}
    return colours


# --- background --------------------------------------------------------------------------------

def _value_noise(rng, height, width, cells, amplitude):
    """Smooth noise (height, width): a coarse random grid resized with bicubic interpolation."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) * amplitude


def render_background(camera, width, height, rng, step=2):
    """The room seen by `camera` (a Camera): (height, width, 3) uint8 BGR.

    Floor z = 0 with 600 mm tiles, walls of panels at x = +-5000 and y = +-6200 mm, ceiling.
    Traced at 1/step resolution (pixel centres of step x step blocks) and resized, for speed.
    """
    full_width, full_height = width, height
    width, height = (width + step - 1) // step, (height + step - 1) // step
    R = camera.R
    centre = camera.T_mm
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) * step + (step - 1) / 2
    xy = camera.undistort(np.stack([u, v], -1))                       # (H/step, W/step, 2)
    rays = np.concatenate([xy, np.ones((height, width, 1))], -1) @ R  # world directions
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(dz < 0, -centre[2] / dz, np.inf)
        t_ceiling = np.where(dz > 0, (3800 - centre[2]) / dz, np.inf)
        t_wall_x = np.where(dx != 0, (np.sign(dx) * 5000 - centre[0]) / dx, np.inf)
        t_wall_y = np.where(dy != 0, (np.sign(dy) * 6200 - centre[1]) / dy, np.inf)
    t_wall = np.minimum(t_wall_x, t_wall_y)
    t_hit = np.minimum(np.minimum(t_floor, t_ceiling), t_wall)
    hit = centre + rays * t_hit[..., None]                           # (H, W, 3) world mm
    distance = t_hit * np.linalg.norm(rays, axis=-1)

    image = np.empty((height, width, 3), dtype=np.float64)
    tiles = (np.floor(hit[..., 0] / 600) + np.floor(hit[..., 1] / 600)) % 2
    grout = (np.minimum(np.abs(hit[..., 0] / 600 - np.round(hit[..., 0] / 600)),
                        np.abs(hit[..., 1] / 600 - np.round(hit[..., 1] / 600))) < 0.02)
    floor_colour = np.where(tiles[..., None] > 0, [150, 135, 120], [110, 100, 92])
    floor_colour = np.where(grout[..., None], [70, 65, 60], floor_colour)
    along = np.where(t_wall_x < t_wall_y, hit[..., 1], hit[..., 0])
    panels = (np.floor(along / 1000) % 2)[..., None]
    wall_colour = np.where(panels > 0, [170, 180, 185], [150, 160, 170])
    wall_colour = np.where((t_wall_x < t_wall_y)[..., None], wall_colour * [0.95, 1.0, 1.1],
                           wall_colour)
    wall_colour = np.where((hit[..., 2] < 150)[..., None], [60, 60, 70], wall_colour)  # skirting
    image[:] = [200, 200, 200]                                       # ceiling
    wall = (t_wall <= t_floor) & (t_wall <= t_ceiling)
    floor = (t_floor < t_wall) & (t_floor <= t_ceiling)
    image[wall] = wall_colour[wall]
    image[floor] = floor_colour[floor]
    image *= (1.15 / (1 + (distance / 9000) ** 2))[..., None]         # light falls with distance
    image = cv2.resize(image.astype(np.float32), (full_width, full_height),
                       interpolation=cv2.INTER_LINEAR)
    image += _value_noise(rng, full_height, full_width, 24, 6.0)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


# --- the figure ----------------------------------------------------------------------------------

def _fixed(points_px):
    return np.round(points_px * (1 << SHIFT)).astype(np.int64)


def _draw_shadow(image, joints_world_mm, camera, girth):
    """Darken the floor under the body: capsules flattened to z = 0, slightly to one side."""
    a = np.array([c[0] for c in CAPSULES])
    b = np.array([c[1] for c in CAPSULES])
    radius = np.array([c[2] if c[0] != c[1] else HEAD_RADIUS_MM for c in CAPSULES]) * girth
    ends = np.stack([joints_world_mm[a], joints_world_mm[b]], 1)       # (C, 2, 3)
    ends = ends + ends[..., 2:3] * np.array([0.25, 0.15, 0.0])          # light from above-side
    ends[..., 2] = 0.0
    cam = camera.to_camera(ends)                                      # (C, 2, 3)
    if np.any(cam[..., 2] < 100):
        return image
    ends_px = camera.project(cam)
    width_px = 2 * camera.f_px[0] * radius / cam[..., 2].mean(1)
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    for (p0, p1), w in zip(_fixed(ends_px), width_px):
        cv2.line(mask, tuple(map(int, p0)), tuple(map(int, p1)), 255,
                 max(1, int(round(w))), cv2.LINE_AA, SHIFT)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return image
    y0, y1, x0, x1 = max(ys.min() - 8, 0), ys.max() + 9, max(xs.min() - 8, 0), xs.max() + 9
    soft = cv2.GaussianBlur(mask[y0:y1, x0:x1], (0, 0), 4).astype(np.float32) / 255.0
    region = image[y0:y1, x0:x1].astype(np.float32) * (1 - 0.45 * soft)[..., None]
    image[y0:y1, x0:x1] = region.astype(np.uint8)
    return image


def _draw_piece(image, ends_px, radius_px, colour, fog, cap_start, cap_end, sphere=False):
    """One capsule piece, shaded like a cylinder: nested bands, darker at the rim.

    The bands are quads with flat ends so that the pieces of one capsule join seamlessly; round
    caps (discs) are drawn only at the capsule's own ends. ends_px (2, 2) float pixels.
    """
    direction = ends_px[1] - ends_px[0]
    length = np.hypot(*direction)
    normal = np.array([-direction[1], direction[0]]) / length if length > 1e-6 else np.array([0.0, 1.0])
    for width, brightness in SHADE_LAYERS:
        bgr = tuple(float(v) for v in np.clip(colour * brightness * fog, 0, 255))
        half = radius_px * width
        if sphere:
            centre = ends_px[0] - (1 - width) * radius_px * 0.35
            cv2.circle(image, tuple(map(int, _fixed(centre))), int(round(half * (1 << SHIFT))),
                       bgr, -1, cv2.LINE_AA, SHIFT)
            continue
        quad = np.stack([ends_px[0] + normal * half, ends_px[1] + normal * half,
                         ends_px[1] - normal * half, ends_px[0] - normal * half])
        cv2.fillConvexPoly(image, _fixed(quad).astype(np.int32), bgr, cv2.LINE_AA, SHIFT)
        for cap, end in ((cap_start, ends_px[0]), (cap_end, ends_px[1])):
            if cap:
                cv2.circle(image, tuple(map(int, _fixed(end))), int(round(half * (1 << SHIFT))),
                           bgr, -1, cv2.LINE_AA, SHIFT)


def render_frame(background, joints_world_mm, camera, appearance, girth=1.0):
    """One frame: background + shadow + the figure drawn far to near. (H, W, 3) uint8.

    joints_world_mm (32, 3); camera: a Camera (pose and lens).
    """
    image = _draw_shadow(background.copy(), joints_world_mm, camera, girth)
    joints_cam = camera.to_camera(joints_world_mm)                    # (32, 3)
    fx = camera.f_px[0]
    steps = np.linspace(0.0, 1.0, PIECES + 1)
    pieces = []               # (depth, ends (2, 3) camera mm, radius mm, colour, caps, sphere)
    for a, b, radius_mm, part in CAPSULES:
        colour = np.asarray(appearance[part], dtype=np.float64)
        if part == "head":                                 # a sphere between nose and head top
            centre = 0.35 * joints_cam[a] + 0.65 * joints_cam[b] + [0, 0, 30]
            pieces.append((centre[2], np.stack([centre, centre]), HEAD_RADIUS_MM * girth, colour,
                           (False, False), True))
            continue
        points = joints_cam[a] + steps[:, None] * (joints_cam[b] - joints_cam[a])  # (P+1, 3)
        for i in range(PIECES):
            depth = 0.5 * (points[i, 2] + points[i + 1, 2])
            pieces.append((depth, points[i:i + 2], radius_mm * girth, colour,
                           (i == 0, i == PIECES - 1), False))
    pieces.sort(key=lambda piece: -piece[0])               # far first
    ends_px = camera.project(np.stack([piece[1] for piece in pieces]))  # (pieces, 2, 2)
    for (depth, _, radius_mm, colour, caps, sphere), ends in zip(pieces, ends_px):
        if depth < 100:
            continue
        fog = np.clip(1.4 - depth / 9000.0, 0.45, 1.15)   # nearer is brighter
        _draw_piece(image, ends, fx * radius_mm / depth, colour, fog, caps[0], caps[1], sphere)
    return image
