"""The report a person reads after training on their own sounds.

From the test set's scores: per-class precision, recall and F1 (and their
macro means), the confusion matrix as numbers and as a picture, the pairs
of classes most often confused, and the clips the model got most wrong,
by file name. Written as ``report.md``, ``report.json`` and
``confusion.png`` into the recipe's output folder.

Single-label: the prediction is the class of the highest score.
Multi-label: every class whose score reaches ``threshold``; the confusion
matrix then counts, for each clip, each missed true class against each
wrongly predicted class.

Authors
 * speechbrain-ast developers
"""

import json
import os

import torch


def _predictions(scores, targets, multi_label, threshold):
    if multi_label:
        return scores >= threshold, targets > 0.5
    n = scores.shape[1]
    pred = torch.nn.functional.one_hot(scores.argmax(1), n).bool()
    return pred, targets > 0.5


def classification_report(
    scores, targets, classes, files, multi_label=False, threshold=0.5, top=10
):
    """Per-class and overall figures of a test set.

    Arguments
    ---------
    scores : torch.Tensor
        ``[N, C]`` class scores (softmax or sigmoid outputs).
    targets : torch.Tensor
        ``[N, C]`` one-hot or multi-hot targets.
    classes : list of str
        The class names in index order.
    files : list of str
        The clips' files, in order.
    multi_label : bool
        Threshold the scores instead of taking the best class.
    threshold : float
        The multi-label decision threshold.
    top : int
        How many confused pairs and wrong clips to list.

    Returns
    -------
    dict
        ``per_class`` (name -> precision, recall, f1, support), ``macro``
        (means of the three), ``accuracy`` (exact match), ``confusion``
        (``[C, C]`` list, rows true, columns predicted),
        ``confused_pairs`` and ``most_wrong``.

    Example
    -------
    >>> scores = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> r = classification_report(scores, targets, ["a", "b"], ["x", "y", "z"])
    >>> r["per_class"]["a"]["precision"], r["per_class"]["b"]["recall"]
    (0.5, 0.5)
    >>> r["confusion"], r["most_wrong"][0]["file"]
    ([[1, 0], [1, 1]], 'y')
    """
    scores = torch.as_tensor(scores, dtype=torch.float32)
    targets = torch.as_tensor(targets, dtype=torch.float32)
    pred, true = _predictions(scores, targets, multi_label, threshold)
    tp = (pred & true).sum(0).double()
    fp = (pred & ~true).sum(0).double()
    fn = (~pred & true).sum(0).double()
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), 0.0)
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), 0.0)
    f1 = torch.where(
        precision + recall > 0,
        2 * precision * recall / (precision + recall).clamp(min=1e-12),
        0.0,
    )
    n = len(classes)
    confusion = torch.zeros(n, n, dtype=torch.long)
    for p, t in zip(pred, true):
        if not multi_label:
            confusion[t.nonzero()[0, 0], p.nonzero()[0, 0]] += 1
            continue
        for i in t.nonzero().flatten().tolist():
            if p[i]:
                confusion[i, i] += 1
            for j in (p & ~t).nonzero().flatten().tolist():
                if not p[i]:
                    confusion[i, j] += 1
    pairs = [
        (int(confusion[i, j]), classes[i], classes[j])
        for i in range(n)
        for j in range(n)
        if i != j and confusion[i, j] > 0
    ]
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    # how wrong: the score given to the truth, missed by the most
    wrongness = (true.float() - scores).abs().masked_fill(~(pred ^ true), 0)
    wrongness = wrongness.max(1).values
    wrong = [i for i in wrongness.argsort(descending=True).tolist()]
    wrong = [i for i in wrong if wrongness[i] > 0][:top]
    return {
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(true[:, i].sum()),
            }
            for i, name in enumerate(classes)
        },
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "accuracy": float((pred == true).all(1).float().mean()),
        "confusion": confusion.tolist(),
        "confused_pairs": [
            {"count": c, "true": a, "predicted": b} for c, a, b in pairs[:top]
        ],
        "most_wrong": [
            {
                "file": files[i],
                "true": [classes[j] for j in true[i].nonzero().flatten()],
                "predicted": [classes[j] for j in pred[i].nonzero().flatten()],
                "score_of_truth": [
                    round(float(scores[i, j]), 4)
                    for j in true[i].nonzero().flatten()
                ],
            }
            for i in wrong
        ],
    }


def plot_confusion(confusion, classes, path):
    """Draws the confusion matrix (rows true, columns predicted) as a PNG.

    Arguments
    ---------
    confusion : list of list of int
        ``[C, C]`` counts.
    classes : list of str
        The class names.
    path : str
        The PNG to write.

    Example
    -------
    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "c.png")
    >>> plot_confusion([[3, 1], [0, 4]], ["dog", "rain"], out)
    >>> os.path.getsize(out) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = torch.tensor(confusion, dtype=torch.float64)
    rows = counts / counts.sum(1, keepdim=True).clamp(min=1)
    n = len(classes)
    size = min(max(4.0, 0.45 * n + 2.5), 24.0)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion on the test set (share of each true class)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j] > 0:
                    ax.text(
                        j,
                        i,
                        int(counts[i, j]),
                        ha="center",
                        va="center",
                        color="white" if rows[i, j] > 0.5 else "black",
                        fontsize=8,
                    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(report, classes):
    lines = [
        "# Test report",
        "",
        f"Exact-match accuracy: {100 * report['accuracy']:.1f} %; macro "
        f"precision {report['macro']['precision']:.3f}, recall "
        f"{report['macro']['recall']:.3f}, F1 {report['macro']['f1']:.3f}.",
        "",
        "| class | precision | recall | F1 | clips |",
        "|---|---|---|---|---|",
    ]
    for name in classes:
        c = report["per_class"][name]
        lines.append(
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | "
            f"{c['f1']:.3f} | {c['support']} |"
        )
    lines += ["", "Confusion matrix: `confusion.png`.", ""]
    lines += ["## Most confused (true -> predicted)", ""]
    lines += [
        f"- {p['true']} -> {p['predicted']}: {p['count']} clips"
        for p in report["confused_pairs"]
    ] or ["- none"]
    lines += ["", "## Clips most wrong", ""]
    lines += [
        f"- `{w['file']}`: true {', '.join(w['true']) or '-'}, predicted "
        f"{', '.join(w['predicted']) or '-'} (score of the truth "
        f"{', '.join(map(str, w['score_of_truth'])) or '-'})"
        for w in report["most_wrong"]
    ] or ["- none"]
    return "\n".join(lines) + "\n"


def write_report(folder, report, classes):
    """Writes ``report.md``, ``report.json`` and ``confusion.png``.

    Arguments
    ---------
    folder : str
        The output folder.
    report : dict
        From :func:`classification_report`.
    classes : list of str
        The class names in index order.

    Returns
    -------
    str
        The path of ``report.md``.

    Example
    -------
    >>> import tempfile
    >>> r = classification_report(
    ...     torch.eye(2), torch.eye(2), ["a", "b"], ["x", "y"]
    ... )
    >>> write_report(tempfile.mkdtemp(), r, ["a", "b"]).endswith("report.md")
    True
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    plot_confusion(
        report["confusion"], classes, os.path.join(folder, "confusion.png")
    )
    path = os.path.join(folder, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_markdown(report, classes))
    return path
