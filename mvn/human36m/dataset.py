"""Human3.6M samples: from the published label files + full-frame images (`dataset.format:
pkl`), or from a frame store of H36M-Toolbox/prepare_store.py (`dataset.format: store`).

Each sample is the 256x192 crop around the subject (docs/fidelity.md, "Crop"), the CPN
detections (screen-normalised and in crop pixels) and the 3D joints in metres: the sample dict of
mvn.datasets.labelled_crops.
"""
import os

from mvn.datasets.labelled_crops import LabelledCropDataset
from mvn.datasets.store import StoreDataset
from mvn.geometry import crop_image
from mvn.human36m.labels import LabelColumns, load_label_columns
from mvn.images import ImageError, MissingImageError, read_frame_bgr

STORE_BUILD_COMMAND = "python H36M-Toolbox/prepare_store.py"


class Human36MDataset(LabelledCropDataset):
    """Crops from full-frame JPEGs, decoded and warped per sample like the reference."""

    def __init__(self, images_root, labels_path, frame_stride=1, bad_records="error",
                 allow_images_outside_root=False, keypoints_2d="cpn"):
        self.images_root = images_root
        self.labels_path = labels_path
        self.labels = load_label_columns(labels_path, frame_stride, bad_records,
                                         allow_images_outside_root, keypoints_2d)
        if not os.path.isdir(images_root):
            raise MissingImageError("images root %s does not exist; extract the frames with "
                                    "H36M-Toolbox/video_to_images.py or set dataset.root"
                                    % images_root)

    def load_crop(self, index):
        """(256, 192, 3) uint8 BGR crop of sample `index`; a missing or damaged frame is an
        ImageError naming the file and its record in the label file."""
        relative = self.labels.image[index].decode()
        path = os.path.join(self.images_root, relative)
        try:
            image = read_frame_bgr(path)
        except ImageError as error:
            raise type(error)(
                "%s (record %d of %s); re-run H36M-Toolbox/video_to_images.py for that sequence, "
                "or regenerate the labels so that they list only existing frames"
                % (error, self.labels.record[index], self.labels_path)) from None
        return crop_image(image, self.labels.center[index], self.labels.scale[index])


class Human36MStoreDataset(StoreDataset):
    """Human3.6M samples from a store of H36M-Toolbox/prepare_store.py: the same samples as
    Human36MDataset (identical tensors for raw crops made from the same images)."""

    DATASET = "human36m"
    LABELS = LabelColumns
    BUILD_COMMAND = STORE_BUILD_COMMAND

    def describe(self, index):
        return self.labels.image[index].decode()
