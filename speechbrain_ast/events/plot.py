"""The picture of ``python -m speechbrain_ast.tag --plot``: per file, its
top classes' scores over time (the windows' clip scores, or with
``--events`` the stitched frame scores) and, with ``--events``, the event
bars under them, the reference events outlined where ``--reference``
gives them.

Authors
 * speechbrain-ast developers
"""

import os

import torch

__all__ = ["draw_events", "plot_results", "results_figure"]

# legend entries per column, and panel height per entry (inches): a panel
# grows so that its legend fits beside it
_LEGEND_ROWS = 20
_INCH_PER_ENTRY = 0.22


def draw_events(ax, events, end_s, colors=None, references=None):
    """Event bars on matplotlib axes: one row per class, in order of
    first onset; reference events as outlines in the same rows.

    Arguments
    ---------
    ax : matplotlib.axes.Axes
        The axes to draw on.
    events : list of Event
        The recording's events.
    end_s : float
        The recording's length (the x-axis' end).
    colors : dict, optional
        label -> colour (e.g. of its score curve); grey otherwise.
    references : list of tuple, optional
        ``(onset, offset, label)`` reference events, drawn as outlines.

    Example
    -------
    >>> from matplotlib.figure import Figure
    >>> from speechbrain_ast.events.postprocess import Event
    >>> ax = Figure().subplots()
    >>> draw_events(
    ...     ax,
    ...     [Event(0.5, 1.5, "dog", 0.9)],
    ...     3.0,
    ...     references=[(0.4, 1.4, "dog"), (2.0, 2.5, "cat")],
    ... )
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['dog', 'cat']
    """
    references = sorted(references or [])
    found = sorted(events, key=lambda e: e.onset)
    rows = list(
        dict.fromkeys([e.label for e in found] + [r[2] for r in references])
    )
    colors = colors or {}
    for row, label in enumerate(rows):
        spans = [
            (e.onset, e.offset - e.onset) for e in found if e.label == label
        ]
        ax.broken_barh(spans, (row - 0.3, 0.6), color=colors.get(label, "0.5"))
        truth = [(r[0], r[1] - r[0]) for r in references if r[2] == label]
        ax.broken_barh(
            truth, (row - 0.42, 0.84), facecolor="none", edgecolor="black"
        )
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlim(0, end_s)
    title = "events (filled) and references (outlined)" if references else ""
    ax.set_xlabel(f"time (s); {title or 'events'}")


def _curves(result):
    """``(times, scores [T, C], x label)`` of a tagged file: its stitched
    frame scores where kept, else its windows' clip scores."""
    if result.get("_frames") is not None:
        edges, probs = result["_frames"]
        edges = torch.as_tensor(edges, dtype=torch.float64)
        return (edges[:-1] + edges[1:]) / 2, torch.as_tensor(probs), "time (s)"
    mids = [(w["start"] + w["end"]) / 2 for w in result["windows"]]
    return mids, result["_scores"], "time (s, window centre)"


def results_figure(results, labels, top_k, references=None):
    """One panel per file, each with its top classes' scores over time and
    its legend outside, right of the axes, and, with ``--events``, the
    file's event bars under it.

    Arguments
    ---------
    results : list of dict
        ``tag``'s results of the files (with ``_scores``, and with
        ``--events`` ``_events``, ``_duration`` and possibly ``_frames``).
    labels : list of str
        The model's class names.
    top_k : int
        Curves per panel: the classes with the highest scores.
    references : dict, optional
        File base name -> reference events ``(onset, offset, label)``.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> result = {
    ...     "file": "a.wav",
    ...     "_scores": torch.tensor([[0.2, 0.9]]),
    ...     "windows": [{"start": 0.0, "end": 1.0}],
    ... }
    >>> fig = results_figure([result], ["dog", "cat"], 2)
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['cat', 'dog']
    """
    import matplotlib
    from matplotlib.figure import Figure

    shown = min(top_k, len(labels))
    rows = min(shown, _LEGEND_ROWS)
    panel_h = max(3.0, 0.8 + _INCH_PER_ENTRY * rows)
    bars = "_events" in results[0]
    fig = Figure(
        figsize=(12, (panel_h + 1.5 * bars) * len(results)),
        layout="constrained",
    )
    grid = fig.subplots(
        len(results) * (1 + bars),
        1,
        squeeze=False,
        height_ratios=[panel_h, 1.5][: 1 + bars] * len(results),
    )[:, 0]
    axes = grid[:: 1 + bars]
    # tab20 keeps up to 20 curves apart (the default cycle repeats at 10)
    tab20 = matplotlib.colormaps["tab20"].colors  # dark/light pairs
    colors = tab20[0::2] + tab20[1::2]
    for i, (ax, result) in enumerate(zip(axes, results)):
        times, scores, xlabel = _curves(result)
        top = torch.topk(scores.max(dim=0).values, shown)
        for n, idx in enumerate(top.indices.tolist()):
            ax.plot(
                times,
                scores[:, idx].numpy(),
                marker="." if len(times) < 200 else None,
                color=colors[n % len(colors)],
                linestyle="-" if n < len(colors) else "--",
                label=labels[idx],
            )
        name = os.path.basename(result["file"])
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.legend(
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            ncol=-(-shown // _LEGEND_ROWS),
        )
        if bars:  # the events on the same time axis, in the curves' colours
            ax.set_xlim(0, result["_duration"])
            curves = {line.get_label(): line.get_color() for line in ax.lines}
            draw_events(
                grid[2 * i + 1],
                result["_events"],
                result["_duration"],
                curves,
                (references or {}).get(name),
            )
    return fig


def plot_results(results, labels, path, top_k, references=None):
    """Saves :func:`results_figure` of the tagged files to ``path``.

    Arguments
    ---------
    results : list of dict
        ``tag``'s results of the files.
    labels : list of str
        The model's class names.
    path : str
        The image file (its suffix picks the format).
    top_k : int
        Curves per panel.
    references : dict, optional
        File base name -> reference events.

    Example
    -------
    >>> import os, tempfile
    >>> result = {
    ...     "file": "a.wav",
    ...     "_scores": torch.tensor([[0.2, 0.9]]),
    ...     "windows": [{"start": 0.0, "end": 1.0}],
    ... }
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> plot_results([result], ["dog", "cat"], path, 2)
    >>> os.path.getsize(path) > 0
    True
    """
    results_figure(results, labels, top_k, references).savefig(path)
