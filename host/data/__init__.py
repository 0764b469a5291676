"""Host layer: datasets (built-in synthetic keywords, Google Speech Commands, features .npz)."""
from s2eprop.host.data.dataset import KWS_LABELS, Dataset, load_npz_dataset
from s2eprop.host.data.loader import dataset_config_from_arg, load_dataset

__all__ = ["KWS_LABELS", "Dataset", "dataset_config_from_arg", "load_dataset", "load_npz_dataset"]
