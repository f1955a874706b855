"""Accuracy side of the speed options: patchout training against full
training, and int8 inference against float32, on the learnable synthetic
sound classes of ``scripts/synthetic`` (the recipes' test data).

A small AST (64 wide, 2 blocks, 16 x 16 patches with overlap, from
scratch) is trained with the same seed, data and batches with and without
patchout, and tested at several epoch counts along the way (learning
curves); the full model's int8 copy is tested at the same points. Three
seeds take about ten minutes on a 2-core CPU, so it measures the effect
of the options, not AST-Base's published accuracy.

Authors
 * speechbrain-ast developers
"""

import time

import numpy as np
import torch

from scripts.synthetic.signals import class_signal
from speechbrain_ast.features import FixedNormalization, KaldiFbank
from speechbrain_ast.model import AST, ASTHead
from speechbrain_ast.quantize import quantize_int8


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
    epochs gives the comparison at about equal training time.

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
        full = train_curve(data, n_classes, checkpoints, seed)
        dropped = train_curve(data, n_classes, checkpoints, seed, **patchout)
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
