"""Command line: tag audio files with an AST model folder.

::

    python -m speechbrain_ast.tag --model DIR FILE... [--top-k K] [--json]
        [--window S --hop S] [--plot out.png] [--batch-size N]
        [--events [--events-out PATH] [--reference STRONG.tsv]]
    python -m speechbrain_ast.tag --model DIR --stream mic|-|FILE.wav
        [--window S --hop S] [--events]

Whole-file mode scores each file as one clip. Windowed mode (``--window``)
reads the file in a stream, one window at a time, so memory does not grow
with the recording's length. Windows start at 0, hop, 2 hop, ... (before
the end of the file) and the last window is the first that reaches the
end (it may be shorter than ``--window``; a file shorter than one window
is one window).
A 60 s file with ``--window 10 --hop 5`` gives 11 windows (starts 0, 5,
..., 50). Per window scores and the clip-level aggregate (mean and max
over windows) are printed.

``--events`` adds sound events (onset, offset, label, score) from the
windows' frame scores, stitched on the file's time axis; ``--stream``
tags a live source every hop. Both are in
:mod:`speechbrain_ast.events.tagging`.

A bad file (missing, empty, not audio, truncated, NaN samples) gets one
line on stderr naming it; the other files are still tagged and the exit
status is 1.

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import sys

import torch

from speechbrain_ast.data.audio import (
    AudioError,
    file_windows,
    iter_windows,
    load_audio,
)
from speechbrain_ast.events import options, tagging
from speechbrain_ast.events.evaluate import read_events_tsv
from speechbrain_ast.events.plot import plot_results

__all__ = ["main", "aggregate"]

_topk_json, _format_topk = tagging.topk_items, tagging.format_topk


def aggregate(window_scores):
    """Clip-level scores from per-window scores.

    Arguments
    ---------
    window_scores : torch.Tensor
        ``[n_windows, n_classes]``.

    Returns
    -------
    dict
        ``{"mean": [n_classes], "max": [n_classes]}`` over windows.

    Example
    -------
    >>> agg = aggregate(torch.tensor([[0.2, 0.9], [0.4, 0.1]]))
    >>> [round(v, 3) for v in agg["mean"].tolist()]
    [0.3, 0.5]
    >>> [round(v, 3) for v in agg["max"].tolist()]
    [0.4, 0.9]
    """
    return {
        "mean": window_scores.mean(dim=0),
        "max": window_scores.max(dim=0).values,
    }


def _pad_batch(wavs):
    """Zero-padded ``[batch, samples]`` and relative lengths."""
    longest = max(w.shape[0] for w in wavs)
    batch = torch.zeros(len(wavs), longest)
    for i, wav in enumerate(wavs):
        batch[i, : wav.shape[0]] = wav
    lens = torch.tensor([w.shape[0] / longest for w in wavs])
    return batch, lens


def _score_windows(model, path, args, progress, events=None):
    """Per-window scores ``[n, C]`` and the windows' (start, end); with
    ``events`` (a :class:`~speechbrain_ast.events.tagging.WindowEvents`)
    also each window's frame scores."""
    spans, scores, pending = [], [], []

    def flush():
        """Scores the pending windows as one batch."""
        batch, lens = _pad_batch([w for _, _, w in pending])
        if events is None:
            logits = model.compute_logits(batch, lens)
        else:  # one pass of the lobe for both
            logits, frames = model.logits_and_frames(batch, lens)
            starts = [start for start, _, _ in pending]
            events.add(starts, batch, lens, frames=frames)
        scores.append(model.scores_from_logits(logits).cpu())
        spans.extend((s, e) for s, e, _ in pending)
        progress.update(len(pending))
        pending.clear()

    for start, end, wav in iter_windows(
        path, args.window, args.hop, model.sample_rate
    ):
        pending.append((start, end, wav))
        if len(pending) == args.batch_size:
            flush()
    if pending:
        flush()
    return torch.cat(scores), spans


