"""Accuracy side of the speed options: patchout training against full
training, and int8 inference against float32, on the learnable synthetic
sound classes of ``speechbrain_ast.testing`` (the recipes' test data).

A small AST (64 wide, 2 blocks, 16 x 16 patches with overlap, from
scratch) is trained with the same seed, data and batches with and without
patchout, and tested at several epoch counts along the way (learning
curves); the full model's int8 copy is tested at the same points. Three
seeds take about ten minutes on a 2-core CPU, so it measures the effect
of the options, not AST-Base's published accuracy.

::

    python benchmarks/accuracy.py [--epochs 25,50,100] [--seeds 0,1,2]
        [--size 64,2,2] [--classes 10] [--patchout-time 11]
        [--patchout-freq 4]

``python benchmarks/run.py --only accuracy`` runs the defaults and records
them with the other sections.

Authors
 * speechbrain-ast developers
"""

import argparse
import time

import numpy as np
import torch

from speechbrain_ast.deploy.quantize import quantize_int8  # noqa: E402
from speechbrain_ast.features import (  # noqa: E402
    FixedNormalization,
    KaldiFbank,
)
from speechbrain_ast.model.lobe import AST, ASTHead  # noqa: E402
from speechbrain_ast.testing.signals import class_signal  # noqa: E402


def make_split(n_classes, per_class, duration, seed):
    """Features ``[N, T, 128]`` and labels ``[N]`` of generated clips."""
    rng = np.random.default_rng(seed)
    wavs, labels = [], []
    for target in range(n_classes):
        for _ in range(per_class):
            wavs.append(
                class_signal(target, 16000, duration, rng, n_classes=n_classes)
            )
            labels.append(target)
    wavs = torch.tensor(np.stack(wavs), dtype=torch.float32)
    with torch.no_grad():
        feats = KaldiFbank(demean_waveform=True)(wavs)
    return feats, torch.tensor(labels)


