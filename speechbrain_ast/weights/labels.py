"""Class names of the published checkpoints: the label files shipped in
``speechbrain_ast/label_files/`` (AudioSet, ESC-50, Speech Commands V2),
found by class count (:func:`shipped_labels`), and the reader of those and
of users' label files (:func:`read_labels`).

Authors
 * speechbrain-ast developers
"""

import csv
import os

__all__ = [
    "LABEL_FILES",
    "PUBLISHED_TASKS",
    "read_labels",
    "shipped_labels",
]

AUDIOSET_CLASSES = 527

LABEL_FILES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "label_files"
)

# The published reference checkpoints by class count: their dataset, its
# label file in LABEL_FILES and whether the reference trained it with BCE
# (sigmoid scores) rather than cross-entropy (softmax).
PUBLISHED_TASKS = {
    AUDIOSET_CLASSES: ("AudioSet", "class_labels_indices.csv", True),
    50: ("ESC-50", "esc_class_labels_indices.csv", False),
    35: ("Speech Commands V2", "speechcommands_class_labels_indices.csv", True),
}


def read_labels(path):
    """Class names in index order from a label file.

    Arguments
    ---------
    path : str
        Either a CSV with a header holding ``index`` and ``display_name``
        (AudioSet's ``class_labels_indices.csv``: index, mid, display_name)
        or a text file with one label per line (line order = index).

    Returns
    -------
    list of str

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write(
    ...         'index,mid,display_name\\n1,/m/b,"Bark, dog"\\n0,/m/a,Speech\\n'
    ...     )
    >>> read_labels(path)
    ['Speech', 'Bark, dog']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file {path!r} does not exist.")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    header = [h.strip() for h in next(csv.reader(lines[:1]), [])]
    if "index" in header and "display_name" in header:
        by_index = {}
        for row in csv.DictReader(lines):
            try:
                index = int(row["index"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path!r}: bad index {row.get('index')!r} in row {row}."
                ) from None
            by_index[index] = row["display_name"].strip()
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(
                f"{path!r}: the indices are not 0..{len(by_index) - 1} "
                "without gaps: fix the label file."
            )
        return [by_index[i] for i in range(len(by_index))]
    labels = [line.strip() for line in lines if line.strip()]
    if not labels:
        raise ValueError(f"label file {path!r} holds no labels.")
    return labels


def shipped_labels(n_classes):
    """The shipped label file of a published checkpoint's class count.

    Arguments
    ---------
    n_classes : int
        The checkpoint's number of classes.

    Returns
    -------
    tuple of (str, str) or None
        ``(dataset, path)`` for 527 (AudioSet), 50 (ESC-50) and 35 (Speech
        Commands V2) classes; None for any other count.

    Example
    -------
    >>> dataset, path = shipped_labels(527)
    >>> dataset, read_labels(path)[:2]
    ('AudioSet', ['Speech', 'Male speech, man speaking'])
    >>> shipped_labels(10) is None
    True
    """
    if n_classes not in PUBLISHED_TASKS:
        return None
    dataset, name, _ = PUBLISHED_TASKS[n_classes]
    return dataset, os.path.join(LABEL_FILES, name)
