"""Section ``accuracy``: the accuracy patchout and int8 keep along
training curves (``benchmarks/accuracy.py``), with the training times
(rough: the runs follow each other in one process).

Authors
 * speechbrain-ast developers
"""

import numpy as np
from accuracy import patchout_and_int8_accuracy

from sections.common import print_table


def bench_accuracy(bench):
    """Patchout and int8 accuracy after several epochs, by seed and mean."""
    seeds = (0,) if bench.args.quick else (0, 1, 2)
    checkpoints = (2, 4) if bench.args.quick else (25, 50, 100)
    rows = patchout_and_int8_accuracy(seeds=seeds, checkpoints=checkpoints)
    keys = ("full", "patchout", "int8", "full_s", "patchout_s")
    mean = {
        epochs: {
            k: float(np.mean([r[k] for r in rows if r["epochs"] == epochs]))
            for k in keys
        }
        for epochs in checkpoints
    }
    table = []
    for epochs in checkpoints:
        ordered = [r for r in rows if r["epochs"] == epochs]
        for row in ordered + [dict(mean[epochs], seed="mean")]:
            table.append(
                {
                    "epochs": epochs,
                    "seed": row["seed"],
                    "full %": f"{100 * row['full']:.1f}",
                    "patchout %": f"{100 * row['patchout']:.1f}",
                    "patchout - full": (
                        f"{100 * (row['patchout'] - row['full']):+.1f}"
                    ),
                    "int8 of full %": f"{100 * row['int8']:.1f}",
                    "full s": f"{row['full_s']:.1f}",
                    "patchout s": f"{row['patchout_s']:.1f}",
                }
            )
    print_table(
        "Accuracy kept: 10 synthetic classes, 3 s clips, 240 train / 200 "
        "test, AST 64 wide x 2 blocks from scratch, both tested after "
        f"{', '.join(map(str, checkpoints))} epochs (training seconds so "
        "far); patchout t=11 of 28, f=4 of 12",
        list(table[0]),
        table,
    )
    # about equal training time: patchout for twice full training's epochs
    for epochs in checkpoints:
        if 2 * epochs in mean:
            full, longer = mean[epochs], mean[2 * epochs]
            print(
                f"about equal time: patchout {2 * epochs} epochs "
                f"{100 * longer['patchout']:.1f} % in "
                f"{longer['patchout_s']:.1f} s vs full {epochs} epochs "
                f"{100 * full['full']:.1f} % in {full['full_s']:.1f} s"
            )
    bench.record("accuracy", table, mean={str(e): m for e, m in mean.items()})
