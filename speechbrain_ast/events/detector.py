"""Frame scores of a model folder: the lobe's patch columns through the
folder's frame head, or, in a folder without one, through a frame head
copied from its clip head (so any clip model, a published AudioSet
checkpoint included, detects events without training).

Authors
 * speechbrain-ast developers
"""

import weakref

import torch

from speechbrain_ast.events.frames import FrameHead, lobe_column_edges
from speechbrain_ast.events.model_folder import FRAME_HEAD

__all__ = ["folder_frame_head", "frame_scores", "valid_columns"]

# clip head -> the frame head copied from it, built once per clip head
_FROM_CLIP_HEAD = weakref.WeakKeyDictionary()


def folder_frame_head(classifier):
    """The frame head of a loaded model folder: ``mods.frame_head`` where
    the folder has one, else a max-pooling
    :meth:`~speechbrain_ast.events.frames.FrameHead.from_clip_head` of its
    clip head, made once and reused.

    Arguments
    ---------
    classifier : speechbrain_ast.inference.ASTAudioClassifier
        The loaded model folder.

    Returns
    -------
    FrameHead

    Example
    -------
    >>> from speechbrain_ast.testing.model_folders import tiny_classifier
    >>> model = tiny_classifier()
    >>> folder_frame_head(model) is folder_frame_head(model)
    True
    """
    if FRAME_HEAD in classifier.mods:
        return classifier.mods[FRAME_HEAD]
    clip_head = classifier.mods.classifier
    head = _FROM_CLIP_HEAD.get(clip_head)
    if head is None:
        head = FrameHead.from_clip_head(clip_head).eval()
        _FROM_CLIP_HEAD[clip_head] = head
    return head


def valid_columns(classifier, wavs, wav_lens, num_columns):
    """The number of patch columns that hold each clip's audio.

    Arguments
    ---------
    classifier : speechbrain_ast.inference.ASTAudioClassifier
        A loaded model folder.
    wavs : torch.Tensor
        ``[batch, samples]``.
    wav_lens : torch.Tensor
        Relative lengths in [0, 1].
    num_columns : int
        The columns of the batch (cut from the frames of ``target_length``
        or of the longest clip).

    Returns
    -------
    torch.Tensor
        ``[batch]`` column counts.

    Example
    -------
    >>> from speechbrain_ast.testing.model_folders import tiny_classifier
    >>> model = tiny_classifier()
    >>> wavs = torch.zeros(2, 16000)
    >>> valid_columns(model, wavs, torch.tensor([1.0, 0.5]), 12).tolist()
    [9, 4]
    """
    frontend = classifier.mods.compute_features
    lobe = classifier.mods.embedding_model
    num_frames = (num_columns - 1) * lobe.tstride + lobe.patch_size[1]
    samples = torch.round(wav_lens.cpu() * wavs.shape[1]).long()
    frames = frontend.num_frames(samples).clamp(min=1, max=num_frames)
    return torch.tensor([lobe.grid(int(n))[1] for n in frames])


def frame_scores(classifier, wavs, wav_lens=None, frames=None):
    """Frame probabilities of every class on the lobe's patch columns.

    Arguments
    ---------
    classifier : speechbrain_ast.inference.ASTAudioClassifier
        A loaded model folder; its frame head scores the columns
        (:func:`folder_frame_head`).
    wavs : torch.Tensor
        ``[batch, samples]`` (or ``[samples]``) at the folder's rate.
    wav_lens : torch.Tensor, optional
        Relative lengths in [0, 1].
    frames : torch.Tensor, optional
        The lobe's frame embeddings of these waveforms when already
        computed (``classifier.logits_and_frames``).

    Returns
    -------
    edges : torch.Tensor
        ``[T + 1]`` seconds, the columns' spans
        (:func:`~speechbrain_ast.events.frames.column_edges`).
    frame_probs : torch.Tensor
        ``[batch, T, num_classes]`` in [0, 1]; 0 on the columns past a
        clip's audio (padding). A folder with a fixed ``target_length``
        scores that many frames: longer audio is cut, so score long
        recordings window by window.

    Example
    -------
    >>> from speechbrain_ast.testing.model_folders import tiny_classifier
    >>> model = tiny_classifier()
    >>> edges, frame_probs = frame_scores(model, torch.randn(2, 16000) * 0.1)
    >>> edges.shape, frame_probs.shape
    (torch.Size([13]), torch.Size([2, 12, 3]))
    """
    if frames is None:
        frames = classifier.encode_frames(wavs, wav_lens)
    wavs, wav_lens = classifier._prepare(wavs, wav_lens)
    head = folder_frame_head(classifier)
    with torch.no_grad(), classifier.inference_ctx:
        frame_probs = head(frames)[0].float()
    num_columns = frame_probs.shape[1]
    valid = valid_columns(classifier, wavs, wav_lens, num_columns)
    mask = torch.arange(num_columns) < valid[:, None]
    frame_probs = frame_probs * mask[..., None].to(frame_probs.device)
    edges = lobe_column_edges(
        num_columns,
        classifier.mods.embedding_model,
        classifier.mods.compute_features,
    )
    return edges, frame_probs
