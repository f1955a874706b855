"""Sound event detection scores as DCASE reports them, computed by the
packages DCASE uses: PSDS1 and PSDS2 from the frame scores
(sed_scores_eval), event- and segment-based F1 of thresholded events
(sed_eval); and the reading of DESED's annotation files
(:func:`read_events_tsv`, :func:`read_durations_tsv`).

Authors
 * speechbrain-ast developers
"""

import csv
import importlib
import math
import os
import warnings

import numpy as np

from speechbrain_ast.events.frames import check_event
from speechbrain_ast.events.postprocess import (
    check_scores,
    median_filter,
    scores_to_events,
)

__all__ = [
    "PSDS1",
    "PSDS2",
    "check_references",
    "evaluate_events",
    "event_based_metrics",
    "read_durations_tsv",
    "read_events_tsv",
    "segment_based_metrics",
]

#: DCASE 2021+ task 4 settings of PSDS scenario 1 (sed_scores_eval names).
PSDS1 = dict(
    dtc_threshold=0.7,
    gtc_threshold=0.7,
    cttc_threshold=None,
    alpha_ct=0.0,
    alpha_st=1.0,
    max_efpr=100.0,
)
#: DCASE 2021+ task 4 settings of PSDS scenario 2.
PSDS2 = dict(
    dtc_threshold=0.1,
    gtc_threshold=0.1,
    cttc_threshold=0.3,
    alpha_ct=0.5,
    alpha_st=1.0,
    max_efpr=100.0,
)


def _quiet_import(name):
    """Imports ``name`` without dcase_util's pkg_resources warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*pkg_resources", category=UserWarning
        )
        return importlib.import_module(name)


def _read_tsv(path, columns, what):
    """``(line number, row dict)`` of a tab-separated file with a header
    holding ``columns``; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what} file {path!r} does not exist: give the path of a "
            "tab-separated file with a header line."
        )
    with open(path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f, delimiter="\t"))
    header = [name.strip() for name in lines[0]] if lines else []
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(
            f"{path}:1: the header {header} lacks the columns {missing}; a "
            f"{what} file has the header {chr(9).join(columns)!r}."
        )
    for number, row in enumerate(lines[1:], start=2):
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{path}:{number}: {len(row)} tab-separated fields where the "
                f"header has {len(header)}: {row!r}."
            )
        yield number, {key: field.strip() for key, field in zip(header, row)}


def read_events_tsv(path, labels=None):
    """Reads a strong-label file as DESED writes it.

    Its header is ``filename onset offset event_label`` (tab-separated);
    a row with an empty onset lists a clip without events.

    Arguments
    ---------
    path : str or os.PathLike
        The tsv file.
    labels : sequence of str, optional
        The known classes: an event of another class is refused.

    Returns
    -------
    dict
        filename -> list of ``(onset, offset, label)`` in file order.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "strong.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("filename\\tonset\\toffset\\tevent_label\\n")
    ...     _ = f.write("a.wav\\t0.5\\t1.5\\tDog\\n")
    ...     _ = f.write("b.wav\\t\\t\\t\\n")
    >>> read_events_tsv(path)
    {'a.wav': [(0.5, 1.5, 'Dog')], 'b.wav': []}
    """
    columns = ("filename", "onset", "offset", "event_label")
    events = {}
    for number, row in _read_tsv(path, columns, "strong-label"):
        where = f"{os.fspath(path)}:{number}"
        if not row["filename"]:
            raise ValueError(f"{where}: the row has no filename.")
        clip = events.setdefault(row["filename"], [])
        fields = (row["onset"], row["offset"], row["event_label"])
        if not any(fields):
            continue  # a clip without events
        event = check_event(fields, labels, where)
        clip.append(event)
    return events


def read_durations_tsv(path):
    """Reads a durations file as DESED writes it (``filename duration``).

    Arguments
    ---------
    path : str or os.PathLike
        The tsv file.

    Returns
    -------
    dict
        filename -> duration in seconds.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "durations.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("filename\\tduration\\na.wav\\t10.0\\n")
    >>> read_durations_tsv(path)
    {'a.wav': 10.0}
    """
    durations = {}
    for number, row in _read_tsv(path, ("filename", "duration"), "durations"):
        try:
            duration = float(row["duration"])
        except ValueError:
            duration = math.nan
        if not duration > 0 or not math.isfinite(duration):
            raise ValueError(
                f"{os.fspath(path)}:{number}: duration {row['duration']!r} "
                "is not a positive number of seconds."
            )
        durations[row["filename"]] = duration
    return durations


