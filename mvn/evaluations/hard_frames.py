"""Hard frames: P1 / P2 of the frames whose 2D input is far from the ground truth.

The 2D error of a frame: the mean over its J joints of the Euclidean distance, in full-frame
pixels, between the input 2D joint (the detection the model is given) and the ground-truth 2D
joint (the benchmark's `ground_truth_2d_px`). A frame is hard when that error exceeds the
threshold (strictly). P1 / P2 over the hard frames weigh every frame the same (no per-action
averaging), as do the all-frame figures printed beside them.
"""
import numpy as np


def input_2d_error_px(input_px, ground_truth_px):
    """(N,) mean over joints of |input - ground truth| (Euclidean, pixels); inputs (N, J, 2)."""
    return np.linalg.norm(np.asarray(input_px, np.float64)
                          - np.asarray(ground_truth_px, np.float64), axis=-1).mean(-1)


def hard_frame_scores(error_px, frame_p1_mm, frame_p2_mm, threshold_px):
    """{'threshold_px', 'frames', 'selected', 'share', 'hard': {p1_mm, p2_mm}, 'all': {...},
    'error_px': {mean, median}} from per-frame 2D errors and per-frame P1 / P2 (N,)."""
    error_px = np.asarray(error_px, np.float64)
    p1 = np.asarray(frame_p1_mm, np.float64)
    p2 = np.asarray(frame_p2_mm, np.float64)
    hard = error_px > threshold_px
    n, selected = len(error_px), int(hard.sum())

    def scores(mask):
        if not mask.any():
            return {"p1_mm": float("nan"), "p2_mm": float("nan")}
        return {"p1_mm": float(p1[mask].mean()), "p2_mm": float(p2[mask].mean())}

    return {"threshold_px": float(threshold_px), "frames": n, "selected": selected,
            "share": selected / n if n else float("nan"),
            "hard": scores(hard), "all": scores(np.ones(n, bool)),
            "error_px": {"mean": float(error_px.mean()) if n else float("nan"),
                         "median": float(np.median(error_px)) if n else float("nan")}}


def format_hard_frames(result):
    if result["selected"] == 0:
        return ("hard frames (mean 2D input error > %.1f px): none of %d frames (2D error mean "
                "%.2f px, median %.2f px)" % (result["threshold_px"], result["frames"],
                                              result["error_px"]["mean"],
                                              result["error_px"]["median"]))
    return ("hard frames (mean 2D input error > %.1f px): %d of %d (%.2f%%); P1 %.2f mm, "
            "P2 %.2f mm (all frames, frame-weighted: P1 %.2f mm, P2 %.2f mm; 2D error mean "
            "%.2f px, median %.2f px)"
            % (result["threshold_px"], result["selected"], result["frames"],
               100 * result["share"], result["hard"]["p1_mm"], result["hard"]["p2_mm"],
               result["all"]["p1_mm"], result["all"]["p2_mm"], result["error_px"]["mean"],
               result["error_px"]["median"]))
