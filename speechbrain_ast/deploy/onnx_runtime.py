"""An exported AST file run by ONNX Runtime or OpenVINO, scored as the
PyTorch model folder is.

:class:`OnnxClassifier` reads the labels and settings that
:func:`speechbrain_ast.deploy.onnx.export_onnx` stored in the file, and
derives its scores and top-k labels from the base class it shares with
the PyTorch folder's classifier,
:class:`~speechbrain_ast.inference.classifier.ClipScoring`.
``python -m speechbrain_ast.tag --backend onnxruntime|openvino`` uses it.

Authors
 * speechbrain-ast developers
"""

import os

import torch

from speechbrain_ast.deploy.onnx import read_metadata, require
from speechbrain_ast.inference.classifier import ClipScoring

__all__ = ["OnnxClassifier"]


class OnnxClassifier(ClipScoring):
    """An exported file run by ONNX Runtime or OpenVINO, with the methods
    of :class:`~speechbrain_ast.inference.classifier.ASTAudioClassifier`
    that ``python -m speechbrain_ast.tag --backend onnxruntime|openvino``
    calls (``compute_logits``, the scoring of
    :class:`~speechbrain_ast.inference.classifier.ClipScoring`, ``labels``,
    ``sample_rate``).

    Arguments
    ---------
    path : str
        An ``.onnx`` file written by
        :func:`~speechbrain_ast.deploy.onnx.export_onnx`.
    backend : str
        ``"onnxruntime"`` or ``"openvino"``.
    precision : str
        OpenVINO's inference precision: ``"fp32"`` (default, f32),
        ``"bf16"`` or ``"fp16"``; ONNX Runtime runs the file as written
        (fp32 only here).
    threads : int, optional
        Intra-op threads (default: the runtime's).

    Example
    -------
    >>> OnnxClassifier("no_such_file.onnx")
    Traceback (most recent call last):
    ...
    ValueError: ONNX file 'no_such_file.onnx' does not exist.

    (:func:`~speechbrain_ast.deploy.onnx.export_onnx` has an example that
    writes one.)
    """

    def __init__(
        self, path, backend="onnxruntime", precision="fp32", threads=None
    ):
        meta = read_metadata(path)
        self.labels = list(meta["labels"])
        self.multi_label = bool(meta["multi_label"])
        self.sample_rate = int(meta["sample_rate"])
        self.native_length = bool(meta["native_length"])
        self.min_samples = int(meta["min_samples"])
        self.device = "cpu"
        if backend == "onnxruntime":
            if precision != "fp32":
                raise ValueError(
                    f"precision {precision!r} with ONNX Runtime: it runs the "
                    "file as exported; use --backend openvino for bf16/fp16 "
                    "or export with --precision int8."
                )
            ort = require("onnxruntime", "--backend onnxruntime")
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
            self._run = lambda x: session.run(None, {"waveform": x})[0]
        elif backend == "openvino":
            ov = require("openvino", "--backend openvino")
            hints = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
            if precision not in hints:
                raise ValueError(
                    f"Unknown precision {precision!r}: use one of "
                    f"{sorted(hints)}."
                )
            config = {"INFERENCE_PRECISION_HINT": hints[precision]}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = ov.Core().compile_model(os.fspath(path), "CPU", config)
            self._run = lambda x: compiled(x)[0]
        else:
            raise ValueError(
                f"Unknown backend {backend!r}: use 'onnxruntime' or 'openvino'."
            )

    def compute_logits(self, wavs, wav_lens=None):
        """Logits ``[batch, n_classes]``; each clip runs at its own length
        (``wav_lens`` relative), as the PyTorch folder scores it.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` (or ``[samples]``) at ``sample_rate``.
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1].

        Returns
        -------
        torch.Tensor
        """
        wavs = torch.as_tensor(wavs, dtype=torch.float32).cpu()
        if wavs.dim() == 1:
            wavs = wavs[None]
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        out = []
        for wav, rel in zip(wavs, torch.as_tensor(wav_lens).tolist()):
            n = max(int(round(rel * wavs.shape[1])), 1)
            clip = wav[None, :n].contiguous().numpy()
            out.append(torch.from_numpy(self._run(clip)).float())
        return torch.cat(out)
