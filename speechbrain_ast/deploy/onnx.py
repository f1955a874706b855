"""An AST model folder -> one ONNX file: waveform in, logits out.

::

    python -m speechbrain_ast.export_onnx MODEL_FOLDER --out model.onnx \\
        [--precision fp32|int8]

The graph is the whole pipeline of the folder's
:class:`~speechbrain_ast.inference.classifier.ASTAudioClassifier`: the Kaldi fbank
frontend (as :class:`~speechbrain_ast.features.ExportableFbank`, the same
features written with a strided convolution instead of an FFT), the fixed
normalisation, the AST lobe and the head. Its input ``waveform`` is
``[batch, samples]`` float32 at the folder's sample rate, both axes
dynamic; every clip of a batch is taken at its full length (pad shorter
clips yourself, or run them one by one). Its output ``logits`` is
``[batch, n_classes]``. A native-length folder keeps each clip's own
length in the graph too: the lobe's own forward is traced, and it adapts
the positional embedding to the clip's patch grid inside the graph
(:func:`speechbrain_ast.model.pos_embed.adapt_pos_embed`).

The labels and the folder's settings travel in the file's
``metadata_props``: ``labels`` (a JSON list, index order),
``multi_label``, ``sample_rate``, ``native_length``, ``target_length``,
``precision``; :func:`read_metadata` reads them.

The exported file is run by
:class:`~speechbrain_ast.deploy.onnx_runtime.OnnxClassifier`.

``--precision int8`` applies ONNX Runtime's dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``: int8 weights of the
matrix products, in 7-bit range so that CPUs without VNNI do not saturate,
activations quantized per call) to the float32 export.

Needs the ``deploy`` extra (``pip install speechbrain_ast[deploy]``:
onnx, onnxscript, onnxruntime, openvino).

Authors
 * speechbrain-ast developers
"""

import json
import os
import tempfile

import torch
from torch import nn

from speechbrain_ast.features import ExportableFbank

__all__ = [
    "FeaturesToLogits",
    "WaveformToLogits",
    "export_features_onnx",
    "export_onnx",
    "load_folder",
    "read_metadata",
    "require",
]

OPSET = 18


def require(module, what):
    """Imports ``module`` of the ``deploy`` extra, or raises an
    ``ImportError`` saying how to install it.

    Arguments
    ---------
    module : str
        ``"onnx"``, ``"onnxscript"``, ``"onnxruntime"`` or ``"openvino"``.
    what : str
        What needs it, for the message.

    Returns
    -------
    module

    Example
    -------
    >>> require("onnx", "Reading an ONNX file").__name__
    'onnx'
    """
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the {module!r} package: pip install "
            "'speechbrain_ast[deploy]' (onnx, onnxscript, onnxruntime, "
            "openvino)."
        ) from err


class FeaturesToLogits(nn.Module):
    """The lobe and head as one module: normalised features
    ``[batch, time, F]`` -> logits.

    Its forward is the lobe's own, which traces with a dynamic time axis
    (:class:`~speechbrain_ast.model.lobe.AST`), then the head; it only
    refuses a lobe that is not float32.

    Arguments
    ---------
    lobe : speechbrain_ast.model.lobe.AST
        The float32 lobe.
    head : torch.nn.Module
        The head.

    Example
    -------
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2).eval()
    >>> head = ASTHead(64, 3).eval()
    >>> FeaturesToLogits(lobe, head)(torch.randn(1, 300, 128)).shape
    torch.Size([1, 3])
    """

    def __init__(self, lobe, head):
        super().__init__()
        weight = lobe.patch_embed.proj.weight
        if weight.dtype != torch.float32:
            raise ValueError(
                f"The lobe's weights are {weight.dtype}: export a float32 "
                "model (precision 'fp32'; --precision int8 quantizes the "
                "float32 graph)."
            )
        self.lobe = lobe
        self.head = head

    def forward(self, feats):
        """``[batch, time, F]`` normalised features -> logits."""
        return self.head(self.lobe(feats))


class WaveformToLogits(nn.Module):
    """The exportable pipeline of a loaded AST model folder.

    Frontend (:class:`~speechbrain_ast.features.ExportableFbank`), fixed
    normalisation, then :class:`FeaturesToLogits` (lobe and head).

    Arguments
    ---------
    classifier : speechbrain_ast.inference.classifier.ASTAudioClassifier
        A loaded float32 model folder.

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain_ast.inference.classifier import ASTAudioClassifier
    >>> from speechbrain_ast.testing.model_folders import tiny_model_folder
    >>> tmp = tempfile.mkdtemp()
    >>> folder = tiny_model_folder(os.path.join(tmp, "model"))
    >>> model = ASTAudioClassifier.from_hparams(
    ...     source=folder, savedir=os.path.join(tmp, "saved")
    ... )
    >>> wavs = torch.randn(1, 16000) * 0.1
    >>> graph = WaveformToLogits(model)
    >>> bool((graph(wavs) - model.compute_logits(wavs)).abs().max() < 1e-4)
    True
    """

    def __init__(self, classifier):
        super().__init__()
        mods = classifier.mods
        weight = mods.embedding_model.patch_embed.proj.weight
        if weight.dtype != torch.float32:
            raise ValueError(
                f"The model was loaded with precision "
                f"{getattr(classifier, 'precision', None)!r} (weights "
                f"{weight.dtype}): export a float32 model (precision 'fp32'; "
                "--precision int8 quantizes the float32 graph)."
            )
        self.frontend = ExportableFbank(mods.compute_features)
        self.mean = float(mods.mean_var_norm.mean)
        self.std = float(mods.mean_var_norm.std)
        self.model = FeaturesToLogits(mods.embedding_model, mods.classifier)

    def forward(self, waveform):
        """``[batch, samples]`` waveforms -> ``[batch, n_classes]`` logits."""
        feats = self.frontend(waveform)
        feats = (feats - self.mean) / (2.0 * self.std)
        return self.model(feats)


