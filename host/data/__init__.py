"""Host layer: datasets (built-in synthetic keywords, Google Speech Commands, features .npz)."""
from host.data.dataset import KWS_LABELS, Dataset, load_npz_dataset

__all__ = ["KWS_LABELS", "Dataset", "load_npz_dataset"]
