"""Inference with AST model folders: scores, top-k labels, lengths.

:class:`ASTAudioClassifier` is SpeechBrain's ``EncoderClassifier`` for AST
folders (written by :mod:`speechbrain_ast.inference.model_folder` or
:mod:`speechbrain_ast.convert`). Compared with the parent class it

- gives the frontend the clips' lengths, so a clip scores the same alone
  and padded inside a batch;
- returns probabilities: sigmoid scores for multi-label folders (AudioSet),
  softmax for single-label ones, and the top-k labels
  (``classify_batch`` of the parent is top-1 only);
- reads files with :func:`speechbrain_ast.data.audio.load_audio` (any rate and
  channel count soundfile reads, named errors);
- runs bf16 / fp16 with ``run_opts={"precision": "bf16"}`` (SpeechBrain's
  option): the lobe and head in that precision, the log-mel features in
  float32, a warning on a CPU without native support for the type
  (:mod:`speechbrain_ast.deploy.precision`).

Authors
 * speechbrain-ast developers
"""

import torch

from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain_ast.data.audio import AudioError, load_audio

__all__ = ["ASTAudioClassifier", "ClipScoring"]


class ClipScoring:
    """Scores and top-k labels from a classifier's logits.

    The base of :class:`ASTAudioClassifier` and of
    :class:`~speechbrain_ast.deploy.onnx_runtime.OnnxClassifier`, which
    score alike: a subclass has ``multi_label`` (sigmoid, else softmax),
    ``labels`` (class names in index order) and ``compute_logits(wavs,
    wav_lens)``.

    Example
    -------
    >>> class Fixed(ClipScoring):
    ...     multi_label = False
    ...     labels = ["dog", "cat"]
    ...
    ...     def compute_logits(self, wavs, wav_lens=None):
    ...         return torch.tensor([[0.0, 2.0]])
    >>> Fixed().predict_topk(torch.zeros(1, 16000), k=1)
    [[('cat', 0.8807970285415649)]]
    """

    def scores_from_logits(self, logits):
        """Sigmoid (multi-label) or softmax (single-label) of ``logits``.

        Arguments
        ---------
        logits : torch.Tensor
            ``[batch, n_classes]``.

        Returns
        -------
        torch.Tensor
            Scores in [0, 1], same shape.
        """
        if self.multi_label:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)

    def predict_topk(self, wavs, wav_lens=None, k=5):
        """The ``k`` best labels and their scores per clip.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` at the model's sample rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1].
        k : int
            How many labels per clip (at most the number of classes).

        Returns
        -------
        list of list of (str, float)
            Per clip, ``(label, score)`` by decreasing score.
        """
        scores = self.scores_from_logits(self.compute_logits(wavs, wav_lens))
        return self.topk_from_scores(scores, k)

    def topk_from_scores(self, scores, k=5):
        """``(label, score)`` lists of the ``k`` best classes per row.

        Arguments
        ---------
        scores : torch.Tensor
            ``[batch, n_classes]``.
        k : int
            How many labels per row (capped at the number of classes).

        Returns
        -------
        list of list of (str, float)
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        if scores.dim() == 1:
            scores = scores[None]
        k = min(int(k), scores.shape[-1])
        values, indices = torch.topk(scores, k, dim=-1)
        labels = self.labels
        return [
            [(labels[int(i)], float(v)) for v, i in zip(vals, idxs)]
            for vals, idxs in zip(values.cpu(), indices.cpu())
        ]


class ASTAudioClassifier(ClipScoring, EncoderClassifier):
    """An ``EncoderClassifier`` for AST model folders.

    Build it with ``ASTAudioClassifier.from_hparams(source=folder,
    savedir=...)``. The folder's ``multi_label`` entry chooses sigmoid
    (True) or softmax (False) scores; ``native_length`` says whether clips
    keep their own length (then clips of different lengths in one batch
    are run one by one, since padding would change their outputs).

    A folder's further modules are in ``mods`` with the lobe and head,
    its further settings in ``hparams``
    (:func:`~speechbrain_ast.inference.model_folder.export_model_folder`).

    Arguments
    ---------
    *args, **kwargs
        As :class:`speechbrain.inference.interfaces.Pretrained`.

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain_ast.testing.model_folders import tiny_model_folder
    >>> tmp = tempfile.mkdtemp()
    >>> folder = tiny_model_folder(os.path.join(tmp, "model"))
    >>> model = ASTAudioClassifier.from_hparams(
    ...     source=folder, savedir=os.path.join(tmp, "saved")
    ... )
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> scores, top, index, labels = model.classify_batch(wavs)
    >>> scores.shape
    torch.Size([2, 3])
    >>> [len(r) for r in model.predict_topk(wavs, k=2)]
    [2, 2]
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.multi_label = bool(getattr(self.hparams, "multi_label", False))
        self.native_length = bool(getattr(self.hparams, "native_length", False))
        self.sample_rate = int(getattr(self.hparams, "sample_rate", 16000))
        self._set_precision()

    def _set_precision(self):
        """bf16 / fp16 from ``run_opts={"precision": ...}``: a warning where
        the CPU lacks native support, and the lobe's and head's linear and
        convolution weights cast once (``inference_ctx`` autocasts the
        rest; see :mod:`speechbrain_ast.deploy.precision`)."""
        from speechbrain_ast.deploy.precision import (
            cast_for_inference,
            precision_dtype,
            warn_if_slow,
        )

        self.compute_dtype = precision_dtype(self.precision)
        if self.compute_dtype == torch.float32:
            return
        warn_if_slow(self.precision, self.device_type)
        for name in self._weighted_modules():
            cast_for_inference(self.mods[name], self.compute_dtype)

    def _weighted_modules(self):
        """The mods with weights: all but the frontend and normalisation
        (the lobe, the head and a folder's further modules)."""
        frontend = ("compute_features", "mean_var_norm")
        return [name for name in self.mods if name not in frontend]

    def quantize_int8(self):
        """Switches the lobe and head (and a folder's further modules) to
        int8 dynamic quantization (CPU).

        Their ``nn.Linear`` layers get int8 weights and run int8 matmuls
        (:func:`speechbrain_ast.deploy.quantize.quantize_int8`); the frontend,
        LayerNorms, attention and embeddings stay float32. Faster on a CPU,
        with logits close to (not equal to) the float model's: the
        benchmarks (``docs/benchmarks.md``) quote the agreement.

        Returns
        -------
        ASTAudioClassifier
            ``self``, for chaining.

        Example
        -------
        >>> import os, tempfile
        >>> from speechbrain_ast.deploy.quantize import count_quantized
        >>> from speechbrain_ast.testing.model_folders import (
        ...     tiny_model_folder,
        ... )
        >>> tmp = tempfile.mkdtemp()
        >>> folder = tiny_model_folder(
        ...     os.path.join(tmp, "model"), multi_label=False
        ... )
        >>> model = ASTAudioClassifier.from_hparams(
        ...     source=folder, savedir=os.path.join(tmp, "saved")
        ... ).quantize_int8()
        >>> count_quantized(model.mods.embedding_model)
        4
        >>> model.classify_batch(torch.randn(1, 16000) * 0.1)[0].shape
        torch.Size([1, 3])
        """
        from speechbrain_ast.deploy.quantize import quantize_int8

        if self.compute_dtype != torch.float32:
            raise ValueError(
                f"quantize_int8 needs a float32 model, but this one was "
                f"loaded with precision={self.precision!r}: load it with "
                "precision 'fp32' to quantize it (int8 and bf16/fp16 are "
                "alternatives, not a combination)."
            )
        for name in self._weighted_modules():
            self.mods[name] = quantize_int8(self.mods[name], inplace=True)
        return self

    @property
    def labels(self):
        """The class names in index order."""
        encoder = self.hparams.label_encoder
        return [encoder.ind2lab[i] for i in range(len(encoder))]

    def _prepare(self, wavs, wav_lens):
        """Batch shape, device, dtype and default lengths."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(
                f"Expected waveforms [batch, samples], got shape "
                f"{tuple(wavs.shape)}: downmix multi-channel audio first "
                "(or use classify_file)."
            )
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wav_lens = torch.as_tensor(wav_lens, dtype=torch.float32)
        if wav_lens.shape != (wavs.shape[0],):
            raise ValueError(
                f"wav_lens has shape {tuple(wav_lens.shape)}, expected "
                f"({wavs.shape[0]},): one relative length per waveform."
            )
        return wavs.to(self.device).float(), wav_lens.to(self.device)

    def _encode(self, wavs, wav_lens, clip=True, frames=False):
        """Frontend, normalisation and lobe on a prepared batch: ``(clip,
        frames)``, the pooled embedding and the lobe's ``forward_frames``,
        each None unless asked (both asked: one pass of the lobe)."""
        feats = self.mods.compute_features(wavs, wav_lens)
        feats = self.mods.mean_var_norm(feats, wav_lens)
        lobe = self.mods.embedding_model
        # the log-mel stays float32; the lobe runs in the run option's
        # precision (autocast, a no-op for fp32)
        with self.inference_ctx:
            if not frames:
                return lobe(feats, wav_lens).float(), None
            out = lobe.forward_frames(feats, with_clip=clip)
            pooled, columns = out if clip else (None, out)
        return (pooled.float() if clip else None), columns.float()

    def _encode_clips(self, wavs, wav_lens, clip=True, frames=False):
        """:meth:`_encode`, clip by clip where padding would be seen."""
        wavs, wav_lens = self._prepare(wavs, wav_lens)
        with torch.no_grad():
            if not self.native_length or bool(torch.all(wav_lens == 1.0)):
                return self._encode(wavs, wav_lens, clip, frames)
            # padding would be seen by the lobe: run each clip alone
            pooled, columns = [], []
            for wav, rel in zip(wavs, wav_lens):
                n = int(torch.round(rel * wavs.shape[1]))
                one = torch.ones(1, device=self.device)
                p, c = self._encode(wav[None, : max(n, 1)], one, clip, frames)
                pooled.append(p)
                columns.append(c)
        joined, padded = (torch.cat(pooled) if clip else None), None
        if frames:  # zero columns after the shorter clips
            padded = torch.nn.utils.rnn.pad_sequence(
                [c[0] for c in columns], batch_first=True
            )
        return joined, padded

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """Pooled AST embeddings, length-aware.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` (or ``[samples]``) at the folder's rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1]; samples past a clip's length are
            padding and do not change its embedding.
        normalize : bool
            Unused (kept for the parent's signature); AST embeddings are
            not normalised.

        Returns
        -------
        torch.Tensor
            ``[batch, embed_dim]``.
        """
        del normalize
        return self._encode_clips(wavs, wav_lens)[0]

    def encode_frames(self, wavs, wav_lens=None):
        """Frame embeddings: the lobe's ``forward_frames``, one vector per
        patch column, length-aware as :meth:`encode_batch`.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` (or ``[samples]``) at the folder's rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1]. In a native-length folder each clip
            runs alone and the shorter ones get zero columns at the end.

        Returns
        -------
        torch.Tensor
            ``[batch, columns, embed_dim]``.

        Example
        -------
        >>> from speechbrain_ast.testing.model_folders import tiny_classifier
        >>> model = tiny_classifier()
        >>> model.encode_frames(torch.randn(2, 16000) * 0.1).shape
        torch.Size([2, 12, 64])
        """
        return self._encode_clips(wavs, wav_lens, clip=False, frames=True)[1]

    def compute_logits(self, wavs, wav_lens=None):
        """The head's raw outputs (before sigmoid / softmax).

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` at the folder's rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1].

        Returns
        -------
        torch.Tensor
            ``[batch, n_classes]``.
        """
        emb = self.encode_batch(wavs, wav_lens)
        with torch.no_grad(), self.inference_ctx:
            return self.mods.classifier(emb).float()

    def logits_and_frames(self, wavs, wav_lens=None):
        """:meth:`compute_logits` and :meth:`encode_frames` from one pass
        of the lobe (what tagging events in time needs per window).

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` at the folder's rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1].

        Returns
        -------
        logits : torch.Tensor
            ``[batch, n_classes]``.
        frames : torch.Tensor
            ``[batch, columns, embed_dim]``.
        """
        emb, frames = self._encode_clips(wavs, wav_lens, frames=True)
        with torch.no_grad(), self.inference_ctx:
            return self.mods.classifier(emb).float(), frames

    def classify_batch(self, wavs, wav_lens=None):
        """Scores, best score, best index and best label per clip.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` at the folder's rate.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1].

        Returns
        -------
        scores : torch.Tensor
            ``[batch, n_classes]`` sigmoid (multi-label) or softmax scores.
        score : torch.Tensor
            ``[batch]`` the best class's score.
        index : torch.Tensor
            ``[batch]`` the best class.
        text_lab : list of str
            The best class's label per clip.
        """
        scores = self.scores_from_logits(self.compute_logits(wavs, wav_lens))
        score, index = torch.max(scores, dim=-1)
        text_lab = self.hparams.label_encoder.decode_torch(index)
        return scores, score, index, text_lab

    def load_audio(self, path, savedir=None):
        """Reads ``path`` mono at the folder's rate (see
        :func:`speechbrain_ast.data.audio.load_audio`; ``AudioError`` names a
        bad file).

        Arguments
        ---------
        path : str
            A local audio file.
        savedir : None
            Unused (remote files are not fetched).

        Returns
        -------
        torch.Tensor
            ``[samples]`` on the model's device.
        """
        del savedir
        return load_audio(path, self.sample_rate).to(self.device)

    def classify_file(self, path, **kwargs):
        """:meth:`classify_batch` on one file.

        Arguments
        ---------
        path : str
            An audio file at any rate / channel count soundfile reads.
        **kwargs
            Unused (kept for the parent's signature).

        Returns
        -------
        As :meth:`classify_batch`, for a batch of one.

        Raises
        ------
        AudioError
            For a file :func:`~speechbrain_ast.data.audio.load_audio` refuses,
            or one shorter than a frame (25 ms) with a native-length folder.
        """
        del kwargs
        wav = self.load_audio(path)
        frontend = self.mods.compute_features
        shortest = getattr(frontend, "win_length", 0)
        if self.native_length and wav.numel() < shortest:
            # nothing to pad to: the frontend's error would not name the file
            raise AudioError(
                f"Audio file {path!r} is {wav.numel()} samples long at "
                f"{self.sample_rate} Hz, shorter than one analysis frame "
                f"({shortest} samples), and this native-length model folder "
                "does not pad: pad the clip with silence or use a folder "
                "with a fixed target_length."
            )
        return self.classify_batch(wav[None])

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)