def _tag_file(model, path, args, progress_factory):
    """Tags one file; returns the JSON-able result."""
    if not os.path.exists(path):
        # checked here: the reader's own message also speaks of manifests
        raise AudioError(f"Audio file {path!r} does not exist: check the path.")
    if args.window is None:
        wav = load_audio(path, model.sample_rate)
        scores = model.scores_from_logits(model.compute_logits(wav[None]))
        return {"file": path, "labels": _topk_json(model, scores, args.top_k)}
    n = file_windows(path, args.window, args.hop)[3]
    events = None
    if args.events:  # frame scores kept for --reference and --plot only
        settings = options.event_settings(model, args)
        keep = args.reference is not None or bool(args.plot)
        events = tagging.WindowEvents(model, *settings, keep_frames=keep)
    with progress_factory(n, os.path.basename(path)) as progress:
        scores, spans = _score_windows(model, path, args, progress, events)
    agg = aggregate(scores)
    result = {
        "file": path,
        "windows": [
            {
                "start": round(start, 6),
                "end": round(end, 6),
                "labels": _topk_json(model, row, args.top_k),
            }
            for (start, end), row in zip(spans, scores)
        ],
        "mean": _topk_json(model, agg["mean"], args.top_k),
        "max": _topk_json(model, agg["max"], args.top_k),
        "_scores": scores,
    }
    if events is not None:
        result["_duration"] = end = spans[-1][1]
        events.finish(end)
        result.update(_events=events.events, _frames=events.frames)
        result["events"] = [tagging.event_dict(e) for e in events.events]
    return result


def _print_result(result, as_json, out):
    """Writes one file's result (text block or one JSON line)."""
    if as_json:
        clean = {k: v for k, v in result.items() if not k.startswith("_")}
        out.write(json.dumps(clean, ensure_ascii=False) + "\n")
        return
    out.write(f"{result['file']}\n")
    if "labels" in result:
        for item in result["labels"]:
            out.write(f"  {item['score']:.3f}  {item['label']}\n")
        return
    for win in result["windows"]:
        span = f"[{win['start']:.2f}-{win['end']:.2f} s]"
        out.write(f"  {span} {_format_topk(win['labels'])}\n")
    out.write(f"  mean: {_format_topk(result['mean'])}\n")
    out.write(f"  max:  {_format_topk(result['max'])}\n")
    for event in result.get("_events", ()):
        out.write(f"  event {tagging.format_event(event)}\n")
    out.flush()


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ast.tag",
        description="Tag audio files with an AST model folder (written by "
        "speechbrain_ast.convert or a recipe's export). Only load model "
        "folders you trust: hyperparams.yaml can run code.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="audio files")
    parser.add_argument(
        "--model", required=True, metavar="DIR", help="model folder"
    )
    parser.add_argument(
        "--top-k", type=int, default=5, help="labels per result (default 5)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per file"
    )
    parser.add_argument(
        "--window",
        type=float,
        metavar="S",
        help="tag window by window, windows of S seconds (streamed)",
    )
    parser.add_argument(
        "--hop",
        type=float,
        metavar="S",
        help="seconds between window starts (default: --window)",
    )
    parser.add_argument(
        "--plot",
        metavar="PNG",
        help="draw the top classes' scores over time (needs --window and "
        "matplotlib)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="windows per forward pass"
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device (default cpu)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="int8 dynamic quantization of the model's linear layers (CPU "
        "only): faster, logits close to but not equal to float32",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="bf16/fp16: the model in that precision, features in float32 "
        "(warns on a CPU without native support); with --backend openvino "
        "its inference precision (default fp32)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        default="torch",
        help="onnxruntime / openvino: --model is an .onnx file written by "
        "speechbrain_ast.deploy.onnx (default torch: a model folder)",
    )
    parser.add_argument(
        "--savedir",
        default=None,
        help="where SpeechBrain links the model files (default: none, "
        "the folder is used in place)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown on a terminal only)",
    )
    options.add_arguments(parser)
    return parser


def _check_args(parser, args):
    """Argument errors argparse cannot see (exits with status 2)."""
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    options.check_arguments(parser, args)
    # --events and --stream default to the model's window (set_window)
    windowed = args.window is not None or args.events or args.stream
    if args.hop is not None and not windowed:
        parser.error("--hop needs --window")
    if args.window is not None and not args.window > 0:
        parser.error(f"--window must be > 0 seconds, got {args.window}")
    if args.hop is not None and not args.hop > 0:
        parser.error(f"--hop must be > 0 seconds, got {args.hop}")
    if args.hop is None and args.window is not None and not args.stream:
        args.hop = args.window
    if args.backend != "torch" and (args.int8 or args.device != "cpu"):
        parser.error(
            f"--backend {args.backend} runs an exported file on the CPU: "
            "leave out --int8 / --device (export with --precision int8)"
        )
    if args.int8 and args.precision != "fp32":
        parser.error(
            f"--int8 and --precision {args.precision} are alternatives: "
            "leave out one of the two"
        )
    if args.int8 and args.device.split(":")[0] != "cpu":
        parser.error(
            f"--int8 runs on the CPU only, not --device {args.device}: "
            "leave out one of the two"
        )
    if args.plot is not None:
        if args.window is None and not args.events:
            parser.error("--plot draws scores over time: it needs --window")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(
                "--plot needs matplotlib, which is not installed: "
                "`pip install matplotlib`, or leave out --plot"
            )


