"""A batch of the frozen backbone's feature maps read from a feature cache (mvn/feature_cache.py),
standing in for the batch's images."""
from mvn.geometry import CROP_SHAPE

MIRRORED = 1  # the second entry of a frame's maps: those of its mirror image


class CachedFeatures:
    """A batch's backbone feature maps read from a FeatureCache. It stands in for the batch's
    prepared images (B, 256, 192, 3) where they go (mvn.batch.prepare_batch, flip_batch, the
    model's forward): `flip(2)` mirrors it (the maps of the mirrored frames, which the cache
    holds too), `shape` is the images' shape, and CA_PF.backbone_features returns `maps()`."""

    def __init__(self, both, mirrored=False):
        self.both = both            # per level (B, 2, C_l, H_l, W_l): [:, 0] frame, [:, 1] mirror
        self.mirrored = mirrored
        self.shape = (both[0].shape[0],) + tuple(CROP_SHAPE) + (3,)

    def flip(self, dim):
        if dim != 2:
            raise ValueError("cached features mirror along the image width (dim 2) only")
        return CachedFeatures(self.both, not self.mirrored)

    def maps(self):
        """[(B, C_l, H_l, W_l)] per level, of the frames as they are or mirrored."""
        return [level[:, MIRRORED if self.mirrored else 0] for level in self.both]
