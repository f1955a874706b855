"""Benchmarks: speechbrain-ast against HuggingFace transformers' AST.

One run on one machine measures ours against ``ASTForAudioClassification``
(same AST-Base config, same random weights through our importer, SDPA
attention, its ``ASTFeatureExtractor`` called as its users call it) and
prints ratios. Every figure is the median of several runs after warm-up;
ours and theirs run alternately so that load drifting on the machine hits
both alike.

::

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--device cpu]
        [--dtype fp32|bf16|fp16] [--threads 2] [--json out.json]
        [--update docs/benchmarks.json] [--plot docs/benchmarks.png] [--tiny]
        [--compile]

Sections, in order: ``latency`` (inference per clip and the matmul roof),
``frontend`` (batched fbank vs a per-clip torchaudio loop), ``native``
(a 1 s clip at its own length vs padded to 1024 frames), ``int8``
(dynamic quantization vs fp32 transformers), ``train`` (one ESC-50 step),
``patchout`` (a training step with PaSST's patchout vs full), ``compile``
(``torch.compile`` of the lobe), ``tag`` (a 10-minute file through the
tagging CLI), ``accuracy`` (patchout and int8 accuracy along training
curves, ``benchmarks/accuracy.py``). ``--device cuda`` runs ``latency``,
``train``, ``patchout``, ``frontend`` and ``native`` on the GPU (clips/s,
samples/s, model FLOPs utilisation) with ``--dtype`` autocast;
``--compile`` puts both models through ``torch.compile`` in the GPU
inference, training and patchout sections.
``--update`` reruns sections into an existing results file: their results
replace the old ones, the command is recorded under ``runs`` and the day
under ``dates``, the rest is kept; with ``--plot-only`` it only redraws
``--plot`` from that file.
``--tiny`` swaps AST-Base for a 64-wide 2-block model, to try the script.

Each section is a module of ``benchmarks/sections/`` (``common`` holds
what they share: options, models, pipelines, tables); this script only
dispatches. The other benchmarks run on their own: ``accuracy.py``,
``deploy.py``, ``input_pipeline.py``, ``small_data.py``,
``before_after.py``, and ``timing.py`` (the timers all of them use).

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import sys
import time

import torch
from sections.common import DTYPES, Bench
from sections.compiled import bench_compile
from sections.curves import bench_accuracy
from sections.frontend import bench_frontend
from sections.int8 import bench_int8
from sections.latency import LATENCY_CLIPS, bench_latency
from sections.native import bench_native
from sections.plot import plot
from sections.tag import bench_tag
from sections.training import bench_patchout, bench_train
from timing import machine

# in the order they run
SECTIONS = {
    "latency": bench_latency,
    "frontend": bench_frontend,
    "native": bench_native,
    "int8": bench_int8,
    "train": bench_train,
    "patchout": bench_patchout,
    "compile": bench_compile,
    "tag": bench_tag,
    "accuracy": bench_accuracy,
}
# the sections that run on a GPU too
GPU_SECTIONS = ("latency", "train", "patchout", "frontend", "native")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer reps")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"sections to run (repeat or comma-separate): {tuple(SECTIONS)}",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="fp32",
        help="autocast precision for ours and transformers alike",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads"
    )
    parser.add_argument("--json", metavar="PATH", help="write results here")
    parser.add_argument(
        "--update",
        metavar="PATH",
        help="replace the sections run in this existing --json file",
    )
    parser.add_argument("--plot", metavar="PNG", help="draw the figures")
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="measure nothing: draw --plot from the --update file",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny model, to try the script"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile both models (ours and transformers') in the GPU "
        "inference, training and patchout sections; the first calls, "
        "compilation included, are warm-up",
    )
    parser.add_argument(
        "--durations-b8",
        default="1,5,10",
        help="clip lengths (s, comma-separated) measured at batch 8; e.g. "
        "10 alone saves time, since every clip is padded to 1024 frames and "
        "the model's work is the same",
    )
    parser.add_argument(
        "--train-batch",
        type=int,
        help="training batch (default 2 on CPU, the ESC-50 step; 32 on GPU)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the GPU's nominal peak at --dtype, for the MFU",
    )
    args = parser.parse_args(argv)
    only = []
    for item in args.only or SECTIONS:
        only += [name.strip() for name in item.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(
            f"unknown sections {unknown}; choose from {tuple(SECTIONS)}"
        )
    args.only = only
    if args.update:
        if not os.path.isfile(args.update):
            parser.error(
                f"--update {args.update}: no such file; write it first with "
                "--json"
            )
        # checked now, not after the measurements it would be written with
        try:
            with open(args.update) as handle:
                saved = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            parser.error(f"--update {args.update}: cannot be read ({error})")
        if not isinstance(saved, dict) or not isinstance(
            saved.get("results"), dict
        ):
            parser.error(
                f"--update {args.update}: not a results file written by "
                "--json (no 'results' mapping)"
            )
        # sections keep their names on either device: a GPU run must not
        # replace a CPU file's figures, nor the reverse
        saved_gpu = "gpu" in (saved.get("machine") or {})
        if not args.plot_only and saved_gpu != args.device.startswith("cuda"):
            kind = "GPU" if saved_gpu else "CPU"
            parser.error(
                f"--update {args.update} holds {kind} results and this run "
                f"is on {args.device}: its sections would replace them; "
                "write a separate file with --json"
            )
    if args.plot_only and not (args.update and args.plot):
        parser.error("--plot-only needs --update FILE and --plot PNG")
    if args.update and args.json:
        parser.error("use --json (a new file) or --update, not both")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    for name in ("train_batch", "peak_tflops"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} must be positive, got {value}")
    try:
        durations = {float(d) for d in args.durations_b8.split(",")}
    except ValueError:
        durations = None
    if not durations or not durations <= set(LATENCY_CLIPS):
        parser.error(
            f"--durations-b8 {args.durations_b8!r}: give some of "
            f"{', '.join(f'{d:g}' for d in LATENCY_CLIPS)} (seconds, "
            "comma-separated), the clip lengths the latency table measures"
        )
    args.durations_b8 = sorted(durations)
    return args


def update_results(path, new, command, date=None):
    """Replaces the sections in ``new`` inside the results file ``path``,
    records ``command`` as where they come from and ``date`` (default:
    today, ``YYYY-MM-DD``) as when, and returns all results."""
    with open(path) as handle:
        saved = json.load(handle)
    saved.setdefault("results", {}).update(new)
    runs = saved.setdefault("runs", {})
    dates = saved.setdefault("dates", {})
    for section in new:
        runs[section] = command
        dates[section] = date or time.strftime("%Y-%m-%d")
    with open(path, "w") as handle:
        json.dump(saved, handle, indent=1)
    return saved["results"]


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        with open(args.update) as handle:
            plot(json.load(handle)["results"], args.plot)
        print(f"plot: {args.plot} (from {args.update}, nothing measured)")
        return
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bench = Bench(args)
    info = machine(args.device)
    print("# speechbrain-ast benchmarks")
    print(json.dumps(info))
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    print("command: " + command)
    for name, run_section in SECTIONS.items():
        if name not in args.only:
            continue
        if bench.device.type == "cuda" and name not in GPU_SECTIONS:
            continue
        start = time.perf_counter()
        run_section(bench)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
    info["loadavg_end"] = machine(args.device)["loadavg"]
    print(f"\nload average at the end: {info['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as handle:
            today = time.strftime("%Y-%m-%d")
            json.dump(
                {
                    "machine": info,
                    "dates": dict.fromkeys(bench.results, today),
                    "results": bench.results,
                },
                handle,
                indent=1,
            )
    results = bench.results
    if args.update:
        results = update_results(args.update, bench.results, command)
        print(f"updated {sorted(bench.results)} in {args.update}")
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
