"""From frame probabilities to events: the median filter over time
(:func:`median_filter`, scipy's), thresholds and runs of active columns
(:func:`scores_to_events`), and per-class thresholds tuned for event-based
F1 on a validation set (:func:`tune_thresholds`, scored by sed_eval).

Authors
 * speechbrain-ast developers
"""

from collections import namedtuple

import numpy as np
import torch

__all__ = [
    "DEFAULT_GRID",
    "Event",
    "check_scores",
    "check_thresholds",
    "median_filter",
    "scores_to_events",
    "tune_thresholds",
]

#: Thresholds :func:`tune_thresholds` tries: 0.05 to 0.95 in steps of 0.05.
DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))

Event = namedtuple("Event", ["onset", "offset", "label", "score"])
Event.__doc__ = """A detected sound event: seconds from the clip's start, the
class, and the highest frame probability inside it.

Example
-------
>>> Event(0.5, 1.25, "dog", 0.9).offset
1.25
"""


def _as_numpy(array, name):
    """A float64 numpy copy of a tensor or array-like."""
    if torch.is_tensor(array):
        array = array.detach().cpu().double().numpy()
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name} must be numbers; got {type(array).__name__}."
        ) from err


def median_filter(probs, window):
    """Median over ``window`` columns of each class's probabilities
    (``scipy.ndimage.median_filter`` with its default reflected edges, as
    the DCASE baselines filter).

    Arguments
    ---------
    probs : torch.Tensor or numpy.ndarray
        ``[T, C]`` (or ``[batch, T, C]``) frame probabilities.
    window : int
        Odd number of columns; 1 leaves the probabilities unchanged.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        The filtered probabilities, of the input's kind, shape and dtype.

    Example
    -------
    >>> probs = torch.tensor([[0.1], [0.9], [0.1], [0.8], [0.7]])
    >>> median_filter(probs, 3).flatten()
    tensor([0.1000, 0.1000, 0.8000, 0.7000, 0.7000])
    """
    from scipy.ndimage import median_filter as scipy_median_filter

    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(
            f"median window must be an odd number of columns >= 1; got "
            f"{window!r}."
        )
    shape = tuple(probs.shape)
    if len(shape) < 2:
        raise ValueError(
            f"median_filter expects probabilities [T, C]; got shape {shape}."
        )
    if window == 1:
        return probs
    size = (1,) * (len(shape) - 2) + (int(window), 1)
    filtered = scipy_median_filter(_as_numpy(probs, "probs"), size=size)
    if torch.is_tensor(probs):
        return torch.from_numpy(filtered).to(probs.device, probs.dtype)
    return filtered.astype(np.asarray(probs).dtype, copy=False)


def check_thresholds(thresholds, labels):
    """Per-class thresholds from one number or one per class.

    Arguments
    ---------
    thresholds : float or sequence of float
        In [0, 1].
    labels : sequence of str
        The classes.

    Returns
    -------
    numpy.ndarray
        ``[num_classes]`` float64.

    Example
    -------
    >>> check_thresholds(0.5, ["dog", "cat"])
    array([0.5, 0.5])
    """
    values = _as_numpy(thresholds, "thresholds")
    if values.ndim == 0:
        values = np.full(len(labels), float(values))
    if values.shape != (len(labels),):
        raise ValueError(
            f"thresholds must be one number or one per class ({len(labels)}"
            f" classes); got shape {values.shape}."
        )
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"thresholds must lie in [0, 1]; got {values.tolist()}."
        )
    return values


def check_scores(frame_probs, edges, labels):
    """One clip's frame probabilities and column edges as numpy, with
    their shapes checked against each other and the labels.

    Arguments
    ---------
    frame_probs : torch.Tensor or numpy.ndarray
        ``[T, C]``.
    edges : torch.Tensor or numpy.ndarray
        ``[T + 1]`` seconds.
    labels : sequence of str
        The ``C`` classes.

    Returns
    -------
    probs : numpy.ndarray
        ``[T, C]`` float64.
    edges : numpy.ndarray
        ``[T + 1]`` float64.

    Example
    -------
    >>> check_scores(torch.zeros(4, 2), torch.arange(4), ["dog", "cat"])
    Traceback (most recent call last):
    ...
    ValueError: edges must be [T + 1] = [5] seconds for frame_probs of shape (4, 2); got shape (4,) (see column_edges).
    """
    probs = _as_numpy(frame_probs, "frame_probs")
    edges = _as_numpy(edges, "edges")
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(
            f"frame_probs must be [T, {len(labels)}] (one column per label); "
            f"got shape {probs.shape}."
        )
    if edges.shape != (probs.shape[0] + 1,):
        raise ValueError(
            f"edges must be [T + 1] = [{probs.shape[0] + 1}] seconds for "
            f"frame_probs of shape {probs.shape}; got shape {edges.shape} "
            "(see column_edges)."
        )
    return probs, edges


