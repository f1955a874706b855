"""Sound events and live tagging in ``python -m speechbrain_ast.tag``:
``--events`` stitches the windows' frame scores on the recording's time
axis (:class:`WindowEvents`), writes the events (``--events-out``) and
scores them against DESED strong labels (``--reference``); ``--stream``
tags a live source (:func:`run_stream`, with
:mod:`speechbrain_ast.events.stream`).

Authors
 * speechbrain-ast developers
"""

import json
import os
import sys

import torch

from speechbrain_ast.data.audio import AudioError, resample
from speechbrain_ast.events.detector import frame_scores, valid_columns
from speechbrain_ast.events.evaluate import evaluate_events, read_events_tsv
from speechbrain_ast.events.frames import lobe_column_edges
from speechbrain_ast.events.options import event_settings
from speechbrain_ast.events.output import write_events
from speechbrain_ast.events.postprocess import scores_to_events
from speechbrain_ast.events.sources import MicSource, PcmSource, WavFileSource
from speechbrain_ast.events.stream import (
    EventTracker,
    FrameStitcher,
    HopScheduler,
    stream_windows,
)

__all__ = [
    "WindowEvents",
    "event_dict",
    "format_event",
    "format_topk",
    "report_files",
    "run_stream",
    "topk_items",
]


class WindowEvents:
    """The events of a recording scored window by window: the windows'
    frame scores (:func:`~speechbrain_ast.events.detector.frame_scores`)
    averaged where they overlap; each event given once no later window
    can change it (bounded memory), or all at the end with the frame
    scores kept (``frames``, for the DESED metrics).

    Arguments
    ---------
    model : speechbrain_ast.inference.ASTAudioClassifier
        A loaded model folder.
    thresholds : float or list of float
        One threshold or one per class.
    median_window : int
        Odd median filter length in columns.
    keep_frames : bool
        Keep ``frames``: edges ``[T + 1]``, probabilities ``[T, C]``.
    delay_s : float, optional
        Hand a column on once it is ``delay_s`` seconds behind the newest
        window's end, averaged over the windows scored by then (the
        latency of live tagging); None: once no later window can cover it
        (every overlapping window averaged, as a file is tagged).

    Example
    -------
    >>> from speechbrain_ast.testing.model_folders import tiny_classifier
    >>> model = tiny_classifier()
    >>> events = WindowEvents(model, thresholds=0.0, keep_frames=True)
    >>> events.add([0.0, 0.5], torch.randn(2, 16000) * 0.1)
    []
    >>> found = events.finish(end_s=1.5)
    >>> edges, probs = events.frames
    >>> probs.shape, edges[-1].item(), len(found) == len(events.events) == 3
    ((14, 3), 1.46, True)
    """

    def __init__(
        self,
        model,
        thresholds=0.5,
        median_window=1,
        keep_frames=False,
        delay_s=None,
    ):
        self.model, self.labels = model, model.labels
        self.settings = (thresholds, median_window)
        self.delay_s = delay_s
        # one column ends a patch width in, two a stride later
        width, two = float(self.edges(1)[-1]), float(self.edges(2)[-1])
        step, centre = two - width, width / 2
        self.stitcher = FrameStitcher(step, centre, len(self.labels))
        self.tracker = None
        if not keep_frames:
            self.tracker = EventTracker(self.labels, self.edges, *self.settings)
        self.events, self.frames = [], None

    def edges(self, n):
        """``[n + 1]`` edges (seconds) of the recording's first ``n``
        columns."""
        mods = self.model.mods
        return lobe_column_edges(n, mods.embedding_model, mods.compute_features)

    def add(self, starts, wavs, wav_lens=None, next_start_s=None, frames=None):
        """Scores a batch of windows starting at ``starts`` seconds
        (``wavs`` ``[batch, samples]`` at the model's rate; ``frames``, the
        lobe's frame embeddings of them when already computed); returns
        the events that no window starting at ``next_start_s`` (default:
        the last of ``starts``) or later can change."""
        lens = torch.ones(len(wavs)) if wav_lens is None else wav_lens
        _, probs = frame_scores(self.model, wavs, lens, frames)
        valid = valid_columns(self.model, wavs, lens, probs.shape[1]).tolist()
        seconds = (lens * wavs.shape[1] / self.model.sample_rate).tolist()
        for start, window, count, end in zip(starts, probs, valid, seconds):
            # a window shorter than a patch: only the columns of its audio
            edges = self.edges(count).clamp(max=end)
            self.stitcher.add(start, edges, window[:count])
        if self.tracker is None:
            return []
        before = starts[-1] if next_start_s is None else next_start_s
        if self.delay_s is not None:  # earlier, from fewer windows
            before = max(before, starts[-1] + seconds[-1] - self.delay_s)
        done = self.tracker.add(*self.stitcher.pop(before))
        self.events += done
        return done

    def finish(self, end_s):
        """The events not given yet, at the end of the recording
        (``end_s`` seconds); ``events`` then holds all, by onset."""
        first, probs = self.stitcher.pop()
        if self.tracker is not None:
            done = self.tracker.add(first, probs) + self.tracker.finish(end_s)
            self.events = sorted(self.events + done, key=lambda e: e[:3])
            return done
        edges = self.edges(probs.shape[0])
        edges[-1] = min(edges[-1], end_s)  # each column's centre is before
        self.frames = (edges, probs)
        self.events = scores_to_events(
            probs, edges, self.labels, *self.settings
        )
        return self.events