def _device_error(device):
    """Why ``device`` cannot run here (an error line), or None."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return (
            f"error: --device {device!r} is not a torch device: use cpu, "
            "cuda or cuda:N."
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return (
                f"error: --device {device}: there is no CUDA device here "
                "(torch.cuda.is_available() is False: no NVIDIA GPU, no "
                "driver, or a CPU-only build of torch). Leave out --device "
                "to run on the CPU."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return (
                f"error: --device {device}: this machine has {count} CUDA "
                f"device(s), cuda:0..cuda:{count - 1}."
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        return (
            f"error: --device {device}: there is no MPS (Apple GPU) device "
            "here. Leave out --device to run on the CPU."
        )
    return None


def _load_model(args):
    """The ASTAudioClassifier, or an error message."""
    if args.backend != "torch":
        if not os.path.isfile(args.model):
            return None, (
                f"error: --backend {args.backend} needs --model FILE.onnx; "
                f"{args.model!r} is not a file: write one with python -m "
                "speechbrain_ast.deploy.onnx MODEL_FOLDER --out FILE.onnx."
            )
        from speechbrain_ast.deploy.onnx_runtime import OnnxClassifier

        try:
            return OnnxClassifier(
                args.model, args.backend, args.precision
            ), None
        except Exception as err:  # any failure: one line, no traceback
            return None, (
                f"error: cannot load {args.model!r} with {args.backend}: "
                f"{type(err).__name__}: {_one_line(err)}"
            )
    error = _device_error(args.device)
    if error:
        return None, error
    if not os.path.exists(args.model):
        return None, (
            f"error: model folder {args.model!r} does not exist: pass a "
            "folder written by speechbrain_ast.convert or a recipe's export."
        )
    if not os.path.isdir(args.model):
        return None, (
            f"error: --model {args.model!r} is a file, not a model folder: "
            "pass the folder that holds hyperparams.yaml."
        )
    hparams = os.path.join(args.model, "hyperparams.yaml")
    if not os.path.isfile(hparams):
        return None, (
            f"error: model folder {args.model!r} has no hyperparams.yaml: "
            "pass a folder written by speechbrain_ast.convert or a recipe's "
            "export."
        )
    from speechbrain_ast.inference.classifier import ASTAudioClassifier

    try:
        model = ASTAudioClassifier.from_hparams(
            source=os.path.abspath(args.model),
            savedir=args.savedir,
            run_opts={"device": args.device, "precision": args.precision},
        )
    except Exception as err:  # any failure: one line, no traceback
        return None, (
            f"error: cannot load model folder {args.model!r}: "
            f"{type(err).__name__}: {_one_line(err)}"
        )
    if args.int8:
        try:
            model.quantize_int8()
        except ValueError as err:  # no quantized engine in this torch
            return None, f"error: --int8: {_one_line(err)}"
    return model, None


def _one_line(err):
    """An exception's message on one line."""
    return " ".join(str(err).split())


def main(argv=None):
    """Runs the command line; returns the exit status.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every file was tagged, 1 when some failed, 2 for a usage or
        model error.

    Example
    -------
    >>> main(["--model", "/no/such/model", "a.wav"])
    2
    """
    from tqdm import tqdm

    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    model, error = _load_model(args)
    if not error and (args.events or args.stream):
        error = options.set_window(model, args)
    if error:
        print(error, file=sys.stderr)
        return 2
    if args.stream is not None:
        return tagging.run_stream(model, args)

    disable = True if args.no_progress else None  # None: on a terminal only

    def windows_bar(total, name):
        """A progress bar over the windows of one file."""
        return tqdm(
            total=total,
            desc=name,
            unit="win",
            file=sys.stderr,
            leave=False,
            disable=True if total < 2 * args.batch_size else disable,
        )

    failed, results = 0, []
    files = tqdm(
        args.files,
        unit="file",
        file=sys.stderr,
        disable=True if len(args.files) < 2 else disable,
    )
    for path in files:
        try:
            result = _tag_file(model, path, args, windows_bar)
        except AudioError as err:
            failed += 1
            tqdm.write(f"error: {_one_line(err)}", file=sys.stderr)
            continue
        except Exception as err:  # one line per file, never a traceback
            failed += 1
            tqdm.write(
                f"error: {path!r}: {type(err).__name__}: {_one_line(err)}",
                file=sys.stderr,
            )
            continue
        _print_result(result, args.json, sys.stdout)
        if args.plot or args.events_out or args.reference:
            results.append(result)
    if args.plot and results:
        references = args.reference and read_events_tsv(args.reference)
        plot_results(results, model.labels, args.plot, args.top_k, references)
    error = tagging.report_files(results, model, args, sys.stdout)
    if error:
        print(error, file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
