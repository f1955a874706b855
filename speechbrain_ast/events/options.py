"""The options of sound events and live tagging in
``python -m speechbrain_ast.tag``: their table (:func:`add_arguments`),
usage errors (:func:`check_arguments`), the thresholds an events run uses
(:func:`event_settings`) and the default window and hop
(:func:`set_window`).

Authors
 * speechbrain-ast developers
"""

import os

from speechbrain_ast.data.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from speechbrain_ast.events.model_folder import folder_event_settings
from speechbrain_ast.events.output import EVENT_FORMATS

__all__ = ["add_arguments", "check_arguments", "event_settings", "set_window"]

# the window of a folder without a fixed input length (native length)
NATIVE_WINDOW_S = 10.0


def event_settings(model, args):
    """``(thresholds, median_window)``: ``--threshold`` /
    ``--median-window`` where given, else the model folder's tuned ones
    (:func:`~speechbrain_ast.events.model_folder.folder_event_settings`),
    else 0.5 and 1.

    Example
    -------
    >>> import argparse
    >>> tuned = argparse.Namespace(thresholds=[0.3, 0.6], median_window=3)
    >>> model = argparse.Namespace(hparams=tuned)
    >>> args = argparse.Namespace(threshold=None, median_window=5)
    >>> event_settings(model, args)
    ([0.3, 0.6], 5)
    """
    tuned, tuned_median = folder_event_settings(model)
    thresholds = args.threshold
    if thresholds is None:
        thresholds = tuned
        if isinstance(thresholds, (list, tuple)) and len(thresholds) == 1:
            thresholds = thresholds[0]  # one for every class
    median = args.median_window or tuned_median
    return (0.5 if thresholds is None else thresholds), median or 1


# the options (flag, argparse keywords) of each group
_OPTIONS = {
    "sound events (PyTorch model folders)": (
        ("--events", dict(action="store_true", help="detect sound events "
         "(onset, offset, label) from frame scores, window by window "
         "(--window defaults to the model's input)")),
        ("--threshold", dict(type=float, metavar="P", help="event "
         "threshold in [0, 1] (default: the folder's tuned ones, else 0.5)")),
        ("--median-window", dict(type=int, metavar="N", help="median filter "
         "length in patch columns, odd (default: the folder's, else 1)")),
        ("--events-out", dict(metavar="PATH", help="write the events: .csv, "
         ".json, or .txt / a folder of Audacity label tracks")),
        ("--events-format", dict(choices=sorted(EVENT_FORMATS), help="format"
         " of --events-out (default: from its suffix)")),
        ("--reference", dict(metavar="TSV", help="DESED strong labels: print"
         " PSDS1, PSDS2, event-based F1 and segment-based F1")),
    ),
    "live tagging": (
        ("--stream", dict(metavar="SOURCE", help="tag a live source every "
         "--hop seconds: 'mic' (sounddevice), '-' (standard input, raw "
         "16-bit little-endian mono PCM) or a WAV file being written")),
        ("--stream-rate", dict(type=int, metavar="HZ", help="sample rate of "
         "'mic' and '-' (default: the model's)")),
        ("--stream-delay", dict(type=float, default=0.5, metavar="S", help=
         "frame scores are final S seconds behind the stream's newest audio"
         " (the events' latency; averaged over the windows scored by then; "
         "default 0.5; the window length gives a file's scores exactly)")),
        ("--stream-idle", dict(type=float, default=2.0, metavar="S", help="a "
         "WAV file ends after S seconds without new data (default 2)")),
        ("--device-index", dict(type=int, metavar="N", help="input device "
         "of --stream mic (python -m sounddevice lists them)")),
    ),
}  # fmt: skip


def add_arguments(parser):
    """Adds the options of events and live tagging to the command line.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> parser.parse_args(["--events", "--threshold", "0.3"]).threshold
    0.3
    """
    for title, options in _OPTIONS.items():
        group = parser.add_argument_group(title)
        for flag, kwargs in options:
            group.add_argument(flag, **kwargs)


def check_arguments(parser, args):
    """The usage errors of :func:`add_arguments`' options (exits with
    status 2 through ``parser.error``).

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> for name in ("files", "--backend", "--plot"):
    ...     _ = parser.add_argument(name, nargs="?", default=None)
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["a.wav", "--events", "--backend", "torch"])
    >>> check_arguments(parser, args)
    """
    if args.stream is None and not args.files:
        parser.error("give audio files to tag, or --stream mic|-|FILE.wav")
    if args.stream is not None and args.files:
        parser.error(
            f"--stream tags one live source, not files: leave out "
            f"{args.files[0]!r} or --stream"
        )
    for name in ("threshold", "median_window", "events_out", "reference"):
        if getattr(args, name) is not None and not args.events:
            parser.error(f"--{name.replace('_', '-')} needs --events")
    if args.events_format is not None and args.events_out is None:
        parser.error("--events-format needs --events-out")
    if args.events and args.backend != "torch":
        parser.error(
            f"--events needs a PyTorch model folder: --backend "
            f"{args.backend} runs an exported clip classifier without frame "
            "scores (leave out --backend)"
        )
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must lie in [0, 1], got {args.threshold}")
    median = args.median_window
    if median is not None and (median < 1 or median % 2 == 0):
        parser.error(f"--median-window must be odd and >= 1, got {median}")
    if args.events_out is not None and args.events_format is None:
        suffix = os.path.splitext(args.events_out)[1].lower()
        if suffix not in EVENT_FORMATS.values():
            parser.error(
                f"--events-out {args.events_out!r}: name a .csv, .json or "
                ".txt (Audacity) file, or give --events-format"
            )
    rate = args.stream_rate
    if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        parser.error(
            f"--stream-rate must be a sample rate between {MIN_SAMPLE_RATE} "
            f"and {MAX_SAMPLE_RATE} Hz, got {rate}"
        )
    if not args.stream_delay >= 0:
        parser.error(f"--stream-delay must be >= 0 s, got {args.stream_delay}")
    if not args.stream_idle > 0:
        parser.error(f"--stream-idle must be > 0 s, got {args.stream_idle}")
    if args.stream is not None and (args.plot or args.reference):
        parser.error("--plot and --reference tag files: leave out --stream")
    if args.device_index is not None and args.stream != "mic":
        parser.error("--device-index chooses a microphone: use --stream mic")
    if rate is not None and args.stream not in ("mic", "-"):
        parser.error("--stream-rate is for 'mic' and '-' (a WAV has its own)")


def set_window(model, args):
    """Sets the default ``--window`` (the model's input) and ``--hop``
    (the window; at most 1 s for a stream); returns the error line of an
    events window longer than a fixed-length model's input, else None.

    Example
    -------
    >>> import argparse
    >>> args = argparse.Namespace(window=None, hop=None, stream=None)
    >>> args.events = True
    >>> set_window(None, args), args.window, args.hop
    (None, 10.0, 10.0)
    """
    frontend = getattr(getattr(model, "mods", {}), "compute_features", None)
    target = getattr(frontend, "target_length", None)
    rate = getattr(frontend, "sample_rate", 1)
    longest = target and target * frontend.hop_length / rate
    if args.window is None:
        args.window = longest or NATIVE_WINDOW_S
    elif args.events and target:
        if frontend.num_frames(round(args.window * rate)) > target:
            return (
                f"error: --window {args.window} s is longer than the model's "
                f"input ({longest:.2f} s, target_length {target}): its frame "
                f"scores would stop short; use --window {longest:.2f} or less."
            )
    if args.hop is None:
        args.hop = min(args.window, 1.0) if args.stream else args.window
    return None
