"""Multi-label targets: labels <-> multi-hot vectors, and AudioSet's
balanced sampling weights and the sampler that draws by them (SpeechBrain's
``ReproducibleWeightedRandomSampler``).

Authors
 * speechbrain-ast developers
"""

import csv
import logging

import torch

from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler

__all__ = [
    "MultiHotEncoder",
    "balanced_sample_weights",
    "balanced_sampler",
]

logger = logging.getLogger(__name__)


class MultiHotEncoder:
    """Labels <-> float multi-hot vectors (SpeechBrain has none).

    Arguments
    ---------
    labels : list of str, optional
        The labels in index order.
    display_names : dict of str to str, optional
        Human-readable names (AudioSet: mid -> display_name).

    Example
    -------
    >>> enc = MultiHotEncoder(["/m/dog", "/m/cat", "/m/car"])
    >>> enc.encode(["/m/car", "/m/dog"])
    tensor([1., 0., 1.])
    >>> enc.decode(torch.tensor([0.2, 0.9, 0.7]))
    ['/m/cat', '/m/car']
    """

    def __init__(self, labels=None, display_names=None):
        self.labels = []
        self.index = {}
        self.display_names = dict(display_names or {})
        if labels is not None:
            self.fit(labels)

    def __len__(self):
        return len(self.labels)

    def fit(self, labels):
        """Adds labels (a flat list, or a list of label lists) in order."""
        for item in labels:
            for label in [item] if isinstance(item, str) else item:
                if label not in self.index:
                    self.index[label] = len(self.labels)
                    self.labels.append(label)
        return self

    @classmethod
    def from_class_labels_csv(cls, path):
        """Reads AudioSet's ``class_labels_indices.csv`` (index,mid,
        display_name), labels ordered by ``index``."""
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        needed = {"index", "mid", "display_name"}
        if not rows or not needed <= set(rows[0]):
            raise ValueError(
                f"{path} is not a class_labels_indices.csv: it needs the "
                "columns index, mid, display_name"
            )
        rows.sort(key=lambda row: int(row["index"]))
        return cls(
            [row["mid"] for row in rows],
            {row["mid"]: row["display_name"] for row in rows},
        )

    def encode(self, labels):
        """A list of labels -> float multi-hot ``[C]``."""
        out = torch.zeros(len(self.labels))
        for label in labels:
            if label not in self.index:
                raise KeyError(
                    f"label {label!r} is not among the {len(self)} known "
                    "labels; fit the encoder on the full label list"
                )
            out[self.index[label]] = 1.0
        return out

    def decode(self, multi_hot, threshold=0.5):
        """Labels whose value is above ``threshold``."""
        values = torch.as_tensor(multi_hot).tolist()
        return [lab for lab, v in zip(self.labels, values) if v > threshold]

    def save(self, path):
        """One line per label, ``label<TAB>display name``, in index order."""
        with open(path, "w", encoding="utf-8") as f:
            for label in self.labels:
                f.write(f"{label}\t{self.display_names.get(label, label)}\n")

    @classmethod
    def load(cls, path):
        """Reads what :meth:`save` wrote."""
        labels, names = [], {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    label, _, name = line.partition("\t")
                    labels.append(label)
                    names[label] = name or label
        return cls(labels, names)


def balanced_sample_weights(label_lists, encoder):
    """AudioSet's balanced-sampling weight per clip.

    ``weight(clip) = sum over its labels of 1000 / (class_count + 0.01)``
    with ``class_count`` the number of training clips carrying the class.

    Arguments
    ---------
    label_lists : list of list of str
        Each training clip's labels.
    encoder : MultiHotEncoder

    Returns
    -------
    torch.Tensor
        ``[N]`` float64 weights.

    Example
    -------
    >>> enc = MultiHotEncoder(["a", "b"])
    >>> balanced_sample_weights([["a"], ["a"], ["a", "b"]], enc)
    tensor([ 332.2259,  332.2259, 1322.3249], dtype=torch.float64)
    """
    multi_hot = torch.stack(
        [encoder.encode(labels) for labels in label_lists]
    ).double()
    class_weight = 1000.0 / (multi_hot.sum(0) + 0.01)
    return multi_hot @ class_weight


def balanced_sampler(label_lists, encoder, seed):
    """A reproducible sampler drawing clips by their
    :func:`balanced_sample_weights` (rare labels more often), with
    replacement, one epoch as many draws as clips; it replaces shuffling.

    Arguments
    ---------
    label_lists : list of list of str
        Each training clip's labels, in dataset order.
    encoder : MultiHotEncoder
    seed : int
        The draws are a function of the seed and the epoch.

    Returns
    -------
    speechbrain.dataio.sampler.ReproducibleWeightedRandomSampler

    Example
    -------
    >>> enc = MultiHotEncoder(["a", "b"])
    >>> sampler = balanced_sampler([["a"], ["a"], ["a", "b"]], enc, seed=0)
    >>> len(sampler), len(list(sampler))
    (3, 3)
    """
    weights = balanced_sample_weights(label_lists, encoder)
    logger.info("Balanced sampler over %d clips", len(weights))
    return ReproducibleWeightedRandomSampler(
        weights.double(), num_samples=len(weights), replacement=True, seed=seed
    )