def event_dict(event):
    """An event as JSON output writes it.

    Example
    -------
    >>> from speechbrain_ast.events.postprocess import Event
    >>> event_dict(Event(0.5, 1.25, "dog", 0.91234567))
    {'onset': 0.5, 'offset': 1.25, 'label': 'dog', 'score': 0.912346}
    """
    fields = dict(zip(("onset", "offset", "label", "score"), event))
    return {k: v if k == "label" else round(v, 6) for k, v in fields.items()}


def format_event(event):
    """An event as a line of text output.

    Example
    -------
    >>> from speechbrain_ast.events.postprocess import Event
    >>> format_event(Event(0.5, 1.25, "dog", 0.91234567))
    '[0.50-1.25 s] dog 0.912'
    """
    onset, offset, label, score = event
    return f"[{onset:.2f}-{offset:.2f} s] {label} {score:.3f}"


def topk_items(model, scores, k):
    """``[{"label": ..., "score": ...}, ...]`` of the ``k`` best classes.

    Example
    -------
    >>> from speechbrain_ast.inference.classifier import ClipScoring
    >>> scoring = ClipScoring()
    >>> scoring.labels = ["dog", "cat"]
    >>> topk_items(scoring, torch.tensor([0.25, 0.75]), 1)
    [{'label': 'cat', 'score': 0.75}]
    """
    return [
        {"label": label, "score": round(score, 6)}
        for label, score in model.topk_from_scores(scores, k)[0]
    ]


def format_topk(items):
    """``label 0.912, label 0.100`` for text output.

    Example
    -------
    >>> format_topk([{"label": "cat", "score": 0.75}])
    'cat 0.750'
    """
    return ", ".join(f"{it['label']} {it['score']:.3f}" for it in items)


def report_files(results, model, args, out):
    """After the files: ``--events-out`` written and ``--reference``'s
    metrics printed (text or JSON); an error line, or None.

    Arguments
    ---------
    results : list of dict
        Per tagged file: ``file``, ``_events``, ``_frames`` (edges,
        probs) and ``_duration`` (seconds).
    model : speechbrain_ast.inference.ASTAudioClassifier
        The model folder.
    args : argparse.Namespace
        The command line.
    out : file
        Where the metrics go.

    Returns
    -------
    str or None

    Example
    -------
    >>> import argparse
    >>> args = argparse.Namespace(events_out=None, reference=None)
    >>> report_files([], None, args, sys.stdout) is None
    True
    """
    try:
        if args.events_out is not None:
            by_file = {r["file"]: r["_events"] for r in results}
            write_events(by_file, args.events_out, args.events_format)
        if args.reference is None or not results:
            return None
        metrics = _evaluate(results, model, args)
    except (OSError, ValueError) as err:
        return f"error: {' '.join(str(err).split())}"
    if args.json:
        out.write(json.dumps(metrics) + "\n")
    else:
        out.write(
            f"reference {args.reference} ({metrics['files']} files): PSDS1 "
            f"{metrics['psds1']:.3f}  PSDS2 {metrics['psds2']:.3f}  "
            f"event-based F1 {metrics['event_f1']:.3f} (200 ms collar)  "
            f"segment-based F1 {metrics['segment_f1']:.3f} (1 s)\n"
        )
    return None


