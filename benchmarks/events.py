#!/usr/bin/env python3
"""Sound events from the frame head against window tagging, with one
model, on soundscapes synthesised from real recordings.

The data: DESED-style 10 s soundscapes
(:mod:`speechbrain_ast.testing.soundscapes`) of spoken digits (the Free
Spoken Digit Dataset, 10 classes) placed ``--events`` (default 2-6) a
clip over real background recordings (freesound clips: rain, a train, a crowd, typing, ...), in
DESED's layout. Speaker-disjoint and recording-disjoint: the training sets
(strong and weak) hold four speakers over their own backgrounds, the
validation set the fifth speaker over other backgrounds, the test set the
sixth over others again.

What runs: ``recipes/DESED/train.py hparams/ast_scratch_small.yaml`` (a
subprocess, as a user runs it), which tunes the frame head's per-class
thresholds and median filter on the validation set and exports the model
folder. Then, on the test soundscapes, with that folder:

* ``window_tagging``: today's ``tag --window W --hop H``: the folder's clip
  scores of each window; a class is active over a window above its
  threshold, and overlapping active windows merge into one event (the
  score timeline is the highest score of the windows covering each
  instant); its thresholds are tuned on the validation soundscapes the
  same way;
* ``frame_head``: the events of the folder's frame head
  (:func:`speechbrain_ast.events.detector.frame_scores`) with the thresholds
  and median window tuned by the recipe.

Both are scored by :func:`speechbrain_ast.events.evaluate.evaluate_events`
(event-based F1, PSDS1, segment-based F1) and by the median onset and
offset error of the events matched one to one with a reference (same class,
largest overlap). The target: the frame head's event F1 at least 1.5 times
window tagging's. The JSON also records the CPU (model name and flags).

::

    python benchmarks/events.py --out results/events.json
    python benchmarks/events.py --quick     # a smoke run: 3 digits, 1 epoch

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
DEFAULT_RECORDINGS = os.path.join(SHARED, "fsdd", "recordings")
DEFAULT_SOUNDS = os.path.join(SHARED, "sounds")
# train / validation / test backgrounds, by file name in --sounds
DEFAULT_BACKGROUNDS = (
    "rain,train,crowd_cheering,car_engine,applause,arcade_music/"
    "typing,guitar/birds1,piano"
)
SPEAKERS = {"valid": ("theo",), "test": ("jackson",)}
TARGET = 1.5
# DESED set -> split of its speakers and backgrounds
SETS = {
    "synthetic_train": "train",
    "weak": "train",
    "synthetic_validation": "valid",
    "validation": "test",
}


def synthesize(args, root, digits):
    """Writes the four sets (seeds bumped until every class has an event
    in the validation and test sets); returns the class labels."""
    from speechbrain_ast.testing.fsdd_speech_commands import list_fsdd
    from speechbrain_ast.testing.soundscapes import (
        fsdd_foregrounds,
        write_desed_set,
    )

    everyone = {clip[1] for clip in list_fsdd(args.recordings)}
    held_out = set(SPEAKERS["valid"]) | set(SPEAKERS["test"])
    speakers = {"train": sorted(everyone - held_out), **SPEAKERS}
    backgrounds = dict(zip(("train", "valid", "test"), args.backgrounds))
    counts = {
        "synthetic_train": args.train_clips,
        "weak": args.weak_clips,
        "synthetic_validation": args.valid_clips,
        "validation": args.test_clips,
    }
    for index, (name, split) in enumerate(SETS.items()):
        foregrounds = fsdd_foregrounds(args.recordings, speakers[split], digits)
        for attempt in range(20):
            clips = write_desed_set(
                root, name, counts[name], foregrounds, backgrounds[split],
                seed=args.seed + 10 * index + 1000 * attempt,
                duration=args.duration, events_per_clip=tuple(args.events),
            )  # fmt: skip
            found = {event[2] for clip in clips for event in clip["events"]}
            if split == "train" or found == set(foregrounds):
                break
    return sorted(foregrounds)


def train(args, data, out, n_classes):
    """The recipe's small configuration; returns the seconds it took."""
    cmd = [
        sys.executable, "recipes/DESED/train.py",
        "hparams/ast_scratch_small.yaml",
        "--data_folder", data, "--output_folder", out,
        "--n_classes", str(n_classes), "--unlabelled_sets", "[]",
        "--number_of_epochs", str(args.epochs), "--seed", str(args.seed),
        "--batch_size", str(args.batch_size), "--select_by", args.select_by,
        "--lr_decay_start", str(args.decay_start),
        "--device", "cpu", "--noprogressbar",
    ]  # fmt: skip
    if args.quick:
        cmd += ["--embed_dim", "24", "--depth", "1", "--num_heads", "2",
                "--target_length", str(int(args.duration * 100)),
                "--num_workers", "0",
                "--median_windows", "[1, 3]"]  # fmt: skip
    start = time.perf_counter()
    with open(out + ".log", "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=log)
    if proc.returncode:
        with open(out + ".log", encoding="utf-8") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{tail}")
    return time.perf_counter() - start


def window_timeline(starts, ends, scores, duration):
    """The score timeline of windows: between consecutive window edges,
    per class, the highest score of the windows covering that span.

    Arguments
    ---------
    starts, ends : list of float
        The windows' spans in seconds.
    scores : torch.Tensor
        ``[windows, C]``.
    duration : float
        The recording's length.

    Returns
    -------
    edges : numpy.ndarray
        ``[T + 1]`` seconds.
    probs : numpy.ndarray
        ``[T, C]``.

    Example
    -------
    >>> edges, probs = window_timeline(
    ...     [0.0, 0.5], [1.0, 1.5], torch.tensor([[0.25], [0.75]]), 1.5
    ... )
    >>> edges.tolist(), probs[:, 0].tolist()
    ([0.0, 0.5, 1.0, 1.5], [0.25, 0.75, 0.75])
    """
    edges = np.unique(np.clip([0.0, *starts, *ends, duration], 0, duration))
    scores = scores.double().numpy()
    probs = np.zeros((len(edges) - 1, scores.shape[1]))
    for start, end, score in zip(starts, ends, scores):
        covered = (edges[:-1] >= start) & (edges[1:] <= end)
        probs[covered] = np.maximum(probs[covered], score)
    return edges, probs


def score_set(model, manifest, window, hop):
    """Frame-head and window-tagging scores of a manifest's clips, with
    their references and durations."""
    from speechbrain_ast.data.audio import iter_windows, load_audio
    from speechbrain_ast.events.detector import frame_scores

    with open(manifest, encoding="utf-8") as f:
        clips = json.load(f)
    frames, windows, references, durations = {}, {}, {}, {}
    for name, clip in clips.items():
        wav = load_audio(clip["wav"], model.sample_rate)
        edges, probs = frame_scores(model, wav[None])
        frames[name] = (edges, probs[0])
        spans, pieces = [], []
        for start, end, piece in iter_windows(
            clip["wav"], window, hop, model.sample_rate
        ):
            spans.append((start, end))
            pieces.append(piece)
        batch = torch.nn.utils.rnn.pad_sequence(pieces, batch_first=True)
        lens = torch.tensor([len(p) / batch.shape[1] for p in pieces])
        with torch.no_grad():
            scores = model.scores_from_logits(model.compute_logits(batch, lens))
        starts, ends = zip(*spans)
        windows[name] = window_timeline(
            starts, ends, scores.cpu(), clip["duration"]
        )
        references[name] = [tuple(event) for event in clip["events"]]
        durations[name] = clip["duration"]
    return frames, windows, references, durations


def matched_errors(estimated, references):
    """Median onset and offset errors (seconds) of the estimated events
    matched one to one with a reference event of the same class, the
    largest total overlap first (scipy's ``linear_sum_assignment``).

    Example
    -------
    >>> matched_errors(
    ...     {"a": [(0.1, 1.2, "x"), (5, 6, "x")]}, {"a": [(0, 1, "x")]}
    ... )
    {'onset_error': 0.1, 'offset_error': 0.2, 'matched': 1, 'references': 1}
    """
    from scipy.optimize import linear_sum_assignment

    onsets, offsets, total = [], [], 0
    for name, refs in references.items():
        total += len(refs)
        for label in {ref[2] for ref in refs}:
            ref = [r for r in refs if r[2] == label]
            est = [e for e in estimated[name] if e[2] == label]
            if not est:
                continue
            overlap = np.array(
                [
                    [max(0.0, min(r[1], e[1]) - max(r[0], e[0])) for e in est]
                    for r in ref
                ]  # fmt: skip
            )
            for i, j in zip(*linear_sum_assignment(-overlap)):
                if overlap[i, j] > 0:
                    onsets.append(abs(est[j][0] - ref[i][0]))
                    offsets.append(abs(est[j][1] - ref[i][1]))
    return {
        "onset_error": round(float(np.median(onsets)), 4) if onsets else None,
        "offset_error": round(float(np.median(offsets)), 4) if onsets else None,
        "matched": len(onsets),
        "references": total,
    }


def evaluate(scores, references, durations, labels, thresholds, window):
    """The event metrics and the matched events' timing errors."""
    from speechbrain_ast.events.evaluate import evaluate_events
    from speechbrain_ast.events.postprocess import scores_to_events

    stats = evaluate_events(
        scores, references, durations, labels, thresholds, window
    )
    estimated = {
        name: scores_to_events(probs, edges, labels, thresholds, window)
        for name, (edges, probs) in scores.items()
    }
    stats = {k: round(v, 4) for k, v in stats.items()}
    return {**stats, **matched_errors(estimated, references)}


def compare(model_folder, save, labels, args):
    """Window tagging and the frame head on the test set."""
    from speechbrain_ast.events.model_folder import folder_event_settings
    from speechbrain_ast.events.postprocess import tune_thresholds
    from speechbrain_ast.inference import ASTAudioClassifier

    model = ASTAudioClassifier.from_hparams(
        source=model_folder, savedir=model_folder + "_loaded"
    )
    if list(model.labels) != labels:
        raise RuntimeError(f"the folder's labels {model.labels} != {labels}")
    valid = score_set(
        model, os.path.join(save, "valid.json"), args.window, args.hop
    )
    test = score_set(
        model, os.path.join(save, "test.json"), args.window, args.hop
    )
    window_thresholds = tune_thresholds(valid[1], valid[2], labels)
    thresholds, median_window = folder_event_settings(model)
    return {
        "window_tagging": {
            **evaluate(test[1], test[2], test[3], labels, window_thresholds, 1),
            "thresholds": window_thresholds,
        },
        "frame_head": {
            **evaluate(
                test[0], test[2], test[3], labels, thresholds, median_window
            ),
            "thresholds": thresholds,
            "median_window": median_window,
        },
    }


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Sound events: the frame head against window tagging "
        "with one model, on FSDD digits over real backgrounds."
    )
    parser.add_argument("--recordings", default=DEFAULT_RECORDINGS,
                        help="FSDD's recordings folder")  # fmt: skip
    parser.add_argument("--sounds", default=DEFAULT_SOUNDS,
                        help="folder of the background recordings")  # fmt: skip
    parser.add_argument(
        "--backgrounds",
        default=DEFAULT_BACKGROUNDS,
        help="train/valid/test backgrounds: comma-separated names in "
        f"--sounds, the splits separated by '/' (default {DEFAULT_BACKGROUNDS})",
    )
    parser.add_argument("--train_clips", type=int, default=400)
    parser.add_argument("--weak_clips", type=int, default=100)
    parser.add_argument("--valid_clips", type=int, default=40)
    parser.add_argument("--test_clips", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--events",
        type=int,
        nargs=2,
        default=(2, 6),
        metavar=("MIN", "MAX"),
        help="events per soundscape",
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--batch_size",
        type=int,
        default=4,
        help="small batches: more steps for the same time",
    )
    parser.add_argument(
        "--decay_start",
        type=int,
        default=25,
        help="the epoch the learning rate starts decaying",
    )
    parser.add_argument(
        "--select_by",
        default="event_f1",
        help="the validation metric the kept checkpoint "
        "maximises (a small model's PSDS1 can stay 0)",
    )
    parser.add_argument("--window", type=float, default=1.0,
                        help="window tagging's --window (seconds)")  # fmt: skip
    parser.add_argument("--hop", type=float, default=0.5,
                        help="window tagging's --hop (seconds)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--out", help="JSON file for the results")
    parser.add_argument("--work", help="folder for the runs (default: temp)")
    args = parser.parse_args(argv)
    args.recordings, args.sounds = map(
        os.path.abspath, (args.recordings, args.sounds)
    )
    for folder in (args.recordings, args.sounds):
        if not os.path.isdir(folder):
            parser.error(f"{folder!r} is not a folder")
    splits = args.backgrounds.split("/")
    if len(splits) != 3:
        parser.error("--backgrounds needs train/valid/test, separated by '/'")
    args.backgrounds = []
    for names in splits:
        paths = []
        for name in filter(None, names.split(",")):
            found = [f for f in sorted(os.listdir(args.sounds))
                     if os.path.splitext(f)[0] == name]  # fmt: skip
            if not found:
                parser.error(f"--backgrounds: no {name}.* in {args.sounds}")
            paths.append(os.path.join(args.sounds, found[0]))
        args.backgrounds.append(paths)
    if args.quick:
        args.train_clips, args.weak_clips = 8, 4
        args.valid_clips = args.test_clips = 6
        args.duration, args.epochs = 4.0, 1
    if (
        min(args.epochs, args.train_clips, args.valid_clips, args.test_clips)
        < 1
    ):
        parser.error("--epochs and the clip counts must be at least 1")
    return _write(run(args), args.out)


