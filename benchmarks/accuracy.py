"""Accuracy side of the speed options: patchout training against full
training, and int8 inference against float32, on the learnable synthetic
sound classes of ``scripts/synthetic`` (the recipes' test data).

A small AST (64 wide, 2 blocks, 16 x 16 patches with overlap, from
scratch) is trained with the same seed, data and steps with and without
patchout; its test accuracy, and that of its int8 copy, are compared.
It runs in a minute or two on a CPU, so it measures the effect of the
options, not AST-Base's published accuracy.

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


def train(feats, labels, n_classes, epochs, seed, batch_size=16, **patchout):
    """Trains a small AST from scratch; returns (lobe, head) in eval mode
    and the training's wall time in seconds."""
    began = time.perf_counter()
    torch.manual_seed(seed)
    lobe = AST(
        input_tdim=feats.shape[1],
        embed_dim=64,
        depth=2,
        num_heads=2,
        **patchout,
    )
    head = ASTHead(64, n_classes)
    params = list(lobe.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.95, 0.999))
    generator = torch.Generator().manual_seed(seed)
    lobe.train(), head.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(
                head(lobe(feats[batch])), labels[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return (lobe.eval(), head.eval()), time.perf_counter() - began


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
    epochs=6,
    seeds=(0, 1, 2),
    patchout_time=11,
    patchout_freq=4,
    longer=2,
):
    """Test accuracy of full training, patchout training and int8.

    The clips are ``duration`` s (298 frames: a 12 x 28 patch grid); the
    default patchout drops 11 of 28 time columns and 4 of 12 frequency
    rows, PaSST's AudioSet fractions (40 of 99, 4 of 12). Patchout is
    trained twice: for the same epochs as full training, and for
    ``longer`` times as many (a patchout step being several times cheaper,
    that is still less compute than the full run).

    Returns
    -------
    list of dict
        One row per seed: ``full``, ``patchout``, ``patchout_longer`` and
        ``int8`` (the full model quantized) accuracies, and the training
        wall times ``full_s``, ``patchout_s``, ``patchout_longer_s`` (the
        runs are sequential in one process, so under the same load only
        roughly).

    Example
    -------
    >>> rows = patchout_and_int8_accuracy(
    ...     n_classes=2, per_class_train=2, per_class_test=2, duration=1.0,
    ...     epochs=1, seeds=(0,), patchout_time=2, patchout_freq=1)
    >>> sorted(rows[0])[:5]
    ['full', 'full_s', 'int8', 'patchout', 'patchout_longer']
    """
    train_x, train_y = make_split(n_classes, per_class_train, duration, 10)
    test_x, test_y = make_split(n_classes, per_class_test, duration, 20)
    # the dataset's own statistics, as a user with their own data would
    norm = FixedNormalization(
        mean=train_x.mean().item(), std=train_x.std().item()
    )
    train_x, test_x = norm(train_x), norm(test_x)
    rows = []
    for seed in seeds:
        full, full_s = train(train_x, train_y, n_classes, epochs, seed)
        patchout = dict(
            patchout_time=patchout_time, patchout_freq=patchout_freq
        )
        dropped, dropped_s = train(
            train_x, train_y, n_classes, epochs, seed, **patchout
        )
        longer_run, longer_s = train(
            train_x, train_y, n_classes, epochs * longer, seed, **patchout
        )
        int8 = [quantize_int8(module) for module in full]
        rows.append(
            {
                "seed": seed,
                "full": accuracy(*full, test_x, test_y),
                "patchout": accuracy(*dropped, test_x, test_y),
                "patchout_longer": accuracy(*longer_run, test_x, test_y),
                "int8": accuracy(*int8, test_x, test_y),
                "full_s": full_s,
                "patchout_s": dropped_s,
                "patchout_longer_s": longer_s,
            }
        )
    return rows