def _evaluate(results, model, args):
    """:func:`~speechbrain_ast.events.evaluate.evaluate_events` of the
    tagged files (by base name) against ``--reference``."""
    references = read_events_tsv(args.reference, model.labels)
    names = [os.path.basename(result["file"]) for result in results]
    missing = [name for name in names if name not in references]
    if missing or len(set(names)) < len(names):
        raise ValueError(
            f"--reference {args.reference!r} names clips by base name, and "
            f"has no row for {missing[:3]} or two tagged files share one: "
            "tag the files it annotates (a clip without events has a row "
            "with no onset)."
        )
    scores = {n: r["_frames"] for n, r in zip(names, results)}
    durations = {n: r["_duration"] for n, r in zip(names, results)}
    metrics = evaluate_events(
        scores,
        {name: references[name] for name in names},
        durations,
        model.labels,
        *event_settings(model, args),
    )
    return {"reference": args.reference, "files": len(names), **metrics}


def _source(model, args):
    """The ``--stream`` source."""
    rate = args.stream_rate or model.sample_rate
    if args.stream == "mic":
        return MicSource(rate, args.device_index)
    if args.stream == "-":
        return PcmSource(sys.stdin.buffer, rate)
    return WavFileSource(args.stream, idle_s=args.stream_idle)


def run_stream(model, args, out=None, err=None):
    """Live tagging: every ``--hop`` seconds the last ``--window``
    seconds of ``--stream`` are scored; their top-k classes are printed
    with, for ``--events``, the events completed so far (seconds since the
    stream began). Late windows are dropped, and said so
    (:class:`~speechbrain_ast.events.stream.HopScheduler`). Ends with the
    source (or Ctrl-C).

    Arguments
    ---------
    model : ASTAudioClassifier or OnnxClassifier
        The loaded model.
    args : argparse.Namespace
        The command line, after :func:`set_window`.
    out, err : file, optional
        Where results and errors go (default stdout, stderr).

    Returns
    -------
    int
        The exit status: 0, or 2 when the source cannot be read.

    Example
    -------
    >>> import argparse
    >>> args = argparse.Namespace(stream="/no/such.wav", stream_idle=1.0)
    >>> args.stream_rate = None
    >>> model = argparse.Namespace(sample_rate=16000)
    >>> run_stream(model, args, err=sys.stdout)  # doctest: +ELLIPSIS
    error: --stream '/no/such.wav' does not exist: ...
    2
    """
    out, err = out or sys.stdout, err or sys.stderr

    def say(line):
        """One line on stderr, now."""
        print(line, file=err, flush=True)

    end_s, live = 0.0, None
    try:
        source = _source(model, args)
        if args.events:
            live = WindowEvents(
                model, *event_settings(model, args), delay_s=args.stream_delay
            )
        rate, hop = source.rate, max(1, round(args.hop * source.rate))
        scheduler = HopScheduler(args.hop, say)
        windows = stream_windows(
            source.blocks(), rate, args.window, args.hop, scheduler
        )
        try:
            for k, start, end_s, wav in windows:
                wav = resample(torch.from_numpy(wav), rate, model.sample_rate)
                after = (k + 1) * hop / rate  # the next window's start
                done = []
                if live is None:
                    logits = model.compute_logits(wav[None])
                else:  # one pass of the lobe for both
                    logits, frames = model.logits_and_frames(wav[None])
                    done = live.add([start], wav[None], None, after, frames)
                scores = model.scores_from_logits(logits)
                top = topk_items(model, scores, args.top_k)
                _print_window(out, args.json, (k, start, end_s), top, done)
        except KeyboardInterrupt:  # Ctrl-C ends a live stream
            pass
        if live is not None:
            done = live.finish(end_s)
            _print_window(out, args.json, (None, None, end_s), None, done)
    except Exception as error:  # the source's or the device's: one line
        detail = " ".join(str(error).split())
        if not isinstance(error, AudioError):
            detail = f"--stream {args.stream}: {type(error).__name__}: {detail}"
        say(f"error: {detail}")
        return 2
    if getattr(args, "events_out", None):
        by_source = {args.stream: live.events}
        write_events(by_source, args.events_out, args.events_format)
    return 0


def _print_window(out, as_json, span, top, events):
    """One window's line (and its events); ``top`` None: the end."""
    k, start, end_s = span
    if as_json:
        line = {"end": round(end_s, 6), "events": list(map(event_dict, events))}
        if top is not None:
            line = {"index": k, "start": round(start, 6), **line, "labels": top}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    else:
        if top is None:
            out.write(f"end of stream at {end_s:.2f} s\n")
        else:
            out.write(f"#{k} [{start:.2f}-{end_s:.2f} s] {format_topk(top)}\n")
        for event in events:
            out.write(f"  event {format_event(event)}\n")
    out.flush()
