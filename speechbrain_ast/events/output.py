"""Detected events written to files: a CSV table, JSON, or Audacity label
tracks (one per audio file, to import next to the recording).

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os

__all__ = ["EVENT_FORMATS", "write_events"]

#: The formats :func:`write_events` writes, and the suffix of each.
EVENT_FORMATS = {"csv": ".csv", "json": ".json", "audacity": ".txt"}


def _fields(event, where):
    """``(onset, offset, label, score or None)`` of an event tuple, the
    numbers rounded to 6 decimals."""
    if len(event) not in (3, 4):
        raise ValueError(
            f"{where}: event {event!r} is not (onset, offset, label[, score])."
        )
    # microseconds: what the times mean, and no float32 noise in scores
    onset, offset = round(float(event[0]), 6), round(float(event[1]), 6)
    score = round(float(event[3]), 6) if len(event) == 4 else None
    return onset, offset, str(event[2]), score


def _format_for(path, fmt):
    if fmt is None:
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        by_suffix = {value: key for key, value in EVENT_FORMATS.items()}
        if suffix not in by_suffix:
            raise ValueError(
                f"Cannot tell the event format of {os.fspath(path)!r} from "
                f"its suffix {suffix!r}: name a .csv, .json or .txt "
                "(Audacity) file, or pass fmt."
            )
        return by_suffix[suffix]
    if fmt not in EVENT_FORMATS:
        raise ValueError(
            f"fmt must be one of {sorted(EVENT_FORMATS)} or None; got {fmt!r}."
        )
    return fmt


def _audacity_paths(events_by_file, path):
    """One label file per audio file: ``path`` itself for a single audio
    file named ``*.txt``, else ``<stem>.txt`` in the folder ``path``."""
    path = os.fspath(path)
    if path.lower().endswith(".txt"):
        if len(events_by_file) != 1:
            raise ValueError(
                f"{path!r} is one Audacity label file but events of "
                f"{len(events_by_file)} audio files were given: name a folder"
                " to get one label file per audio file."
            )
        return dict.fromkeys(events_by_file, path)
    paths = {}
    for name in events_by_file:
        stem = os.path.splitext(os.path.basename(os.fspath(name)))[0]
        target = os.path.join(path, stem + ".txt")
        if target in paths.values():
            raise ValueError(
                f"Two audio files have the label file name {target!r} "
                f"(e.g. {name!r}): give them different base names."
            )
        paths[name] = target
    return paths


def write_events(events_by_file, path, fmt=None):
    """Writes detected events as CSV, JSON or Audacity label tracks.

    * ``csv``: a header ``filename,onset,offset,event_label,score``, one
      row per event (a file without events has no row);
    * ``json``: ``{filename: [{"onset", "offset", "event_label",
      "score"}, ...]}``;
    * ``audacity``: ``onset<TAB>offset<TAB>label`` lines, one label file
      per audio file (``path`` is a folder, or a ``.txt`` file when there
      is only one audio file).

    Arguments
    ---------
    events_by_file : dict
        filename -> list of :class:`~speechbrain_ast.events.postprocess.Event`
        or ``(onset, offset, label[, score])`` tuples.
    path : str or os.PathLike
        The file (csv, json), or the folder or file (audacity) to write.
    fmt : str, optional
        ``"csv"``, ``"json"`` or ``"audacity"``; None infers it from the
        suffix (``.csv``, ``.json``, ``.txt``).

    Returns
    -------
    list of str
        The files written.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.events.postprocess import Event
    >>> events = {"a.wav": [Event(0.5, 1.25, "dog", 0.9)]}
    >>> folder = tempfile.mkdtemp()
    >>> [written] = write_events(
    ...     events, os.path.join(folder, "labels"), "audacity"
    ... )
    >>> open(written).read()
    '0.500000\\t1.250000\\tdog\\n'
    >>> [written] = write_events(events, os.path.join(folder, "events.csv"))
    >>> print(open(written).read(), end="")
    filename,onset,offset,event_label,score
    a.wav,0.5,1.25,dog,0.9
    """
    fmt = _format_for(path, fmt)
    rows = {
        os.fspath(name): [_fields(event, os.fspath(name)) for event in events]
        for name, events in events_by_file.items()
    }
    path = os.fspath(path)
    if fmt == "audacity":
        targets = _audacity_paths(rows, path)
        for name, target in targets.items():
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                for onset, offset, label, _ in rows[name]:
                    f.write(f"{onset:.6f}\t{offset:.6f}\t{label}\n")
        return list(targets.values())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == "json":
            keys = ("onset", "offset", "event_label", "score")
            json.dump(
                {
                    name: [dict(zip(keys, fields)) for fields in events]
                    for name, events in rows.items()
                },
                f,
                indent=1,
            )
            f.write("\n")
        else:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(
                ("filename", "onset", "offset", "event_label", "score")
            )
            for name, events in rows.items():
                for onset, offset, label, score in events:
                    writer.writerow(
                        (
                            name,
                            onset,
                            offset,
                            label,
                            "" if score is None else score,
                        )
                    )
    return [path]
