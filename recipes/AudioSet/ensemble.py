#!/usr/bin/env python3
"""Prediction ensembles of trained AudioSet models (the paper's Ensemble-S
and Ensemble-M).

Each training run saves its test scores in
``<output_folder>/test_predictions.pt``; this script averages the scores of
several runs over the same eval clips and writes the ensemble's mAP, mean
AUC and d-prime (and each model's, for comparison):

    # Ensemble-S: the same set-up, different seeds
    python recipes/AudioSet/ensemble.py results/AudioSet/ast_full/{1,2,3} \
        --output_file results/AudioSet/ensemble_s.json
    # Ensemble-M: strides 10/10/10/12/14/16 (--fstride/--tstride at training)
    python recipes/AudioSet/ensemble.py run_s10_1 run_s10_2 run_s10_3 \
        run_s12 run_s14 run_s16 --output_file ensemble_m.json

A run may be given as its output folder or as a predictions file. Runs
whose clips differ (e.g. prepared from different downloads) are refused,
unless ``--intersect`` restricts all of them to the clips they share.

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import sys

import torch

from speechbrain_ast.training.ensemble import ensemble_predictions
from speechbrain_ast.training.metrics import classification_stats

PREDICTIONS_FILE = "test_predictions.pt"


def load_predictions(path):
    """Reads one run's saved test predictions.

    Arguments
    ---------
    path : str
        A run's output folder (holding ``test_predictions.pt``) or the file.

    Returns
    -------
    dict
        ``ids`` (list of str), ``scores`` and ``targets`` (``[N, C]``).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> torch.save(
    ...     {
    ...         "ids": ["a"],
    ...         "scores": torch.ones(1, 2),
    ...         "targets": torch.ones(1, 2),
    ...     },
    ...     d + "/test_predictions.pt",
    ... )
    >>> load_predictions(d)["ids"]
    ['a']
    """
    if os.path.isdir(path):
        path = os.path.join(path, PREDICTIONS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No predictions at {path!r}: give a training output folder "
            f"(its test stage writes {PREDICTIONS_FILE}) or the file."
        )
    data = torch.load(path, map_location="cpu", weights_only=True)
    if set(data) < {"ids", "scores", "targets"}:
        raise ValueError(
            f"{path} lacks ids/scores/targets: it is not a "
            f"{PREDICTIONS_FILE} written by the recipe's test stage."
        )
    return data


def align(runs, names, intersect=False):
    """Puts every run's scores in the first run's clip order.

    Arguments
    ---------
    runs : list of dict
        What :func:`load_predictions` returned, one per model.
    names : list of str
        The runs' names, for error messages.
    intersect : bool
        Keep only the clips that every run has, instead of raising.

    Returns
    -------
    ids : list of str
    scores : list of torch.Tensor
        ``[N, C]`` per run, rows in ``ids`` order.
    targets : torch.Tensor
        ``[N, C]``.

    Example
    -------
    >>> a = {
    ...     "ids": ["x", "y"],
    ...     "scores": torch.tensor([[0.1], [0.9]]),
    ...     "targets": torch.tensor([[0.0], [1.0]]),
    ... }
    >>> b = {
    ...     "ids": ["y", "x"],
    ...     "scores": torch.tensor([[0.7], [0.3]]),
    ...     "targets": torch.tensor([[1.0], [0.0]]),
    ... }
    >>> ids, scores, targets = align([a, b], ["a", "b"])
    >>> scores[1].flatten().tolist()
    [0.30000001192092896, 0.699999988079071]
    """
    common = set(runs[0]["ids"])
    for run, name in zip(runs[1:], names[1:]):
        if set(run["ids"]) != common and not intersect:
            only = sorted(set(run["ids"]) ^ set(runs[0]["ids"]))
            raise ValueError(
                f"{name} and {names[0]} scored different clips "
                f"({len(only)} differ, e.g. {only[:3]}): ensemble runs "
                "tested on the same eval manifest, or pass --intersect."
            )
        common &= set(run["ids"])
    ids = [i for i in runs[0]["ids"] if i in common]
    scores = []
    for run in runs:
        position = {clip: n for n, clip in enumerate(run["ids"])}
        index = torch.tensor([position[i] for i in ids], dtype=torch.long)
        scores.append(run["scores"][index].float())
    position = {clip: n for n, clip in enumerate(runs[0]["ids"])}
    index = torch.tensor([position[i] for i in ids], dtype=torch.long)
    return ids, scores, runs[0]["targets"][index].float()


def evaluate_ensemble(paths, intersect=False):
    """Each model's and the ensemble's multi-label metrics.

    Arguments
    ---------
    paths : list of str
        Run output folders or predictions files.
    intersect : bool
        See :func:`align`.

    Returns
    -------
    dict
        ``models``: ``{path: {"mAP", "mAUC", "dprime", "acc"}}``,
        ``ensemble``: the same for the averaged scores, ``n_clips``.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> for k, s in enumerate(
    ...     [
    ...         [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]],
    ...         [[0.6, 0.3], [0.1, 0.9], [0.7, 0.4]],
    ...     ]
    ... ):
    ...     torch.save(
    ...         {
    ...             "ids": ["a", "b", "c"],
    ...             "scores": torch.tensor(s),
    ...             "targets": t,
    ...         },
    ...         f"{d}/{k}.pt",
    ...     )
    >>> out = evaluate_ensemble([f"{d}/0.pt", f"{d}/1.pt"])
    >>> out["n_clips"], round(out["ensemble"]["mAP"], 4)
    (3, 1.0)
    """
    runs = [load_predictions(p) for p in paths]
    ids, scores, targets = align(runs, list(paths), intersect)
    return {
        "n_clips": len(ids),
        "models": {
            path: classification_stats(s, targets, multi_label=True)
            for path, s in zip(paths, scores)
        },
        "ensemble": classification_stats(
            ensemble_predictions(scores), targets, multi_label=True
        ),
    }


def main(argv=None):
    """Command line: ``ensemble.py RUN [RUN ...] [--output_file F]``."""
    parser = argparse.ArgumentParser(
        description="Average the test scores of several AudioSet runs "
        "(Ensemble-S: seeds; Ensemble-M: strides) and report the mAP."
    )
    parser.add_argument(
        "runs",
        nargs="+",
        help="training output folders or test_predictions.pt files",
    )
    parser.add_argument(
        "--output_file",
        default="ensemble_results.json",
        help="where to write the metrics (json)",
    )
    parser.add_argument(
        "--intersect",
        action="store_true",
        help="use only the clips every run scored",
    )
    args = parser.parse_args(argv)
    result = evaluate_ensemble(args.runs, args.intersect)
    for path, stats in result["models"].items():
        print(f"{path}: mAP {stats['mAP']:.4f}")
    stats = result["ensemble"]
    print(
        f"Ensemble of {len(args.runs)} models on {result['n_clips']} clips: "
        f"mAP {stats['mAP']:.4f}, mAUC {stats['mAUC']:.4f}, "
        f"d-prime {stats['dprime']:.4f}"
    )
    folder = os.path.dirname(os.path.abspath(args.output_file))
    os.makedirs(folder, exist_ok=True)
    with open(args.output_file, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
