"""A camera of a synthetic release: where it stands and how its lens projects.

Two lens models, one per dataset:
  "h36m"    Human3.6M's calibration (VideoPose3D's `project_to_2d`, mvn.geometry), k = (k1, k2,
            k3), p = (p1, p2) as in the calibration table;
  "opencv"  OpenCV's model, which the MPI-INF-3DHP calibration files name ("distortionModel
            OpenCV"), coefficients (k1, k2, p1, p2, k3); all zero is a plain pinhole.
World and camera coordinates in mm, X_cam = R @ (X_world - T); pixels x right, y down.
"""
from dataclasses import dataclass

import numpy as np

from mvn import geometry

UNDISTORT_ITERATIONS = 20


@dataclass(frozen=True, eq=False)
class Camera:
    R: np.ndarray              # (3, 3) world -> camera
    T_mm: np.ndarray           # (3,) camera centre, world mm
    f_px: np.ndarray           # (2,) fx, fy
    c_px: np.ndarray           # (2,) cx, cy
    distortion: np.ndarray     # h36m: (5,) k1, k2, k3, p1, p2; opencv: (5,) k1, k2, p1, p2, k3
    model: str = "opencv"

    @classmethod
    def from_h36m(cls, camera):
        """From a Human3.6M calibration dict (R, T, f, c, k, p) of mvn.human36m.facts.camera()."""
        def vector(value, n):
            return np.reshape(value, n).astype(np.float64)

        distortion = np.concatenate([vector(camera["k"], 3), vector(camera["p"], 2)])
        return cls(np.asarray(camera["R"], np.float64), vector(camera["T"], 3),
                   vector(camera["f"], 2), vector(camera["c"], 2), distortion, "h36m")

    @classmethod
    def look_at(cls, centre_mm, target_mm, f_px, c_px, distortion=(0, 0, 0, 0, 0)):
        """An OpenCV-model camera at `centre_mm` looking at `target_mm` (world z up), image y
        pointing down the world's vertical: rows of R are right, down, forward."""
        centre_mm = np.asarray(centre_mm, np.float64)
        forward = np.asarray(target_mm, np.float64) - centre_mm
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return cls(np.stack([right, down, forward]), centre_mm, np.asarray(f_px, np.float64),
                   np.asarray(c_px, np.float64), np.asarray(distortion, np.float64), "opencv")

    def to_camera(self, points_world_mm):
        """(..., 3) world mm -> (..., 3) camera mm."""
        return geometry.world_to_camera(points_world_mm, self.R, self.T_mm)

    def project(self, points_cam_mm):
        """(..., 3) camera mm -> (..., 2) pixels, with the lens distortion."""
        if self.model == "h36m":
            return geometry.project_to_2d(points_cam_mm, self.f_px, self.c_px, self.distortion[:3],
                                          self.distortion[3:])
        points_cam_mm = np.asarray(points_cam_mm, np.float64)
        xy = points_cam_mm[..., :2] / points_cam_mm[..., 2:3]                  # (..., 2)
        return _distort_opencv(xy, self.distortion) * self.f_px + self.c_px

    def undistort(self, uv_px):
        """(..., 2) pixels -> (..., 2) undistorted x/z, y/z (the ray through each pixel)."""
        if self.model == "h36m":
            return geometry.undistort_normalized(uv_px, self.f_px, self.c_px,
                                                 self.distortion[:3], self.distortion[3:])
        distorted = (np.asarray(uv_px, np.float64) - self.c_px) / self.f_px
        if not np.any(self.distortion):
            return distorted
        xy = distorted.copy()
        for _ in range(UNDISTORT_ITERATIONS):      # fixed point of xy = distorted - delta(xy)
            xy = xy + (distorted - _distort_opencv(xy, self.distortion))
        return xy


def _distort_opencv(xy, distortion):
    """(..., 2) ideal x/z, y/z -> (..., 2) distorted, OpenCV's radial + tangential model."""
    k1, k2, p1, p2, k3 = np.asarray(distortion, np.float64)
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    return np.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                     y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], axis=-1)