def run(args):
    """Synthesis, training, comparison; the results."""
    from deploy import cpu_record

    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="events_"))
    data, out = os.path.join(work, "data"), os.path.join(work, "run")
    digits = (0, 1, 2) if args.quick else tuple(range(10))
    start = time.perf_counter()
    labels = synthesize(args, data, digits)
    seconds = {"synthesis": time.perf_counter() - start}
    seconds["training"] = train(args, data, out, len(labels))
    start = time.perf_counter()
    results = compare(
        os.path.join(out, "model"), os.path.join(out, "save"), labels, args
    )
    seconds["comparison"] = time.perf_counter() - start
    window_f1 = results["window_tagging"]["event_f1"]
    frame_f1 = results["frame_head"]["event_f1"]
    ratio = round(frame_f1 / window_f1, 3) if window_f1 else None
    # with no window tagging event right, any frame head event is ahead
    met = frame_f1 > 0 if ratio is None else ratio >= TARGET
    results = {
        "cpu": cpu_record(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "labels": labels,
        **results,
        "event_f1_ratio": ratio,
        "target": TARGET,
        "target_met": met,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    _print_table(results)
    return results


def _print_table(results):
    """The comparison as a table on stdout."""
    print(
        f"\n{'method':16s} {'event F1':>9s} {'PSDS1':>7s} {'segment F1':>11s}"
        f" {'onset err':>10s} {'offset err':>11s}  matched"
    )
    for name in ("window_tagging", "frame_head"):
        r = results[name]
        errors = [
            "-" if r[k] is None else f"{r[k]:.3f}"
            for k in ("onset_error", "offset_error")
        ]
        print(
            f"{name:16s} {r['event_f1']:9.3f} {r['psds1']:7.3f} "
            f"{r['segment_f1']:11.3f} {errors[0]:>10s} {errors[1]:>11s}  "
            f"{r['matched']}/{r['references']}"
        )
    ratio = results["event_f1_ratio"]
    if ratio is None:  # window tagging got no event right
        ratio = "unbounded (window tagging's event F1 is 0)"
    print(
        f"frame head / window tagging event F1: {ratio} "
        f"(target >= {TARGET}: {'met' if results['target_met'] else 'not met'})"
        f"; seconds {results['seconds']}"
    )


def _write(results, out):
    """Writes the results JSON (when asked); returns the exit status 0."""
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
