"""Metrics against scikit-learn and scipy on random data, ties included.

Authors
 * speechbrain-ast developers
"""

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    roc_auc_score,
)

from speechbrain_ast.training import metrics

TOL = 1e-6


def _random_case(seed, n=200, c=12, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, c))
    if ties:
        # few distinct values: many ties, across positives and negatives
        scores = np.round(scores * 2) / 2
    targets = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(float)
    targets[:, 0] = 0  # a class without positives: excluded from the means
    return scores, targets


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_auc_match_sklearn(seed, ties):
    scores, targets = _random_case(seed, ties=ties)
    ap = metrics.average_precision(torch.tensor(scores), torch.tensor(targets))
    auc = metrics.roc_auc(torch.tensor(scores), torch.tensor(targets))
    assert torch.isnan(ap[0]) and torch.isnan(auc[0])
    for c in range(1, scores.shape[1]):
        ref_ap = average_precision_score(targets[:, c], scores[:, c])
        ref_auc = roc_auc_score(targets[:, c], scores[:, c])
        assert abs(ap[c].item() - ref_ap) <= TOL
        assert abs(auc[c].item() - ref_auc) <= TOL
    ref_map = np.mean(
        [
            average_precision_score(targets[:, c], scores[:, c])
            for c in range(1, 12)
        ]
    )
    ref_mauc = np.mean(
        [roc_auc_score(targets[:, c], scores[:, c]) for c in range(1, 12)]
    )
    stats = metrics.classification_stats(
        torch.tensor(scores), torch.tensor(targets), multi_label=True
    )
    assert abs(stats["mAP"] - ref_map) <= TOL
    assert abs(stats["mAUC"] - ref_mauc) <= TOL
    assert abs(stats["dprime"] - np.sqrt(2) * norm.ppf(ref_mauc)) <= TOL


def test_accuracy_matches_sklearn():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(300, 7))
    labels = rng.integers(0, 7, 300)
    ref = accuracy_score(labels, scores.argmax(1))
    got = metrics.accuracy(torch.tensor(scores), torch.tensor(labels))
    assert abs(got - ref) <= TOL
    one_hot = np.eye(7)[labels]
    assert metrics.accuracy(torch.tensor(scores), torch.tensor(one_hot)) == got


def test_dprime_matches_scipy():
    aucs = np.array([0.01, 0.3, 0.5, 0.731, 0.95, 0.999])
    got = metrics.d_prime(torch.tensor(aucs)).numpy()
    np.testing.assert_allclose(got, np.sqrt(2) * norm.ppf(aucs), atol=TOL)


def test_class_index_targets_equal_one_hot():
    scores, _ = _random_case(4, c=5)
    labels = torch.tensor(np.random.default_rng(4).integers(0, 5, 200))
    one_hot = torch.nn.functional.one_hot(labels, 5).double()
    a = metrics.average_precision(torch.tensor(scores), labels)
    b = metrics.average_precision(torch.tensor(scores), one_hot)
    torch.testing.assert_close(a, b, equal_nan=True)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        metrics.roc_auc(torch.zeros(4, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="undefined"):
        metrics.mean_auc(torch.zeros(4, 2), torch.ones(4, 2))
