"""The figure of docs/benchmarks.md: speed-ups against their targets, and
latencies per clip, drawn from a results mapping.

Authors
 * speechbrain-ast developers
"""

import numpy as np


def plot(results, path):
    """Speed-ups against their targets, and latencies per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    latency = results.get("latency", {}).get("rows", [])
    if latency:
        labels = [f"b{r['batch']} {r['clip']}" for r in latency]
        x = np.arange(len(labels))
        ours = [float(r["ours ms/clip"]) / 1000 for r in latency]
        theirs = [float(r["transformers ms/clip"]) / 1000 for r in latency]
        left.bar(x - 0.2, ours, 0.4, label="speechbrain-ast")
        left.bar(x + 0.2, theirs, 0.4, label="transformers (SDPA)")
        left.set_xticks(x, labels, rotation=30, ha="right")
        left.set_ylabel("seconds per clip")
        left.set_title("AST-Base inference, 1024 frames (CPU, fp32)")
        left.legend()
    speedups = []  # (label, measured, target)
    for key, label, column, target in (
        ("frontend", "frontend\nvs loop", "speed-up vs loop", 3.0),
        ("native", "1 s native\nvs padded", "speed-up vs transformers", 8.0),
        ("int8", "int8 vs\nfp32", "speed-up vs transformers fp32", 1.5),
        ("patchout", "patchout\nstep", "speed-up vs full", 2.0),
    ):
        rows = results.get(key, {}).get("rows", [])
        if rows:
            speedups.append((label, float(rows[0][column]), target))
    for key, label in (
        ("latency", "same work\n(10 s, b1)"),
        ("train", "train\nstep"),
    ):
        rows = results.get(key, {}).get("rows", [])
        for row in rows:
            if key == "latency" and not (
                row["batch"] == 1 and row["clip"] == "10 s"
            ):
                continue
            speedups.append((label, 1 / float(row["ours/transformers"]), 1.0))
            break
    if speedups:
        x = np.arange(len(speedups))
        right.bar(x, [s[1] for s in speedups], 0.6, label="measured")
        right.scatter(
            x,
            [s[2] for s in speedups],
            color="red",
            marker="_",
            s=900,
            label="target",
            zorder=3,
        )
        for i, (_, value, _) in enumerate(speedups):
            right.annotate(
                f"{value:.2f}x", (i, value), ha="center", va="bottom"
            )
        right.set_xticks(x, [s[0] for s in speedups])
        right.set_yscale("log")
        right.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        )
        right.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        values = [v for s in speedups for v in s[1:]]
        low, high = min(0.8, min(values) * 0.8), max(values) * 1.4
        right.set_ylim(low, high)
        ticks = [0.5, 1, 2, 4, 8, 16, 32]
        right.set_yticks([t for t in ticks if low <= t <= high])
        right.set_ylabel("speed-up (x, log scale)")
        right.set_title("Speed-ups against the targets")
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