def scores_to_events(
    frame_probs, edges, labels, thresholds=0.5, median_window=1
):
    """Events from frame probabilities: median filter, threshold, runs.

    A class is active on the columns whose filtered probability is above
    its threshold (strictly, as sed_scores_eval detects); each run of
    active columns is one event from the first column's start edge to the
    last one's end edge.

    Arguments
    ---------
    frame_probs : torch.Tensor or numpy.ndarray
        ``[T, C]`` probabilities of one clip.
    edges : torch.Tensor or numpy.ndarray
        ``[T + 1]`` column edges in seconds
        (:func:`~speechbrain_ast.events.frames.column_edges`).
    labels : sequence of str
        The ``C`` classes.
    thresholds : float or sequence of float
        One threshold or one per class.
    median_window : int
        Odd median filter length in columns (1: none).

    Returns
    -------
    list of Event
        Sorted by onset; ``score`` is the highest (unfiltered)
        probability inside the event.

    Example
    -------
    >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
    >>> edges = torch.tensor([0.0, 0.5, 1.0, 1.5])
    >>> for event in scores_to_events(probs, edges, ["dog", "cat"]):
    ...     print(event.onset, event.offset, event.label, round(event.score, 2))
    0.0 1.0 dog 0.9
    0.5 1.5 cat 0.7
    """
    labels = list(labels)
    probs, edges = check_scores(frame_probs, edges, labels)
    thresholds = check_thresholds(thresholds, labels)
    active = median_filter(probs, median_window) > thresholds
    # +1 where a run starts, -1 one past where it ends
    padded = np.zeros((active.shape[0] + 2, active.shape[1]), dtype=np.int8)
    padded[1:-1] = active
    change = np.diff(padded, axis=0)
    events = []
    for index, label in enumerate(labels):
        starts = np.flatnonzero(change[:, index] == 1)
        ends = np.flatnonzero(change[:, index] == -1)
        for start, end in zip(starts, ends):
            score = float(probs[start:end, index].max())
            events.append(
                Event(float(edges[start]), float(edges[end]), label, score)
            )
    events.sort(key=lambda event: (event.onset, event.offset, event.label))
    return events


def tune_thresholds(
    scores, references, labels, grid=DEFAULT_GRID, median_window=1
):
    """Per class, the threshold of ``grid`` with the best event-based F1
    (sed_eval's, as :func:`~speechbrain_ast.events.evaluate.evaluate_events`)
    on a validation set.

    Ties go to the threshold nearest 0.5; a class whose F1 is 0 or
    undefined (no reference events) at every threshold keeps 0.5.

    Arguments
    ---------
    scores : dict
        filename -> ``(edges [T + 1], frame_probs [T, C])``.
    references : dict
        filename -> list of ``(onset, offset, label)``; every scored file
        needs an entry (an empty list for a file without events).
    labels : sequence of str
        The ``C`` classes.
    grid : sequence of float
        The thresholds to try, in [0, 1].
    median_window : int
        Odd median filter length in columns, applied before thresholding.

    Returns
    -------
    list of float
        One threshold per class, in ``labels`` order.

    Example
    -------
    >>> edges = torch.arange(11) * 0.5
    >>> probs = torch.zeros(10, 2)
    >>> probs[2:6, 0], probs[4:8, 1] = 0.7, 0.3
    >>> tune_thresholds(
    ...     {"a.wav": (edges, probs)},
    ...     {"a.wav": [(1.0, 3.0, "dog"), (2.0, 4.0, "cat")]},
    ...     ["dog", "cat"],
    ...     grid=[0.2, 0.5, 0.8],
    ... )
    [0.5, 0.2]
    """
    from speechbrain_ast.events.evaluate import (
        check_references,
        event_based_metrics,
    )

    labels = list(labels)
    grid = [float(value) for value in grid]
    if not grid or not all(0 <= value <= 1 for value in grid):
        raise ValueError(
            f"grid must hold thresholds in [0, 1]; got {grid[:20]}."
        )
    check_references(scores, references)
    filtered = {}
    for filename, (edges, probs) in scores.items():
        probs, edges = check_scores(probs, edges, labels)
        filtered[filename] = (edges, median_filter(probs, median_window))
    f1 = np.full((len(grid), len(labels)), -1.0)
    for row, threshold in enumerate(grid):
        estimated = {
            filename: scores_to_events(probs, edges, labels, threshold)
            for filename, (edges, probs) in filtered.items()
        }
        metrics = event_based_metrics(estimated, references, labels)
        class_wise = metrics.results_class_wise_metrics()
        for col, label in enumerate(labels):
            value = class_wise[label]["f_measure"]["f_measure"]
            if np.isfinite(value):
                f1[row, col] = value
    chosen = []
    for col in range(len(labels)):
        best = f1[:, col].max()
        if best <= 0:
            chosen.append(0.5)
            continue
        candidates = [g for g, v in zip(grid, f1[:, col]) if v == best]
        chosen.append(min(candidates, key=lambda g: (abs(g - 0.5), g)))
    return chosen