def load_folder(folder, savedir=None):
    """Loads a model folder as a float32 CPU ``ASTAudioClassifier``.

    Arguments
    ---------
    folder : str
        A folder written by :mod:`speechbrain_ast.inference.model_folder` or ``convert``.
    savedir : str, optional
        Where SpeechBrain links the files (default: a temporary folder).

    Returns
    -------
    speechbrain_ast.inference.classifier.ASTAudioClassifier

    Example
    -------
    >>> load_folder("no/such/folder")
    Traceback (most recent call last):
    ...
    ValueError: 'no/such/folder' is not a model folder (no hyperparams.yaml): give a folder written by speechbrain_ast.inference.model_folder or speechbrain_ast.convert.
    """
    from speechbrain_ast.inference.classifier import ASTAudioClassifier

    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, "hyperparams.yaml")):
        raise ValueError(
            f"{folder!r} is not a model folder (no hyperparams.yaml): give a "
            "folder written by speechbrain_ast.inference.model_folder or "
            "speechbrain_ast.convert."
        )
    savedir = savedir or tempfile.mkdtemp(prefix="ast_onnx_")
    return ASTAudioClassifier.from_hparams(
        source=folder, savedir=savedir, run_opts={"device": "cpu"}
    )


def _metadata(classifier, precision):
    """The ``metadata_props`` entries of an exported file."""
    frontend = classifier.mods.compute_features
    return {
        "labels": json.dumps(classifier.labels, ensure_ascii=False),
        "multi_label": json.dumps(bool(classifier.multi_label)),
        "sample_rate": str(int(classifier.sample_rate)),
        "native_length": json.dumps(bool(classifier.native_length)),
        "target_length": json.dumps(frontend.target_length),
        "min_samples": str(int(frontend.win_length)),
        "precision": precision,
        "producer": "speechbrain_ast.deploy.onnx",
    }


def read_metadata(path):
    """The labels and settings stored in an exported file.

    Arguments
    ---------
    path : str
        An ``.onnx`` file written by :func:`export_onnx`.

    Returns
    -------
    dict
        ``labels`` (list of str), ``multi_label`` (bool), ``sample_rate``
        (int), ``native_length`` (bool), ``target_length`` (int or None),
        ``precision`` (str).

    Example
    -------
    >>> read_metadata("no_such_file.onnx")
    Traceback (most recent call last):
    ...
    ValueError: ONNX file 'no_such_file.onnx' does not exist.
    """
    onnx = require("onnx", "Reading an ONNX file")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"ONNX file {path!r} does not exist.")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others
        raise ValueError(
            f"{path!r} is not a readable ONNX file ({err}): export it with "
            "python -m speechbrain_ast.export_onnx MODEL_FOLDER --out FILE."
        ) from err
    props = {p.key: p.value for p in model.metadata_props}
    if "labels" not in props:
        raise ValueError(
            f"ONNX file {path!r} has no 'labels' in its metadata_props: it "
            "was not written by speechbrain_ast.deploy.onnx, so its class "
            "names are unknown. Export the model folder with it."
        )
    return {
        "labels": json.loads(props["labels"]),
        "multi_label": json.loads(props.get("multi_label", "false")),
        "sample_rate": int(props.get("sample_rate", 16000)),
        "native_length": json.loads(props.get("native_length", "false")),
        "target_length": json.loads(props.get("target_length", "null")),
        "min_samples": int(props.get("min_samples", 0)),
        "precision": props.get("precision", "fp32"),
    }


def _write_metadata(path, entries):
    """Adds ``entries`` to the file's ``metadata_props`` (in place)."""
    onnx = require("onnx", "Writing an ONNX file")
    model = onnx.load(path)
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, path)


