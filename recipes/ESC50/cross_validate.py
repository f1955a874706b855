#!/usr/bin/env python3
"""ESC-50 5-fold cross-validation, reported as the paper does.

Trains one model per held-out fold (train.py with train folds = the others,
valid = test = the held-out fold, as the reference), then averages the
per-epoch validation accuracy over the folds, picks the epoch with the best
fold-averaged accuracy, and reports each fold's accuracy at that epoch and
their mean +- std (also the last epoch's, for reference). Writes
``<output_folder>/cv_results.json`` and ``cv_results.md``.

Usage (any train.py option may follow; runs resume where they stopped)::

    python recipes/ESC50/cross_validate.py hparams/ast.yaml \
        --data_folder /path/to/ESC-50-master --output_folder results/cv \
        [--folds 1,2,3,4,5] [--launcher "torchrun --nproc_per_node=4"] \
        [train.py overrides, e.g. --audioset_pretrain /path/to/ckpt.pth]

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

RECIPE_DIR = os.path.dirname(os.path.abspath(__file__))
ALL_FOLDS = (1, 2, 3, 4, 5)


def read_valid_accuracy(run_folder):
    """{epoch: validation accuracy} from a run's metrics.jsonl (the last
    record of an epoch wins, e.g. after a resumed run)."""
    path = os.path.join(run_folder, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: the run of this fold did not finish an "
            "epoch; run cross_validate.py again to resume it"
        )
    acc = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["stage"] == "valid":
                acc[int(record["epoch"])] = float(record["acc"])
    return acc


def summarize(fold_folders):
    """Fold-averaged best epoch, per-fold accuracy there, mean +- std.

    Arguments
    ---------
    fold_folders : dict of int to str
        Held-out fold -> its run's output folder.

    Returns
    -------
    dict
        ``best_epoch``, ``per_fold`` (fold -> acc at best epoch), ``mean``,
        ``std`` (population std over folds, as numpy's default the
        reference uses), ``last_epoch``, ``last_per_fold``, ``last_mean``,
        ``last_std``, ``epoch_means`` (epoch -> fold-averaged acc).

    Example
    -------
    >>> import tempfile
    >>> folders = {}
    >>> for fold, accs in {1: [0.5, 0.9], 2: [0.7, 0.8]}.items():
    ...     folders[fold] = tempfile.mkdtemp()
    ...     with open(os.path.join(folders[fold], "metrics.jsonl"), "w") as f:
    ...         for epoch, acc in enumerate(accs, 1):
    ...             _ = f.write(
    ...                 json.dumps(
    ...                     {"stage": "valid", "epoch": epoch, "acc": acc}
    ...                 )
    ...                 + "\\n"
    ...             )
    >>> result = summarize(folders)
    >>> result["best_epoch"], round(result["mean"], 3), round(result["std"], 3)
    (2, 0.85, 0.05)
    """
    accs = {fold: read_valid_accuracy(d) for fold, d in fold_folders.items()}
    common = set.intersection(*(set(a) for a in accs.values()))
    if not common:
        raise ValueError(
            "the folds share no finished epoch: "
            + ", ".join(f"fold {k}: {sorted(a)}" for k, a in accs.items())
        )
    epoch_means = {
        e: statistics.fmean(a[e] for a in accs.values()) for e in sorted(common)
    }
    best = max(epoch_means, key=lambda e: (epoch_means[e], -e))
    last = max(common)

    def at(epoch):
        per_fold = {fold: a[epoch] for fold, a in sorted(accs.items())}
        values = list(per_fold.values())
        return per_fold, statistics.fmean(values), statistics.pstdev(values)

    per_fold, mean, std = at(best)
    last_per_fold, last_mean, last_std = at(last)
    return {
        "best_epoch": best,
        "per_fold": per_fold,
        "mean": mean,
        "std": std,
        "last_epoch": last,
        "last_per_fold": last_per_fold,
        "last_mean": last_mean,
        "last_std": last_std,
        "epoch_means": epoch_means,
    }


def write_report(result, output_folder):
    """cv_results.json and a markdown table."""
    with open(os.path.join(output_folder, "cv_results.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [
        "| fold | accuracy (best epoch) | accuracy (last epoch) |",
        "|---|---|---|",
    ]
    for fold, acc in result["per_fold"].items():
        last = result["last_per_fold"][fold]
        lines.append(f"| {fold} | {100 * acc:.1f}% | {100 * last:.1f}% |")
    lines.append(
        f"| mean +- std | {100 * result['mean']:.1f} +- "
        f"{100 * result['std']:.1f}% (epoch {result['best_epoch']}) | "
        f"{100 * result['last_mean']:.1f} +- {100 * result['last_std']:.1f}%"
        f" (epoch {result['last_epoch']}) |"
    )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(output_folder, "cv_results.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None):
    """Runs train.py per fold, then summarizes."""
    parser = argparse.ArgumentParser(
        description="ESC-50 cross-validation with train.py",
        epilog="Unknown options are passed on to train.py.",
    )
    parser.add_argument("hparams_file")
    parser.add_argument("--output_folder", required=True)
    parser.add_argument("--folds", default="1,2,3,4,5")
    parser.add_argument(
        "--launcher", default="", help='e.g. "torchrun --nproc_per_node=4"'
    )
    args, train_args = parser.parse_known_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    if not set(folds) <= set(ALL_FOLDS):
        raise SystemExit(f"--folds must be within 1..5, got {folds}")
    os.makedirs(args.output_folder, exist_ok=True)
    launcher = shlex.split(args.launcher) or [sys.executable]
    fold_folders = {}
    for fold in folds:
        out = os.path.join(args.output_folder, f"fold{fold}")
        train = [f for f in ALL_FOLDS if f != fold]
        cmd = [
            *launcher,
            os.path.join(RECIPE_DIR, "train.py"),
            args.hparams_file,
            *train_args,
            "--output_folder", out,
            "--train_fold_nums", str(train),
            "--valid_fold_nums", f"[{fold}]",
            "--test_fold_nums", f"[{fold}]",
        ]  # fmt: skip
        print("==", " ".join(shlex.quote(c) for c in cmd), flush=True)
        subprocess.run(cmd, check=True)
        fold_folders[fold] = out
    print(write_report(summarize(fold_folders), args.output_folder))


if __name__ == "__main__":
    main()
