"""AST's normalisation of log-mel features with fixed dataset statistics:
the statistics of the reference datasets (``DATASET_STATS``), the
normalisation (:class:`FixedNormalization`) and the computation of the
statistics of other data (:func:`compute_norm_stats`).

Authors
 * speechbrain-ast developers
"""

import math
import os

import torch
from torch import nn

from speechbrain_ast.features.fbank import KaldiFbank, pad_or_cut

__all__ = ["DATASET_STATS", "FixedNormalization", "compute_norm_stats"]

# (mean, std) of the reference log-mel features, from the AST repository
DATASET_STATS = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}


def _dataset_key(name):
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


class FixedNormalization(nn.Module):
    """AST's normalisation with fixed dataset statistics:
    ``(x - mean) / (2 * std)``.

    Ours because SpeechBrain's ``InputNormalization`` learns running
    statistics and divides by one std, not the reference's fixed ``2 * std``.

    This is the ``mean_var_norm`` of an AST ``EncoderClassifier``. It has
    no parameters and no state: the statistics are plain floats, so it
    works on any device and dtype and adds nothing to checkpoints. Padded
    frames are normalised too, as in the reference.

    Arguments
    ---------
    mean : float or None
        Mean of the log-mel features (give with ``std``).
    std : float or None
        Standard deviation of the log-mel features.
    dataset : str or None
        Instead of mean/std, a key of ``DATASET_STATS``: "audioset",
        "esc50" or "speechcommands".

    Example
    -------
    >>> norm = FixedNormalization(dataset="audioset")
    >>> norm(torch.full((1, 2, 3), -4.2677393)).abs().max() < 1e-6
    tensor(True)
    >>> FixedNormalization(mean=1.0, std=0.5)(torch.ones(1, 1, 1))
    tensor([[[0.]]])
    """

    def __init__(self, mean=None, std=None, dataset=None):
        super().__init__()
        if dataset is not None:
            if mean is not None or std is not None:
                raise ValueError(
                    f"Give either dataset={dataset!r} or mean/std, not both."
                )
            key = _dataset_key(dataset)
            if key not in DATASET_STATS:
                raise ValueError(
                    f"Unknown dataset {dataset!r}: known ones are "
                    f"{sorted(DATASET_STATS)}. For other data give mean and "
                    "std, e.g. from compute_norm_stats."
                )
            mean, std = DATASET_STATS[key]
        if mean is None or std is None:
            raise ValueError(
                "FixedNormalization needs mean and std (e.g. from "
                "compute_norm_stats) or dataset= one of "
                f"{sorted(DATASET_STATS)}; got mean={mean}, std={std}."
            )
        if not (math.isfinite(std) and std > 0 and math.isfinite(mean)):
            raise ValueError(
                f"Need a finite mean and a positive std, got mean={mean}, "
                f"std={std}."
            )
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x, lengths=None):
        """Normalises ``x`` ``[batch, time, freq]``; ``lengths`` is
        accepted for SpeechBrain's ``mean_var_norm(feats, lengths)`` call
        and unused."""
        return (x - self.mean) / (2.0 * self.std)

    def extra_repr(self):
        """The statistics, for ``repr``."""
        return f"mean={self.mean}, std={self.std}"


def _manifest_paths(files_or_manifest, wav_column, replacements):
    """Audio paths from a list of files or a SpeechBrain CSV manifest."""
    if isinstance(files_or_manifest, (str, os.PathLike)):
        from speechbrain.dataio.dataio import load_data_csv

        manifest = os.fspath(files_or_manifest)
        if not os.path.isfile(manifest):
            raise ValueError(
                f"Manifest {manifest!r} does not exist: give a SpeechBrain "
                "CSV manifest or a list of audio paths."
            )
        rows = load_data_csv(manifest, replacements=replacements)
        paths = []
        for row_id, row in rows.items():
            if wav_column not in row:
                raise ValueError(
                    f"Manifest {manifest!r} has no column {wav_column!r} "
                    f"(columns: {sorted(row)}): set wav_column."
                )
            paths.append(row[wav_column])
        return paths
    return [os.fspath(p) for p in files_or_manifest]


@torch.no_grad()
def compute_norm_stats(
    files_or_manifest,
    frontend=None,
    target_length=None,
    wav_column="wav",
    replacements=None,
):
    """Global mean and std of the log-mel features of a dataset, for
    :class:`FixedNormalization`.

    The statistics are exact over all frames (running sums in float64,
    population std). Without ``target_length`` only each clip's own frames
    count; with it, each clip is padded/cut to ``target_length`` frames
    first, padding zeros included, as the reference training sees them.
    (The reference script instead averaged per-batch means and stds of
    ``target_length``-padded features, which differs slightly.)

    Arguments
    ---------
    files_or_manifest : str or list
        A list of audio paths, or the path of a SpeechBrain CSV manifest.
    frontend : KaldiFbank or None
        The feature extractor; default ``KaldiFbank(demean_waveform=True)``,
        what the reference training computes.
    target_length : int or None
        Pad/cut each clip to this many frames before counting.
    wav_column : str
        The manifest's audio path column.
    replacements : dict or None
        Manifest placeholders, e.g. ``{"data_root": "/data"}`` for
        ``$data_root/a.wav`` (as SpeechBrain's ``load_data_csv``).

    Returns
    -------
    mean : float
    std : float

    Example
    -------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "a.wav")
    >>> sf.write(path, np.random.uniform(-0.5, 0.5, 16000), 16000)
    >>> mean, std = compute_norm_stats([path])
    >>> -20 < mean < 10 and 0 < std < 20
    True
    """
    from speechbrain_ast.data.audio import load_audio
    from speechbrain_ast.data.prepare import (
        check_audio_files,
        raise_for_bad_audio,
    )

    paths = _manifest_paths(files_or_manifest, wav_column, replacements)
    # headers first: every bad file in one list, before hours of decoding
    _, problems = check_audio_files(paths)
    raise_for_bad_audio(
        [str(err) for err in problems.values()],
        len(paths),
        "files",
        "fix or remove them before computing the statistics",
    )
    if frontend is None:
        frontend = KaldiFbank(demean_waveform=True)
    was_training = frontend.training
    frontend.eval()
    buffer = next(frontend.buffers(), None)
    device = buffer.device if buffer is not None else torch.device("cpu")
    count, mean, m2 = 0, 0.0, 0.0
    try:
        for path in paths:
            wav = load_audio(path, frontend.sample_rate).to(device)
            n_frames = frontend.num_frames(wav.numel())
            if n_frames == 0:
                # too short for a frame: only padding, if any, counts
                feats = torch.zeros(0, frontend.n_mels, dtype=torch.float64)
            else:
                feats = frontend(wav.unsqueeze(0))[0].double()
            if target_length is not None:
                feats = pad_or_cut(feats, target_length)
            elif frontend.target_length is not None:
                # count only the clip's own frames, not the padding
                feats = feats[:n_frames]
            if feats.numel() == 0:
                continue
            # Chan et al.'s pairwise update: exact and stable in float64
            n_b = feats.numel()
            mean_b = float(feats.mean())
            m2_b = float(((feats - mean_b) ** 2).sum())
            total = count + n_b
            diff = mean_b - mean
            mean += diff * n_b / total
            m2 += m2_b + diff * diff * count * n_b / total
            count = total
    finally:
        frontend.train(was_training)
    if count == 0:
        raise ValueError(
            f"No features from {len(paths)} files: every clip is shorter "
            f"than one frame ({frontend.win_length} samples) or the list is "
            "empty. Give longer audio or a target_length."
        )
    return mean, math.sqrt(m2 / count)