def _linear_nodes(path):
    """The graph's matrix products by a weight (the lobe's and head's
    linear layers): the ones int8 quantizes. The frontend's products (its
    power spectra span too many decades for 8 bits) and attention's
    products of two activations stay float32, as in
    :func:`speechbrain_ast.deploy.quantize.quantize_int8`."""
    onnx = require("onnx", "The int8 ONNX export")
    graph = onnx.load(path).graph
    weights = {init.name for init in graph.initializer}
    names = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        scope = " ".join(p.value for p in node.metadata_props)
        if node.input[1] in weights and "/frontend" not in scope:
            names.append(node.name)
    if not names:
        raise ValueError(
            f"No linear layers found to quantize in {path!r}: the exported "
            "graph is not the expected AST pipeline."
        )
    return names


def export_onnx(folder, out, precision="fp32", savedir=None):
    """Exports a model folder to one ONNX file (waveform -> logits).

    Arguments
    ---------
    folder : str or ASTAudioClassifier
        A model folder, or a loaded float32 classifier.
    out : str
        The ``.onnx`` file to write (replaced if it exists).
    precision : str
        ``"fp32"``, or ``"int8"`` for ONNX Runtime's dynamic quantization
        of the float32 graph.
    savedir : str, optional
        SpeechBrain's link folder when loading ``folder``.

    Returns
    -------
    str
        ``out``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.testing.model_folders import tiny_model_folder
    >>> d = tempfile.mkdtemp()
    >>> folder = tiny_model_folder(
    ...     f"{d}/model",
    ...     ["dog", "rain"],
    ...     multi_label=False,
    ...     input_tdim=32,
    ...     embed_dim=32,
    ... )
    >>> path = export_onnx(folder, f"{d}/model.onnx")
    >>> read_metadata(path)["labels"]
    ['dog', 'rain']
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(path)
    >>> session.run(None, {"waveform": torch.zeros(1, 8000).numpy()})[0].shape
    (1, 2)
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(
            f"Unknown precision {precision!r} for the ONNX export: use "
            "'fp32' or 'int8'."
        )
    require("onnx", "The ONNX export")
    require("onnxscript", "The ONNX export")
    if isinstance(folder, (str, os.PathLike)):
        classifier = load_folder(folder, savedir)
    else:
        classifier = folder
    graph = WaveformToLogits(classifier).eval()
    out = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    sample_rate = int(classifier.sample_rate)
    # batch 2: an example of size 1 would be specialised to it
    example = torch.zeros(2, sample_rate)
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=1, max=3600 * sample_rate)
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        fp32_path = os.path.join(tmp, "fp32.onnx")
        with torch.no_grad():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=["waveform"],
                output_names=["logits"],
                dynamic_shapes={"waveform": {0: batch, 1: samples}},
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
        program.save(fp32_path, external_data=False)
        written = fp32_path
        if precision == "int8":
            require("onnxruntime", "The int8 ONNX export")
            from onnxruntime.quantization import QuantType, quantize_dynamic

            written = os.path.join(tmp, "int8.onnx")
            quantize_dynamic(
                fp32_path,
                written,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # 7-bit weights: without VNNI (AVX2) the u8 x s8 products
                # saturate with 8 bits (logits cosine 0.987 vs 0.9994)
                reduce_range=True,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_quantize=_linear_nodes(fp32_path),
            )
        _write_metadata(written, _metadata(classifier, precision))
        os.replace(written, out)
    return out


def export_features_onnx(lobe, head, out, num_frames, native_length=False):
    """Exports the lobe and head alone (features -> logits, float32).

    For measuring the model without the frontend (``benchmarks/deploy.py``)
    and for pipelines with their own features.

    Arguments
    ---------
    lobe : speechbrain_ast.model.lobe.AST
        The float32 lobe.
    head : torch.nn.Module
        The head.
    out : str
        The ``.onnx`` file to write.
    num_frames : int
        Frames of the example input (the fixed length unless
        ``native_length``).
    native_length : bool
        A dynamic time axis (positional embedding adapted in the graph).

    Returns
    -------
    str
        ``out``; input ``features`` ``[batch, frames, F]``, output
        ``logits``.

    Example
    -------
    >>> import tempfile
    >>> import onnxruntime
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> lobe = AST(input_tdim=32, embed_dim=32, depth=1, num_heads=2).eval()
    >>> head = ASTHead(32, 3).eval()
    >>> out = export_features_onnx(
    ...     lobe, head, f"{tempfile.mkdtemp()}/m.onnx", 32
    ... )
    >>> feats = torch.randn(1, 32, 128)
    >>> (got,) = onnxruntime.InferenceSession(out).run(
    ...     None, {"features": feats.numpy()}
    ... )
    >>> bool(abs(torch.from_numpy(got) - head(lobe(feats))).max() < 1e-4)
    True
    """
    require("onnxscript", "The ONNX export")
    graph = FeaturesToLogits(lobe, head).eval()
    example = torch.zeros(2, int(num_frames), int(lobe.input_fdim))
    axes = {0: torch.export.Dim("batch", min=1, max=1024)}
    if native_length:
        axes[1] = torch.export.Dim("frames", min=1, max=360000)
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=["features"],
            output_names=["logits"],
            dynamic_shapes={"feats": axes},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    program.save(os.fspath(out), external_data=False)
    return os.fspath(out)
