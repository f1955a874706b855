"""Sound event detection: column times against the lobe, the frame head's
poolings against their formulas, strong targets and the loss, the median
filter against scipy's, events against sed_scores_eval's, F1 against
sed_eval's, PSDS against sed_scores_eval's, annotation files and event
files.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechbrain_ast.events import (
    FrameHead,
    column_edges,
    evaluate_events,
    median_filter,
    read_durations_tsv,
    read_events_tsv,
    scores_to_events,
    sed_loss,
    strong_targets,
    tune_thresholds,
    write_events,
)
from speechbrain_ast.events.evaluate import check_references
from speechbrain_ast.model import AST, ASTHead

LABELS = ["dog", "cat", "bird"]


def _sed_eval():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_eval.sound_event

    return sed_eval.sound_event


def _sed_scores_eval():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_scores_eval.base_modules.detection
        import sed_scores_eval.base_modules.scores
        import sed_scores_eval.intersection_based

    return sed_scores_eval


def _one_line(err):
    message = str(err.value)
    assert "\n" not in message, message
    return message


# column_edges


def test_column_edges_by_hand():
    edges = column_edges(3, tstride=10, patch=16)
    assert torch.allclose(edges, torch.tensor([0, 0.13, 0.23, 0.36]).double())
    # no overlap: the edges are the columns' own bounds
    edges = column_edges(4, tstride=16, patch=16, frame_shift=0.02)
    assert torch.allclose(edges, torch.arange(5).double() * 0.32)


@pytest.mark.parametrize("tstride", [6, 10, 16])
def test_column_edges_fit_the_lobes_columns(tstride):
    lobe = AST(
        input_fdim=16,
        input_tdim=64,
        fstride=16,
        tstride=tstride,
        embed_dim=24,
        depth=1,
        num_heads=2,
    ).eval()
    for frames in (16, 17, 37, 64, 100, 203):
        with torch.no_grad():
            columns = lobe.forward_frames(torch.randn(1, frames, 16)).shape[1]
        edges = column_edges(columns, tstride, patch=16)
        assert len(edges) == columns + 1
        assert bool((edges[1:] > edges[:-1]).all())
        # the last column ends within the input; one more would not fit
        assert edges[-1] <= frames * 0.01 + 1e-9
        assert column_edges(columns + 1, tstride, patch=16)[-1] > frames * 0.01
        # each column's centre lies inside its own span
        centres = (torch.arange(columns) * tstride + 8) * 0.01
        assert bool((centres >= edges[:-1]).all())
        assert bool((centres <= edges[1:]).all())


def test_column_edges_refuse_bad_values():
    with pytest.raises(ValueError, match="num_columns") as err:
        column_edges(0, 10)
    assert "0" in _one_line(err)
    with pytest.raises(ValueError, match="tstride must be positive; got -1"):
        column_edges(3, -1)


# FrameHead


def _random_head(pooling, embed_dim=24, classes=5):
    torch.manual_seed(0)
    head = FrameHead(embed_dim, classes, pooling=pooling)
    for param in head.parameters():
        torch.nn.init.normal_(param, std=0.5)
    return head


def _frame_probs_by_formula(head, frames):
    norm, linear = head.classifier
    normed = F.layer_norm(
        frames, (frames.shape[-1],), norm.weight, norm.bias, norm.eps
    )
    return normed, torch.sigmoid(normed @ linear.weight.T + linear.bias)


def test_attention_pooling_is_its_formula():
    head = _random_head("attention")
    frames = torch.randn(3, 7, 24)
    frame_probs, clip_probs = head(frames)
    normed, probs = _frame_probs_by_formula(head, frames)
    att = normed @ head.attention.weight.T + head.attention.bias
    weights = torch.exp(att) / torch.exp(att).sum(dim=1, keepdim=True)
    assert torch.allclose(frame_probs, probs, atol=1e-6)
    assert torch.allclose(clip_probs, (weights * probs).sum(dim=1), atol=1e-6)


@pytest.mark.parametrize(
    "pooling, formula",
    [
        ("linear_softmax", lambda p: (p**2).sum(1) / p.sum(1)),
        ("max", lambda p: p.max(dim=1).values),
        ("mean", lambda p: p.mean(dim=1)),
    ],
)
def test_other_poolings_are_their_formulas(pooling, formula):
    head = _random_head(pooling)
    frames = torch.randn(3, 7, 24)
    frame_probs, clip_probs = head(frames)
    _, probs = _frame_probs_by_formula(head, frames)
    assert torch.allclose(frame_probs, probs, atol=1e-6)
    assert torch.allclose(clip_probs, formula(probs), atol=1e-6)


@pytest.mark.parametrize(
    "pooling", ["attention", "linear_softmax", "max", "mean"]
)
def test_padding_columns_do_not_enter_the_clip_probability(pooling):
    head = _random_head(pooling)
    frames = torch.randn(2, 10, 24)
    _, clip_probs = head(frames, lengths=torch.tensor([1.0, 0.4]))
    _, alone = head(frames[1:, :4])
    assert torch.allclose(clip_probs[1], alone[0], atol=1e-6)
    assert torch.allclose(clip_probs[0], head(frames[:1])[1][0], atol=1e-6)


@pytest.mark.parametrize(
    "pooling", ["attention", "linear_softmax", "max", "mean"]
)
def test_from_clip_head_on_constant_frames_is_the_clip_heads_sigmoid(pooling):
    torch.manual_seed(1)
    clip_head = ASTHead(24, 5).eval()
    torch.nn.init.normal_(clip_head[1].weight, std=0.5)
    emb = torch.randn(3, 24)
    head = FrameHead.from_clip_head(clip_head, pooling=pooling)
    assert head.config == {
        "embed_dim": 24,
        "num_classes": 5,
        "pooling": pooling,
        "norm_eps": 1e-5,
    }
    frame_probs, clip_probs = head(emb[:, None].expand(3, 9, 24))
    expected = torch.sigmoid(clip_head(emb))
    assert torch.allclose(clip_probs, expected, atol=1e-6)
    assert torch.allclose(frame_probs, expected[:, None].expand(3, 9, 5))
    # a copy: training the frame head leaves the clip head alone
    with torch.no_grad():
        head.classifier[1].weight.add_(1.0)
    assert torch.allclose(torch.sigmoid(clip_head(emb)), expected)


def test_frame_head_refuses_bad_input():
    head = FrameHead(24, 3)
    with pytest.raises(ValueError) as err:
        head(torch.randn(2, 5, 10))
    assert "(2, 5, 10)" in _one_line(err)
    with pytest.raises(ValueError, match="one relative length per clip"):
        head(torch.randn(2, 5, 24), lengths=torch.ones(3))
    with pytest.raises(ValueError, match="'gem'"):
        FrameHead(24, 3, pooling="gem")
    with pytest.raises(TypeError, match="Linear"):
        FrameHead.from_clip_head(torch.nn.Linear(24, 3))


# strong targets and the loss


def test_strong_targets_by_hand():
    edges = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    events = [
        (0.4, 2.2, "dog"),  # 0.6 of column 0, all of 1, 0.2 of 2
        (2.0, 2.3, "cat"),  # together 0.6 of column 2
        (2.3, 2.6, "cat"),
        (3.5, 3.9, "bird"),  # 0.4 of column 3
        (3.0, 3.5, "dog"),  # exactly half of column 3
    ]
    expected = torch.tensor(
        [[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=torch.float
    )
    assert torch.equal(strong_targets(events, edges, LABELS), expected)
    assert torch.equal(strong_targets([], edges, LABELS), torch.zeros(4, 3))


def test_strong_targets_refuse_bad_events():
    edges = column_edges(5, 10)
    with pytest.raises(ValueError) as err:
        strong_targets([(0.0, 1.0, "horse")], edges, LABELS)
    assert "'horse'" in _one_line(err)
    with pytest.raises(ValueError) as err:
        strong_targets([(2.0, 1.0, "dog")], edges, LABELS)
    assert "onset 2.0 after its offset 1.0" in _one_line(err)
    with pytest.raises(ValueError, match="negative"):
        strong_targets([(-1.0, 1.0, "dog")], edges, LABELS)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        strong_targets([], torch.zeros(2, 3), LABELS)


def _bce(probs, targets):
    return -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()


def test_sed_loss_is_weak_plus_masked_strong_binary_cross_entropy():
    gen = torch.Generator().manual_seed(3)
    frame_probs = torch.rand(4, 6, 3, generator=gen) * 0.9 + 0.05
    clip_probs = torch.rand(4, 3, generator=gen) * 0.9 + 0.05
    weak = (torch.rand(4, 3, generator=gen) > 0.5).float()
    strong = (torch.rand(4, 6, 3, generator=gen) > 0.5).float()
    mask = torch.tensor([True, False, True, False])
    weak_loss = _bce(clip_probs, weak)
    assert torch.allclose(sed_loss(frame_probs, clip_probs, weak), weak_loss)
    both = sed_loss(frame_probs, clip_probs, weak, strong, mask)
    expected = weak_loss + _bce(frame_probs[mask], strong[mask])
    assert torch.allclose(both, expected)
    every = sed_loss(frame_probs, clip_probs, weak, strong)
    assert torch.allclose(every, weak_loss + _bce(frame_probs, strong))
    none = sed_loss(
        frame_probs, clip_probs, weak, strong, torch.zeros(4).bool()
    )
    assert torch.allclose(none, weak_loss)
    with pytest.raises(ValueError) as err:
        sed_loss(frame_probs, clip_probs, weak[:, :2])
    assert "(4, 2)" in _one_line(err)


# median filter and events


@pytest.mark.parametrize("window", [1, 3, 7])
def test_median_filter_is_scipys(window):
    from scipy.ndimage import median_filter as ndimage_median
    from scipy.signal import medfilt

    probs = torch.rand(40, 3, generator=torch.Generator().manual_seed(4))
    filtered = median_filter(probs, window)
    assert isinstance(filtered, torch.Tensor) and filtered.dtype == probs.dtype
    expected = ndimage_median(probs.numpy(), size=(window, 1))
    assert np.allclose(filtered.numpy(), expected)
    # medfilt pads with zeros: the same away from the edges
    half = window // 2
    zero_padded = medfilt(probs.double().numpy(), (window, 1))
    inner = slice(half, len(probs) - half)
    assert np.allclose(filtered.numpy()[inner], zero_padded[inner])
    # numpy in, numpy out; a batch filters clip by clip
    assert np.allclose(median_filter(probs.numpy(), window), expected)
    batch = median_filter(torch.stack([probs, probs.flip(0)]), window)
    assert torch.allclose(batch[1], median_filter(probs.flip(0), window))


def test_median_filter_refuses_even_windows():
    with pytest.raises(ValueError, match="odd .* got 4"):
        median_filter(torch.rand(5, 2), 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_are_sed_scores_evals(seed):
    sse = _sed_scores_eval()
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(30, 3, generator=gen)
    edges = column_edges(30, 10)
    thresholds = [0.3, 0.5, 0.7]
    events = scores_to_events(probs, edges, LABELS, thresholds)
    frame = sse.base_modules.scores.create_score_dataframe(
        probs.double().numpy(), edges.numpy(), LABELS
    )
    theirs = sse.base_modules.detection.scores_to_event_list(
        frame, np.array(thresholds)
    )
    assert sorted((e.onset, e.offset, e.label) for e in events) == sorted(
        (float(on), float(off), label) for on, off, label in theirs
    )
    assert [e.onset for e in events] == sorted(e.onset for e in events)
    for event in events:
        column = LABELS.index(event.label)
        inside = (edges[:-1] >= event.onset) & (edges[1:] <= event.offset)
        assert event.score == pytest.approx(float(probs[inside, column].max()))


def test_scores_to_events_filters_before_thresholding():
    probs = torch.zeros(12, 1)
    probs[[1, 5, 6, 7, 10]] = 0.9  # two isolated columns and a run
    edges = torch.arange(13) * 0.5
    assert len(scores_to_events(probs, edges, ["dog"])) == 3
    [event] = scores_to_events(probs, edges, ["dog"], median_window=3)
    assert (event.onset, event.offset) == (2.5, 4.0)


def test_scores_to_events_refuses_bad_input():
    edges = column_edges(5, 10)
    with pytest.raises(ValueError) as err:
        scores_to_events(torch.rand(5, 2), edges, LABELS)
    assert "(5, 2)" in _one_line(err)
    with pytest.raises(ValueError, match=r"\[6\]"):
        scores_to_events(torch.rand(5, 3), edges[:-1], LABELS)
    with pytest.raises(ValueError, match="1.5"):
        scores_to_events(torch.rand(5, 3), edges, LABELS, [0.5, 1.5, 0.5])
    with pytest.raises(ValueError, match="one per class"):
        scores_to_events(torch.rand(5, 3), edges, LABELS, [0.5, 0.5])


# evaluation against sed_eval and sed_scores_eval


def _dataset():
    """Two 10 s clips, 0.5 s columns: scores, references, durations."""
    edges = torch.arange(21) * 0.5
    probs_a = torch.full((20, 3), 0.05)
    probs_a[2:6, 0] = 0.9  # dog 1.0-3.0, as annotated
    probs_a[10:13, 1] = 0.6  # cat 5.0-6.5, annotated 5.0-8.0
    probs_a[16:18, 2] = 0.4  # bird 8.0-9.0, not annotated
    probs_b = torch.full((20, 3), 0.1)
    probs_b[0:4, 2] = 0.8  # bird 0.0-2.0, annotated 0.2-2.0
    probs_b[12:14, 0] = 0.7  # dog 6.0-7.0, not annotated
    scores = {"a.wav": (edges, probs_a), "b.wav": (edges, probs_b)}
    references = {
        "a.wav": [(1.0, 3.0, "dog"), (5.0, 8.0, "cat")],
        "b.wav": [(0.2, 2.0, "bird"), (3.0, 4.0, "cat")],
    }
    return scores, references, {"a.wav": 10.0, "b.wav": 10.0}


def _theirs_f1(estimated, references, durations):
    sound_event = _sed_eval()

    def dicts(name, events):
        keys = ("filename", "onset", "offset", "event_label")
        return [dict(zip(keys, (name, *event[:3]))) for event in events]

    event_based = sound_event.EventBasedMetrics(
        LABELS, t_collar=0.2, percentage_of_length=0.2
    )
    segment_based = sound_event.SegmentBasedMetrics(LABELS, time_resolution=1.0)
    for name in references:
        ref, est = dicts(name, references[name]), dicts(name, estimated[name])
        event_based.evaluate(ref, est)
        segment_based.evaluate(
            ref, est, evaluated_length_seconds=durations[name]
        )
    return [
        metrics.results_overall_metrics()["f_measure"]["f_measure"]
        for metrics in (event_based, segment_based)
    ]


def test_f1_scores_are_sed_evals():
    scores, references, durations = _dataset()
    estimated = {  # the events the scores hold above 0.5, by hand
        "a.wav": [(1.0, 3.0, "dog"), (5.0, 6.5, "cat")],
        "b.wav": [(0.0, 2.0, "bird"), (6.0, 7.0, "dog")],
    }
    result = evaluate_events(scores, references, durations, LABELS)
    event_f1, segment_f1 = _theirs_f1(estimated, references, durations)
    assert result["event_f1"] == pytest.approx(event_f1)
    assert result["segment_f1"] == pytest.approx(segment_f1)
    assert 0 < result["event_f1"] < 1 and 0 < result["segment_f1"] < 1
    # per-class thresholds: bird's 0.4 run becomes an event too
    lower = evaluate_events(
        scores, references, durations, LABELS, [0.5, 0.5, 0.3]
    )
    estimated["a.wav"].append((8.0, 9.0, "bird"))
    event_f1, segment_f1 = _theirs_f1(estimated, references, durations)
    assert lower["event_f1"] == pytest.approx(event_f1)
    assert lower["segment_f1"] == pytest.approx(segment_f1)


def _theirs_psds(scores, references, durations, settings):
    sse = _sed_scores_eval()
    frames = {}
    for name, (edges, probs) in scores.items():
        frame = sse.base_modules.scores.create_score_dataframe(
            probs.double().numpy(), edges.double().numpy(), LABELS
        )
        # writable score arrays for its Cython under pandas 3 (a copy)
        frame[LABELS] = frame[LABELS].astype(np.float32)
        frames[name] = frame
    return sse.intersection_based.psds(
        scores=frames,
        ground_truth=references,
        audio_durations=durations,
        **settings,
    )[0]


def test_psds_is_sed_scores_evals():
    from speechbrain_ast.events.evaluate import PSDS1, PSDS2

    scores, references, durations = _dataset()
    result = evaluate_events(scores, references, durations, LABELS)
    psds1 = _theirs_psds(scores, references, durations, PSDS1)
    psds2 = _theirs_psds(scores, references, durations, PSDS2)
    assert result["psds1"] == pytest.approx(psds1)
    assert result["psds2"] == pytest.approx(psds2)
    assert 0 < result["psds1"] < 1 and 0 < result["psds2"] <= 1
    assert PSDS1["dtc_threshold"] == PSDS1["gtc_threshold"] == 0.7
    assert PSDS2["cttc_threshold"] == 0.3 and PSDS2["alpha_ct"] == 0.5
    # the median filter applies to the scores PSDS sweeps
    filtered = {
        name: (edges, median_filter(probs, 5))
        for name, (edges, probs) in scores.items()
    }
    smoothed = evaluate_events(
        scores, references, durations, LABELS, median_window=5
    )
    assert smoothed["psds1"] == pytest.approx(
        _theirs_psds(filtered, references, durations, PSDS1)
    )


def test_perfect_scores_score_one():
    _, references, durations = _dataset()
    edges = torch.arange(101) * 0.1
    scores = {}
    for name, events in references.items():
        probs = torch.zeros(100, 3)
        for onset, offset, label in events:
            span = (edges[:-1] >= onset - 1e-6) & (edges[1:] <= offset + 1e-6)
            probs[span, LABELS.index(label)] = 1.0
        scores[name] = (edges, probs)
    result = evaluate_events(scores, references, durations, LABELS)
    assert result == pytest.approx(
        {"psds1": 1.0, "psds2": 1.0, "event_f1": 1.0, "segment_f1": 1.0}
    )


def test_evaluation_refuses_mismatched_files():
    scores, references, durations = _dataset()
    with pytest.raises(ValueError) as err:
        evaluate_events(scores, {"a.wav": []}, durations, LABELS)
    assert "'b.wav'" in _one_line(err)
    with pytest.raises(ValueError, match="no duration .*'b.wav'"):
        evaluate_events(scores, references, {"a.wav": 10.0}, LABELS)
    check_references(scores, references, durations)


def test_psds_leaves_out_classes_without_reference_events():
    """PSDS over the annotated classes equals PSDS of those classes alone."""
    scores, references, durations = _dataset()
    no_cat = {
        name: [event for event in events if event[2] != "cat"]
        for name, events in references.items()
    }
    with pytest.warns(UserWarning, match=r"2 of 3 classes.*\['cat'\]"):
        result = evaluate_events(scores, no_cat, durations, LABELS)
    kept = [LABELS.index("dog"), LABELS.index("bird")]
    alone = evaluate_events(
        {
            name: (edges, probs[:, kept])
            for name, (edges, probs) in scores.items()
        },
        no_cat,
        durations,
        ["dog", "bird"],
    )
    assert result["psds1"] == pytest.approx(alone["psds1"])
    assert result["psds2"] == pytest.approx(alone["psds2"])
    check_references(scores, references, durations)


def test_tuned_thresholds_maximise_each_classs_event_f1():
    scores, references, durations = _dataset()
    grid = [0.2, 0.35, 0.5, 0.65, 0.8]
    tuned = tune_thresholds(scores, references, LABELS, grid)
    sound_event = _sed_eval()
    for index, label in enumerate(LABELS):
        f1 = []
        for threshold in grid:
            metrics = sound_event.EventBasedMetrics(
                [label], t_collar=0.2, percentage_of_length=0.2
            )
            for name, (edges, probs) in scores.items():
                keys = ("filename", "onset", "offset", "event_label")
                est = [
                    dict(zip(keys, (name, *event[:3])))
                    for event in scores_to_events(
                        probs, edges, LABELS, threshold
                    )
                    if event.label == label
                ]
                ref = [
                    dict(zip(keys, (name, *event)))
                    for event in references[name]
                    if event[2] == label
                ]
                metrics.evaluate(ref, est)
            value = metrics.results_overall_metrics()["f_measure"]["f_measure"]
            f1.append(value if np.isfinite(value) else 0.0)
        assert f1[grid.index(tuned[index])] == max(f1), (label, f1)
    assert tuned == [0.8, 0.5, 0.5]


# files


def _write(path, text):
    path.write_text(text)
    return path


def test_read_events_tsv(tmp_path):
    path = _write(
        tmp_path / "strong.tsv",
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0.5\t1.5\tdog\n"
        "a.wav\t1.0\t4.25\tcat\n"
        "b.wav\t\t\t\n"
        "\n",
    )
    events = read_events_tsv(path, LABELS)
    assert events == {
        "a.wav": [(0.5, 1.5, "dog"), (1.0, 4.25, "cat")],
        "b.wav": [],
    }
    durations = _write(
        tmp_path / "durations.tsv",
        "filename\tduration\na.wav\t10\nb.wav\t9.5\n",
    )
    assert read_durations_tsv(durations) == {"a.wav": 10.0, "b.wav": 9.5}


@pytest.mark.parametrize(
    "rows, expected",
    [
        ("a.wav\t0.5\t1.5\thorse\n", r"strong.tsv:2: .*unknown label 'horse'"),
        ("a.wav\t2.5\t1.5\tdog\n", r"strong.tsv:2: .*onset 2.5 after"),
        ("a.wav\tsoon\t1.5\tdog\n", r"strong.tsv:2: .*'soon'"),
        ("a.wav\t0.5\t1.5\n", r"strong.tsv:2: 3 tab-separated fields"),
        ("\t0.5\t1.5\tdog\n", r"strong.tsv:2: the row has no filename"),
    ],
)
def test_read_events_tsv_names_the_bad_line(tmp_path, rows, expected):
    header = "filename\tonset\toffset\tevent_label\n"
    path = _write(tmp_path / "strong.tsv", header + rows)
    with pytest.raises(ValueError, match=expected) as err:
        read_events_tsv(path, LABELS)
    _one_line(err)


def test_read_tsv_refuses_missing_and_weak_files(tmp_path):
    missing = tmp_path / "none.tsv"
    with pytest.raises(FileNotFoundError) as err:
        read_events_tsv(missing)
    assert str(missing) in _one_line(err)
    weak = _write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tdog\n")
    with pytest.raises(ValueError, match=r"weak.tsv:1: .*\['onset'"):
        read_events_tsv(weak)
    bad = _write(tmp_path / "d.tsv", "filename\tduration\na.wav\t-1\n")
    with pytest.raises(ValueError, match="d.tsv:2: duration '-1'"):
        read_durations_tsv(bad)


def test_write_events_in_every_format(tmp_path):
    events = {
        "clips/a.wav": scores_to_events(
            torch.tensor([[0.9, 0.1], [0.9, 0.8]]),
            torch.tensor([0.0, 0.5, 1.0]),
            ["dog", "cat"],
        ),
        "b.wav": [],
    }
    [table] = write_events(events, tmp_path / "out.csv")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["filename"], r["event_label"]) for r in rows] == [
        ("clips/a.wav", "dog"),
        ("clips/a.wav", "cat"),
    ]
    assert float(rows[1]["onset"]) == 0.5 and float(rows[1]["score"]) == 0.8
    [doc] = write_events(events, tmp_path / "out.json")
    loaded = json.loads(open(doc).read())
    assert loaded["b.wav"] == [] and loaded["clips/a.wav"][0]["offset"] == 1.0
    tracks = write_events(events, tmp_path / "labels", fmt="audacity")
    assert [p.rsplit("/", 1)[1] for p in tracks] == ["a.txt", "b.txt"]
    assert open(tracks[0]).read().splitlines() == [
        "0.000000\t1.000000\tdog",
        "0.500000\t1.000000\tcat",
    ]
    assert open(tracks[1]).read() == ""
    [one] = write_events({"b.wav": [(1, 2, "dog")]}, tmp_path / "b.txt")
    assert open(one).read() == "1.000000\t2.000000\tdog\n"


def test_write_events_refuses_unclear_targets(tmp_path):
    events = {"a.wav": [], "b.wav": []}
    with pytest.raises(ValueError, match="'.*out.tsv' from its suffix"):
        write_events(events, tmp_path / "out.tsv")
    with pytest.raises(ValueError, match="2 audio files"):
        write_events(events, tmp_path / "one.txt")
    with pytest.raises(ValueError, match="fmt must be one of"):
        write_events(events, tmp_path / "x", fmt="xml")
    with pytest.raises(ValueError, match="same label file name|the label file"):
        write_events({"x/a.wav": [], "y/a.wav": []}, tmp_path / "t", "audacity")