def check_references(scored, references, durations=None):
    """Refuses scores and references (and durations) of different files.

    Arguments
    ---------
    scored : collection of str
        The scored files (e.g. the keys of a scores dict).
    references : dict
        filename -> list of ``(onset, offset, label)``.
    durations : dict, optional
        filename -> seconds.

    Example
    -------
    >>> check_references({"a.wav": None}, {"b.wav": []})
    Traceback (most recent call last):
    ...
    ValueError: 1 scored files have no reference entry (e.g. ['a.wav']) and 1 reference files have no scores (e.g. ['b.wav']): score and annotate the same files (a file without events has an empty list).
    """
    scored, annotated = set(scored), set(references)
    if scored != annotated:
        unannotated = sorted(scored - annotated)
        unscored = sorted(annotated - scored)
        raise ValueError(
            f"{len(unannotated)} scored files have no reference entry (e.g. "
            f"{unannotated[:3]}) and {len(unscored)} reference files have "
            f"no scores (e.g. {unscored[:3]}): score and annotate the same "
            "files (a file without events has an empty list)."
        )
    if durations is not None:
        missing = sorted(scored - set(durations))
        if missing:
            raise ValueError(
                f"{len(missing)} scored files have no duration (e.g. "
                f"{missing[:3]}): give every file's duration in seconds."
            )


def _event_dicts(filename, events, labels=None):
    """sed_eval's event list (dicts) of one file."""
    return [
        dict(
            zip(
                ("filename", "onset", "offset", "event_label"),
                (filename, *event),
            )
        )
        for event in (check_event(event, labels, filename) for event in events)
    ]


def event_based_metrics(estimated, references, labels):
    """sed_eval's event-based metrics (DCASE task 4: onset and offset, a
    collar of 200 ms or 20 % of the reference's length).

    Arguments
    ---------
    estimated, references : dict
        filename -> list of ``(onset, offset, label, ...)``; the same files.
    labels : sequence of str
        The classes.

    Returns
    -------
    sed_eval.sound_event.EventBasedMetrics
        After every file was evaluated.

    Example
    -------
    >>> metrics = event_based_metrics(
    ...     {"a.wav": [(0.1, 1.1, "dog")]},
    ...     {"a.wav": [(0.0, 1.0, "dog")]},
    ...     ["dog"],
    ... )
    >>> metrics.results_overall_metrics()["f_measure"]["f_measure"]
    1.0
    """
    sound_event = _quiet_import("sed_eval.sound_event")
    check_references(estimated, references)
    metrics = sound_event.EventBasedMetrics(
        event_label_list=list(labels),
        t_collar=0.2,
        percentage_of_length=0.2,
        evaluate_onset=True,
        evaluate_offset=True,
    )
    for filename in sorted(references):
        metrics.evaluate(
            _event_dicts(filename, references[filename], labels),
            _event_dicts(filename, estimated[filename]),
        )
    return metrics


def segment_based_metrics(estimated, references, durations, labels):
    """sed_eval's segment-based metrics on 1 s segments.

    Arguments
    ---------
    estimated, references : dict
        filename -> list of ``(onset, offset, label, ...)``; the same files.
    durations : dict
        filename -> seconds evaluated.
    labels : sequence of str
        The classes.

    Returns
    -------
    sed_eval.sound_event.SegmentBasedMetrics
        After every file was evaluated.

    Example
    -------
    >>> metrics = segment_based_metrics(
    ...     {"a.wav": [(0.0, 2.0, "dog")]},
    ...     {"a.wav": [(0.0, 1.0, "dog")]},
    ...     {"a.wav": 4.0},
    ...     ["dog"],
    ... )
    >>> round(metrics.results_overall_metrics()["f_measure"]["f_measure"], 3)
    0.667
    """
    sound_event = _quiet_import("sed_eval.sound_event")
    check_references(estimated, references, durations)
    metrics = sound_event.SegmentBasedMetrics(
        event_label_list=list(labels), time_resolution=1.0
    )
    for filename in sorted(references):
        metrics.evaluate(
            _event_dicts(filename, references[filename], labels),
            _event_dicts(filename, estimated[filename]),
            evaluated_length_seconds=float(durations[filename]),
        )
    return metrics


