"""Datasets: Human3.6M from label pickles + images, or from the pre-cropped store; MPI-INF-3DHP
from its label files + crops."""
from .human36m import Human36MDataset, LabelledCropDataset
from mvn.images import CorruptImageError, ImageError, MissingImageError
from .labels import LabelColumns, LabelError, load_label_columns
from .mpi_inf_3dhp import MpiInf3dhpDataset, MpiInf3dhpStoreDataset
from .store import Human36MStoreDataset, StoreError


def build_dataset(config, split):
    """The dataset of `split` ('train' or 'val') that `config.dataset` describes."""
    if config.dataset.name not in ("human36m", "mpi_inf_3dhp"):
        raise ValueError("dataset.name '%s' is not available" % config.dataset.name)
    if split not in ("train", "val"):
        raise ValueError("split must be 'train' or 'val', got %r" % split)
    d = config.dataset
    labels_path = d.train_labels_path if split == "train" else d.val_labels_path
    stride = d.train_frame_stride if split == "train" else d.val_frame_stride
    if d.name == "mpi_inf_3dhp":  # the val split is the test set, as the released code has it
        if d.format == "store":    # the store holds its own labels (made from those files)
            return MpiInf3dhpStoreDataset(d.store_path, split, frame_stride=stride)
        return MpiInf3dhpDataset(d.root, labels_path, split, frame_stride=stride)
    if d.format == "pkl":
        return Human36MDataset(d.root, labels_path, frame_stride=stride,
                               bad_records=d.bad_records,
                               allow_images_outside_root=d.allow_images_outside_root)
    if d.format == "store":  # the store holds its own labels (made from those files)
        return Human36MStoreDataset(d.store_path, split, frame_stride=stride)
    raise ValueError("dataset.format '%s' is not available" % d.format)


__all__ = ["Human36MDataset", "MpiInf3dhpDataset", "MpiInf3dhpStoreDataset", "Human36MStoreDataset",
           "LabelledCropDataset", "ImageError",
           "MissingImageError", "CorruptImageError",
           "LabelColumns", "LabelError", "StoreError", "load_label_columns", "build_dataset"]