def train_curve(
    data,
    n_classes,
    checkpoints,
    seed,
    batch_size=16,
    size=(64, 2, 2),
    **patchout,
):
    """Trains a small AST from scratch for ``max(checkpoints)`` epochs and
    tests it after each epoch count in ``checkpoints``.

    Arguments
    ---------
    data : tuple
        ``(train_x, train_y, test_x, test_y)``.
    n_classes : int
        Output classes.
    checkpoints : iterable of int
        Epoch counts after which the model is tested.
    seed : int
        Seeds the initialisation and the batch order.
    batch_size : int
        Clips per optimiser step.
    size : tuple of int
        ``(embed_dim, depth, num_heads)`` of the AST.
    **patchout
        ``patchout_time`` / ``patchout_freq`` for :class:`AST`.

    Returns
    -------
    dict
        ``{epochs: (accuracy, int8 accuracy, training seconds so far)}``;
        the seconds count training only, not testing.
    """
    train_x, train_y, test_x, test_y = data
    checkpoints = sorted(set(checkpoints))
    if not checkpoints or checkpoints[0] < 1:
        raise ValueError(
            f"checkpoints must be epoch counts >= 1, got {checkpoints}"
        )
    embed_dim, depth, num_heads = size
    torch.manual_seed(seed)
    lobe = AST(
        input_tdim=train_x.shape[1],
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        **patchout,
    )
    head = ASTHead(embed_dim, n_classes)
    params = list(lobe.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.95, 0.999))
    generator = torch.Generator().manual_seed(seed)
    curve, trained_s = {}, 0.0
    for epoch in range(1, checkpoints[-1] + 1):
        began = time.perf_counter()
        lobe.train(), head.train()
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(
                head(lobe(train_x[batch])), train_y[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        trained_s += time.perf_counter() - began
        if epoch in checkpoints:
            lobe.eval(), head.eval()
            int8 = [quantize_int8(module) for module in (lobe, head)]
            curve[epoch] = (
                accuracy(lobe, head, test_x, test_y),
                accuracy(*int8, test_x, test_y),
                trained_s,
            )
    return curve


def accuracy(lobe, head, feats, labels):
    """Fraction of ``feats`` whose top class is ``labels`` (batches of 64)."""
    with torch.inference_mode():
        predictions = torch.cat(
            [head(lobe(chunk)).argmax(1) for chunk in feats.split(64)]
        )
    return (predictions == labels).float().mean().item()


def patchout_and_int8_accuracy(
    n_classes=10,
    per_class_train=24,
    per_class_test=20,
    duration=3.0,
    checkpoints=(25, 50, 100),
    seeds=(0, 1, 2),
    patchout_time=11,
    patchout_freq=4,
    size=(64, 2, 2),
):
    """Test accuracy of full and patchout training at equal epochs, and of
    the full model's int8 copy, along the training.

    The clips are ``duration`` s (298 frames: a 12 x 28 patch grid); the
    default patchout drops 11 of 28 time columns and 4 of 12 frequency
    rows, PaSST's AudioSet fractions (40 of 99, 4 of 12). Each seed trains
    one full and one patchout model and tests both after every epoch count
    in ``checkpoints``, so the rows form learning curves: an early
    checkpoint shows which converges sooner, the last one what each reaches
    when trained to completion. Comparing patchout at twice full training's
    epochs gives the comparison at about equal training time. ``size`` is
    the AST's ``(embed_dim, depth, num_heads)``.

    Returns
    -------
    list of dict
        One row per seed and checkpoint: ``seed``, ``epochs``, ``full``,
        ``patchout`` and ``int8`` (the full model quantized) accuracies,
        and the training wall times so far ``full_s`` and ``patchout_s``
        (the runs follow each other in one process, so they are comparable
        only roughly).

    Example
    -------
    >>> rows = patchout_and_int8_accuracy(
    ...     n_classes=2,
    ...     per_class_train=2,
    ...     per_class_test=2,
    ...     duration=1.0,
    ...     checkpoints=(1, 2),
    ...     seeds=(0,),
    ...     patchout_time=2,
    ...     patchout_freq=1,
    ... )
    >>> [(row["seed"], row["epochs"]) for row in rows]
    [(0, 1), (0, 2)]
    >>> sorted(rows[0])
    ['epochs', 'full', 'full_s', 'int8', 'patchout', 'patchout_s', 'seed']
    """
    train_x, train_y = make_split(n_classes, per_class_train, duration, 10)
    test_x, test_y = make_split(n_classes, per_class_test, duration, 20)
    # the dataset's own statistics, as a user with their own data would
    norm = FixedNormalization(
        mean=train_x.mean().item(), std=train_x.std().item()
    )
    data = (norm(train_x), train_y, norm(test_x), test_y)
    patchout = dict(patchout_time=patchout_time, patchout_freq=patchout_freq)
    rows = []
    for seed in seeds:
        full = train_curve(data, n_classes, checkpoints, seed, size=size)
        dropped = train_curve(
            data, n_classes, checkpoints, seed, size=size, **patchout
        )
        for epochs in sorted(full):
            rows.append(
                {
                    "seed": seed,
                    "epochs": epochs,
                    "full": full[epochs][0],
                    "patchout": dropped[epochs][0],
                    "int8": full[epochs][1],
                    "full_s": full[epochs][2],
                    "patchout_s": dropped[epochs][2],
                }
            )
    return rows


def _integers(text, option, count=None):
    """``"1,2,3"`` as a tuple of ints, or a usage error naming ``option``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or (count and len(values) != count):
        wanted = f"{count} " if count else ""
        raise argparse.ArgumentTypeError(
            f"{option} {text!r}: give {wanted}comma-separated whole numbers"
        )
    return values


def main(argv=None):
    """Command line: prints the accuracy table of full, patchout and int8."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument(
        "--epochs",
        default="25,50,100",
        help="epoch counts after which both models are tested (default: "
        "25,50,100)",
    )
    parser.add_argument(
        "--seeds", default="0,1,2", help="seeds, one run each (default: 0,1,2)"
    )
    parser.add_argument(
        "--size",
        default="64,2,2",
        help="the AST's embed_dim,depth,num_heads (default: 64,2,2)",
    )
    parser.add_argument(
        "--classes", type=int, default=10, help="classes (default: 10)"
    )
    parser.add_argument(
        "--patchout-time",
        type=int,
        default=11,
        help="time columns dropped of 28 (default: 11)",
    )
    parser.add_argument(
        "--patchout-freq",
        type=int,
        default=4,
        help="frequency rows dropped of 12 (default: 4)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default: 2)"
    )
    args = parser.parse_args(argv)
    try:
        epochs = _integers(args.epochs, "--epochs")
        seeds = _integers(args.seeds, "--seeds")
        size = _integers(args.size, "--size", count=3)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if min(epochs) < 1:
        parser.error(f"--epochs {args.epochs!r}: every count must be >= 1")
    if min(size) < 1 or size[0] % size[2]:
        parser.error(
            f"--size {args.size!r}: positive numbers, embed_dim divisible by "
            "num_heads"
        )
    if args.classes < 2:
        parser.error(f"--classes must be at least 2, got {args.classes}")
    if not (0 <= args.patchout_time < 28 and 0 <= args.patchout_freq < 12):
        parser.error(
            f"--patchout-time {args.patchout_time} / --patchout-freq "
            f"{args.patchout_freq}: the grid is 28 columns x 12 rows, keep "
            "at least one of each"
        )
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    rows = patchout_and_int8_accuracy(
        n_classes=args.classes,
        checkpoints=epochs,
        seeds=seeds,
        patchout_time=args.patchout_time,
        patchout_freq=args.patchout_freq,
        size=size,
    )
    print(
        "| epochs | seed | full % | patchout % | int8 of full % | full s "
        "| patchout s |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['epochs']} | {row['seed']} | {100 * row['full']:.1f} | "
            f"{100 * row['patchout']:.1f} | {100 * row['int8']:.1f} | "
            f"{row['full_s']:.1f} | {row['patchout_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