def _f_measure(metrics):
    """The micro-averaged F1 of sed_eval metrics; 0 where undefined."""
    value = metrics.results_overall_metrics()["f_measure"]["f_measure"]
    return float(value) if math.isfinite(value) else 0.0


def _psds(filtered, references, durations, labels, settings):
    """sed_scores_eval's PSDS of filtered frame scores, over the classes
    that have reference events (PSDS's true-positive rate of a class
    without any is undefined); ``nan`` when no class has one."""
    scores_module = _quiet_import("sed_scores_eval.base_modules.scores")
    intersection = _quiet_import("sed_scores_eval.intersection_based")
    ground_truth = {
        filename: [event[:3] for event in references[filename]]
        for filename in filtered
    }
    annotated = {
        event[2] for events in ground_truth.values() for event in events
    }
    kept = [index for index, label in enumerate(labels) if label in annotated]
    if len(kept) < len(labels):
        left_out = [label for label in labels if label not in annotated]
        warnings.warn(
            f"PSDS over {len(kept)} of {len(labels)} classes: no reference "
            f"events of {left_out[:10]}",
            stacklevel=3,
        )
    if not kept:
        return float("nan")
    names = [labels[index] for index in kept]
    frames = {}
    for filename, (edges, probs) in filtered.items():
        frame = scores_module.create_score_dataframe(
            np.asarray(probs)[:, kept], edges, names
        )
        # sed_scores_eval 0.0.4 gives DataFrame.to_numpy() views, read-only
        # under pandas 3's copy-on-write, to Cython that needs writable
        # arrays; float32 columns are copied to float64 on the way
        frame[names] = frame[names].astype(np.float32)
        frames[filename] = frame
    value = intersection.psds(
        scores=frames,
        ground_truth=ground_truth,
        audio_durations={name: durations[name] for name in filtered},
        unit_of_time="hour",
        **settings,
    )[0]
    return float(value)


def evaluate_events(
    scores, references, durations, labels, thresholds=0.5, median_window=1
):
    """PSDS1, PSDS2, event- and segment-based F1 of a set of clips.

    The median filter applies to the frame scores for all four; PSDS
    sweeps every threshold itself, the F1 scores use ``thresholds``.

    Arguments
    ---------
    scores : dict
        filename -> ``(edges [T + 1], frame_probs [T, C])``.
    references : dict
        filename -> list of ``(onset, offset, label)``
        (:func:`read_events_tsv`); the same files as ``scores``.
    durations : dict
        filename -> seconds (:func:`read_durations_tsv`).
    labels : sequence of str
        The ``C`` classes.
    thresholds : float or sequence of float
        One threshold or one per class (e.g.
        :func:`~speechbrain_ast.events.postprocess.tune_thresholds`).
    median_window : int
        Odd median filter length in columns.

    Returns
    -------
    dict
        ``psds1``, ``psds2`` (:data:`PSDS1`, :data:`PSDS2`; over the
        classes with reference events, with a warning naming the others), ``event_f1`` and ``segment_f1``
        (micro-averaged; 0 where undefined), each in [0, 1].

    Example
    -------
    >>> import torch
    >>> edges = torch.arange(21) * 0.5
    >>> probs = torch.zeros(20, 2)
    >>> probs[2:6, 0] = 0.9
    >>> result = evaluate_events(
    ...     {"a.wav": (edges, probs)},
    ...     {"a.wav": [(1.0, 3.0, "dog"), (6.0, 8.0, "cat")]},
    ...     {"a.wav": 10.0},
    ...     ["dog", "cat"],
    ... )
    >>> sorted(result), round(result["event_f1"], 3)
    (['event_f1', 'psds1', 'psds2', 'segment_f1'], 0.667)
    """
    labels = list(labels)
    check_references(scores, references, durations)
    filtered = {}
    for filename, (edges, probs) in scores.items():
        probs, edges = check_scores(probs, edges, labels)
        filtered[filename] = (edges, median_filter(probs, median_window))
    estimated = {
        filename: scores_to_events(probs, edges, labels, thresholds)
        for filename, (edges, probs) in filtered.items()
    }
    event_metrics = event_based_metrics(estimated, references, labels)
    segment_metrics = segment_based_metrics(
        estimated, references, durations, labels
    )
    return {
        "psds1": _psds(filtered, references, durations, labels, PSDS1),
        "psds2": _psds(filtered, references, durations, labels, PSDS2),
        "event_f1": _f_measure(event_metrics),
        "segment_f1": _f_measure(segment_metrics),
    }
