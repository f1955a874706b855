"""Frame-level sound event detection on AST's token grid: the time span of
each patch column (:func:`column_edges`), the frame head that scores every
column and pools them into clip scores (:class:`FrameHead`), the strong
(frame) targets of annotated events (:func:`strong_targets`) and the loss
on weak and strong labels together (:func:`sed_loss`).

The lobe's :meth:`~speechbrain_ast.model.lobe.AST.forward_frames` gives one
vector per patch column, the patch tokens averaged over frequency; columns
are ``tstride`` feature frames apart and ``patch`` frames wide.

Authors
 * speechbrain-ast developers
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechbrain.dataio.dataio import length_to_mask
from speechbrain_ast.model.head import ASTHead

__all__ = [
    "FRAME_POOLINGS",
    "FrameHead",
    "check_event",
    "column_edges",
    "lobe_column_edges",
    "sed_loss",
    "strong_targets",
]

#: How :class:`FrameHead` pools frame probabilities into clip ones.
FRAME_POOLINGS = ("attention", "linear_softmax", "max", "mean")


def column_edges(num_columns, tstride, patch=16, frame_shift=0.01):
    """The time span, in seconds, that each patch column stands for.

    Column ``i`` covers feature frames ``i * tstride`` to ``i * tstride +
    patch``. Columns overlap when ``tstride < patch``, so the edges between
    two columns are the midpoints of their centres; the first edge is 0 and
    the last is the end of the last column.

    Arguments
    ---------
    num_columns : int
        Number of patch columns (``forward_frames(feats).shape[1]``).
    tstride : int
        The lobe's patch stride along time, in feature frames.
    patch : int
        The patch width along time, in feature frames.
    frame_shift : float
        Seconds between feature frames (Kaldi fbank: 0.01).

    Returns
    -------
    torch.Tensor
        ``[num_columns + 1]`` float64 seconds, increasing.

    Example
    -------
    >>> column_edges(3, tstride=10)
    tensor([0.0000, 0.1300, 0.2300, 0.3600], dtype=torch.float64)
    """
    if int(num_columns) != num_columns or num_columns < 1:
        raise ValueError(
            f"num_columns must be a positive integer; got {num_columns!r}."
        )
    for name, value in (
        ("tstride", tstride),
        ("patch", patch),
        ("frame_shift", frame_shift),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive; got {value!r}.")
    starts = torch.arange(int(num_columns), dtype=torch.float64) * tstride
    # the midpoints between consecutive column centres
    inner = starts[:-1] + (tstride + patch) / 2
    last = starts[-1:] + patch
    edges = torch.cat([torch.zeros(1, dtype=torch.float64), inner, last])
    return edges * frame_shift


def lobe_column_edges(num_columns, lobe, frontend):
    """:func:`column_edges` of an AST lobe's columns, the frame shift
    taken from its fbank frontend.

    Arguments
    ---------
    num_columns : int
        Number of patch columns.
    lobe : speechbrain_ast.model.AST
        The lobe (its ``tstride`` and patch width).
    frontend : speechbrain_ast.features.KaldiFbank
        The features it reads (``hop_length`` samples at ``sample_rate``).

    Returns
    -------
    torch.Tensor
        ``[num_columns + 1]`` float64 seconds.

    Example
    -------
    >>> from speechbrain_ast.features import KaldiFbank
    >>> from speechbrain_ast.model import AST
    >>> lobe = AST(input_tdim=64, embed_dim=8, depth=1, num_heads=2)
    >>> lobe_column_edges(3, lobe, KaldiFbank())
    tensor([0.0000, 0.1300, 0.2300, 0.3600], dtype=torch.float64)
    """
    shift = frontend.hop_length / frontend.sample_rate
    return column_edges(num_columns, lobe.tstride, lobe.patch_size[1], shift)


def _column_mask(lengths, num_columns, device):
    """``[batch, num_columns]`` bool, True on the columns within each clip's
    relative length (at least one column)."""
    absolute = torch.round(lengths.to(device).float() * num_columns)
    return length_to_mask(absolute.clamp(min=1), num_columns).bool()


class FrameHead(nn.Module):
    """Frame probabilities from AST's patch columns, pooled into clip ones.

    Each column goes through a clip head's LayerNorm + Linear
    (:class:`~speechbrain_ast.model.head.ASTHead`, the ``classifier``
    attribute) and a sigmoid. The clip probability of a class pools them
    over time:

    * ``"attention"``: ``sum_t softmax_t(a_t) * p_t``, ``a_t`` a linear
      map of the normalised column (decision-level attention, as PANNs'
      ``Cnn14_DecisionLevelAtt``); the attention starts at zero (the mean);
    * ``"linear_softmax"``: ``sum_t p_t^2 / sum_t p_t`` (Wang, Li & Metze,
      ICASSP 2019);
    * ``"max"`` and ``"mean"`` over time.

    Arguments
    ---------
    embed_dim : int
        Width of the lobe's frame embeddings.
    num_classes : int
        Number of event classes.
    pooling : str
        One of :data:`FRAME_POOLINGS`.
    norm_eps : float
        The LayerNorm's epsilon (that of the clip head it may come from).

    Example
    -------
    >>> head = FrameHead(32, 4, pooling="linear_softmax")
    >>> frame_probs, clip_probs = head(torch.randn(2, 50, 32))
    >>> frame_probs.shape, clip_probs.shape
    (torch.Size([2, 50, 4]), torch.Size([2, 4]))
    >>> head.config["pooling"]
    'linear_softmax'
    """

    def __init__(
        self, embed_dim, num_classes, pooling="attention", norm_eps=1e-5
    ):
        super().__init__()
        if pooling not in FRAME_POOLINGS:
            raise ValueError(
                f"pooling must be one of {FRAME_POOLINGS}; got {pooling!r}."
            )
        self.classifier = ASTHead(embed_dim, num_classes, norm_eps)
        if pooling == "attention":
            self.attention = nn.Linear(embed_dim, num_classes)
            nn.init.zeros_(self.attention.weight)
            nn.init.zeros_(self.attention.bias)
        self.pooling = pooling
        # the constructor arguments: what model folders rebuild it from
        self.config = dict(
            embed_dim=int(embed_dim),
            num_classes=int(num_classes),
            pooling=str(pooling),
            norm_eps=float(norm_eps),
        )

    @classmethod
    def from_clip_head(cls, ast_head, pooling="max"):
        """A frame head whose classifier is a copy of a clip head, so that a
        clip model (a published AudioSet checkpoint, any model folder)
        scores frames without training.

        Arguments
        ---------
        ast_head : speechbrain_ast.model.ASTHead
            The clip head (LayerNorm + Linear, with its ``config``).
        pooling : str
            The clip pooling (one of :data:`FRAME_POOLINGS`; with
            ``"attention"`` the attention is untrained, i.e. the mean).

        Returns
        -------
        FrameHead
            With copied weights, in the clip head's mode, dtype and device.

        Example
        -------
        >>> from speechbrain_ast.model import ASTHead
        >>> clip_head = ASTHead(16, 3).eval()
        >>> emb = torch.randn(2, 16)
        >>> frames = emb[:, None].expand(2, 7, 16)
        >>> frame_probs, clip_probs = FrameHead.from_clip_head(clip_head)(
        ...     frames
        ... )
        >>> bool(torch.allclose(clip_probs, torch.sigmoid(clip_head(emb))))
        True
        """
        config = getattr(ast_head, "config", None)
        if not isinstance(ast_head, ASTHead) or not isinstance(config, dict):
            raise TypeError(
                "FrameHead.from_clip_head needs an ASTHead (LayerNorm + "
                f"Linear with a config); got {type(ast_head).__name__}."
            )
        head = cls(
            config["embed_dim"],
            config["n_classes"],
            pooling=pooling,
            norm_eps=config.get("norm_eps", 1e-5),
        )
        # a deep copy also carries a cast or int8-quantized clip head
        head.classifier = copy.deepcopy(ast_head)
        param = next(ast_head.parameters(), None)
        if param is not None and pooling == "attention":
            head.attention.to(param.device)
        return head.train(ast_head.training)

    def forward(self, frames, lengths=None):
        """Frame and clip probabilities.

        Arguments
        ---------
        frames : torch.Tensor
            ``[batch, time, embed_dim]`` (the lobe's ``forward_frames``).
        lengths : torch.Tensor, optional
            ``[batch]`` relative lengths in [0, 1]: the columns past a
            clip's length (rounded, at least one) do not enter its clip
            probability.

        Returns
        -------
        frame_probs : torch.Tensor
            ``[batch, time, num_classes]`` in [0, 1].
        clip_probs : torch.Tensor
            ``[batch, num_classes]`` in [0, 1].
        """
        embed_dim = self.config["embed_dim"]
        if frames.dim() != 3 or frames.shape[-1] != embed_dim:
            raise ValueError(
                f"FrameHead expects frames [batch, time, {embed_dim}]; got "
                f"{tuple(frames.shape)}: pass the lobe's forward_frames "
                "output."
            )
        normed = self.classifier[0](frames)
        frame_probs = torch.sigmoid(self.classifier[1](normed))
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.shape != frames.shape[:1]:
                raise ValueError(
                    f"lengths has shape {tuple(lengths.shape)}; expected "
                    f"({frames.shape[0]},), one relative length per clip."
                )
            mask = _column_mask(lengths, frames.shape[1], frames.device)
            mask = mask.unsqueeze(-1)
        return frame_probs, self._pool(frame_probs, normed, mask)

    def _pool(self, probs, normed, mask):
        """Clip probabilities from frame ones, padding columns left out."""
        if self.pooling == "attention":
            logits = self.attention(normed)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(logits, dim=1)
            return (weights * probs).sum(dim=1)
        if mask is not None:
            probs = probs * mask
        if self.pooling == "max":
            return probs.amax(dim=1)
        if self.pooling == "mean":
            count = probs.shape[1] if mask is None else mask.sum(dim=1)
            return probs.sum(dim=1) / count
        # linear softmax; the epsilon keeps all-zero columns at 0, not NaN
        return (probs * probs).sum(dim=1) / probs.sum(dim=1).clamp(min=1e-7)


def _merged(intervals):
    """Sorted, overlapping or touching ``(onset, offset)`` merged."""
    merged = []
    for onset, offset in sorted(intervals):
        if merged and onset <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], offset)
        else:
            merged.append([onset, offset])
    return merged


def check_event(event, labels, where="events"):
    """Refuses an event that is not ``(onset, offset, label)`` seconds with
    ``0 <= onset <= offset`` and a known label.

    Arguments
    ---------
    event : tuple
        ``(onset, offset, label)`` (more fields, e.g. a score, are ignored).
    labels : sequence of str or None
        The known labels; None accepts any.
    where : str
        Where the event comes from, for the error (a file and line).

    Returns
    -------
    tuple
        ``(onset, offset, label)`` as ``(float, float, str)``.

    Example
    -------
    >>> check_event((0.5, 1, "dog"), ["dog", "cat"])
    (0.5, 1.0, 'dog')
    >>> check_event((2.0, 1.0, "dog"), ["dog"])
    Traceback (most recent call last):
    ...
    ValueError: events: event (2.0, 1.0, 'dog') has onset 2.0 after its offset 1.0; swap them or drop the event.
    """
    try:
        onset, offset, label = event[0], event[1], event[2]
        onset, offset = float(onset), float(offset)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"{where}: event {event!r} is not (onset, offset, label) in "
            f"seconds ({err})."
        ) from err
    event = (onset, offset, label)
    if not onset >= 0 or not offset >= 0:
        raise ValueError(
            f"{where}: event {event!r} has a negative or NaN time; times "
            "are seconds from the start of the clip."
        )
    if onset > offset:
        raise ValueError(
            f"{where}: event {event!r} has onset {onset} after its offset "
            f"{offset}; swap them or drop the event."
        )
    if labels is not None and label not in labels:
        raise ValueError(
            f"{where}: event {event!r} has the unknown label {label!r}; "
            f"known labels: {list(labels)[:20]}."
        )
    return onset, offset, str(label)


def strong_targets(events, edges, labels):
    """Frame targets of annotated events on the patch columns.

    A column is 1 for a class where that class's events (merged where they
    overlap) cover at least half of the column's span.

    Arguments
    ---------
    events : iterable of tuple
        ``(onset, offset, label)`` in seconds.
    edges : torch.Tensor
        ``[T + 1]`` column edges in seconds (:func:`column_edges`).
    labels : sequence of str
        The classes, in output order.

    Returns
    -------
    torch.Tensor
        ``[T, num_classes]`` float, 0 or 1.

    Example
    -------
    >>> edges = torch.tensor([0.0, 1.0, 2.0, 3.0])
    >>> strong_targets([(0.4, 2.2, "dog")], edges, ["cat", "dog"])
    tensor([[0., 1.],
            [0., 1.],
            [0., 0.]])
    """
    labels = list(labels)
    edges = torch.as_tensor(edges, dtype=torch.float64)
    if edges.dim() != 1 or len(edges) < 2:
        raise ValueError(
            f"edges must be [T + 1] seconds with T >= 1; got shape "
            f"{tuple(edges.shape)} (see column_edges)."
        )
    by_class = {label: [] for label in labels}
    for event in events:
        onset, offset, label = check_event(event, labels)
        by_class[label].append((onset, offset))
    starts, ends = edges[:-1], edges[1:]
    targets = torch.zeros(len(starts), len(labels))
    for index, label in enumerate(labels):
        covered = torch.zeros(len(starts), dtype=torch.float64)
        for onset, offset in _merged(by_class[label]):
            covered += (ends.clamp(max=offset) - starts.clamp(min=onset)).clamp(
                min=0
            )
        targets[:, index] = (covered >= (ends - starts) / 2).float()
    return targets


def _check_same_shape(name, tensor, shape):
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}; expected "
            f"{tuple(shape)} (the frame head's outputs for the same batch)."
        )


def sed_loss(
    frame_probs, clip_probs, weak_targets, strong=None, strong_mask=None
):
    """Binary cross-entropy on weak (clip) labels, plus on strong (frame)
    labels for the examples that have them.

    Arguments
    ---------
    frame_probs : torch.Tensor
        ``[batch, T, C]`` frame probabilities (:class:`FrameHead`).
    clip_probs : torch.Tensor
        ``[batch, C]`` clip probabilities.
    weak_targets : torch.Tensor
        ``[batch, C]`` 0/1 clip labels.
    strong : torch.Tensor, optional
        ``[batch, T, C]`` 0/1 frame labels (:func:`strong_targets`).
    strong_mask : torch.Tensor, optional
        ``[batch]`` bool: the examples whose ``strong`` labels count (all
        when None and ``strong`` is given).

    Returns
    -------
    torch.Tensor
        The scalar loss: the clip term plus the mean frame term over the
        strongly labelled examples (no frame term without any).

    Example
    -------
    >>> frame_probs, clip_probs = torch.rand(2, 5, 3), torch.rand(2, 3)
    >>> weak = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    >>> strong = torch.zeros(2, 5, 3)
    >>> loss = sed_loss(
    ...     frame_probs, clip_probs, weak, strong, torch.tensor([True, False])
    ... )
    >>> loss.shape
    torch.Size([])
    """
    if frame_probs.dim() != 3:
        raise ValueError(
            f"frame_probs must be [batch, T, C]; got {tuple(frame_probs.shape)}."
        )
    batch, _, classes = frame_probs.shape
    _check_same_shape("clip_probs", clip_probs, (batch, classes))
    _check_same_shape("weak_targets", weak_targets, (batch, classes))
    loss = F.binary_cross_entropy(clip_probs, weak_targets.to(clip_probs.dtype))
    if strong is None:
        return loss
    _check_same_shape("strong", strong, frame_probs.shape)
    if strong_mask is None:
        strong_mask = torch.ones(batch, dtype=torch.bool)
    strong_mask = torch.as_tensor(strong_mask, device=frame_probs.device).bool()
    _check_same_shape("strong_mask", strong_mask, (batch,))
    if not bool(strong_mask.any()):
        return loss
    return loss + F.binary_cross_entropy(
        frame_probs[strong_mask], strong[strong_mask].to(frame_probs.dtype)
    )
