"""The model folder of an event detector: a clip model folder
(:mod:`speechbrain_ast.inference.model_folder`) that also holds a frame
head and the event settings tuned with it.

The frame head is one of the folder's further modules (``frame_head.ckpt``,
loaded as ``mods.frame_head`` by SpeechBrain's ``EncoderClassifier`` too),
the thresholds and the median window are further top-level values of its
``hyperparams.yaml``. :func:`event_extras` checks them and gives them to
either writer (``export_model_folder``, or ``export_trained_model`` at the
end of a recipe); :func:`folder_event_settings` reads them back from a
loaded folder.

Authors
 * speechbrain-ast developers
"""

import torch

from speechbrain_ast.inference.hyperparams import module_config, module_file

__all__ = [
    "FRAME_HEAD",
    "FRAME_HEAD_FILE",
    "event_extras",
    "folder_event_settings",
]

#: The frame head's name in a model folder's modules.
FRAME_HEAD = "frame_head"
#: The file of its weights.
FRAME_HEAD_FILE = module_file(FRAME_HEAD)


def _check_thresholds(thresholds, n_classes):
    """``thresholds`` as plain floats, one or one per class, in [0, 1]."""
    values = torch.as_tensor(thresholds, dtype=torch.float64)
    in_range = bool(((values >= 0) & (values <= 1)).all())
    count = values.numel() in (1, n_classes)
    if values.dim() > 1 or not count or not in_range:
        raise ValueError(
            f"thresholds must be one number or {n_classes} (one per "
            f"class), each in [0, 1]; got {thresholds!r}."
        )
    return values.tolist()


def event_extras(labels, frame_head=None, thresholds=None, median_window=None):
    """The further modules and settings that make a clip model folder an
    event detector's, checked, as keyword arguments of
    :func:`~speechbrain_ast.inference.model_folder.export_model_folder`
    or :func:`~speechbrain_ast.inference.model_folder.export_trained_model`.

    Arguments
    ---------
    labels : sequence of str
        The folder's class names.
    frame_head : torch.nn.Module, optional
        A frame head (:class:`~speechbrain_ast.events.frames.FrameHead`)
        with one output per label, written to ``frame_head.ckpt``. Without
        one, the folder's clip head scores the frames
        (:func:`~speechbrain_ast.events.detector.folder_frame_head`).
    thresholds : float or sequence of float, optional
        Event thresholds in [0, 1], one or one per label (e.g. tuned by
        :func:`~speechbrain_ast.events.postprocess.tune_thresholds`).
    median_window : int, optional
        The odd median filter length, in patch columns.

    Returns
    -------
    dict
        ``extra_modules`` and ``extra_settings``.

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain_ast.events.frames import FrameHead
    >>> from speechbrain_ast.inference import export_model_folder
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> labels = ["dog", "cat"]
    >>> extras = event_extras(labels, FrameHead(24, 2), [0.5, 0.25], 7)
    >>> extras["extra_settings"]
    {'thresholds': [0.5, 0.25], 'median_window': 7}
    >>> folder = export_model_folder(
    ...     os.path.join(tempfile.mkdtemp(), "model"),
    ...     AST(input_tdim=128, embed_dim=24, depth=1, num_heads=2),
    ...     ASTHead(24, 2),
    ...     labels,
    ...     {"target_length": 128},
    ...     (-4.27, 4.57),
    ...     multi_label=True,
    ...     **extras,
    ... )
    >>> FRAME_HEAD_FILE in os.listdir(folder)
    True
    """
    n_classes = len(labels)
    modules, settings = {}, {}
    if frame_head is not None:
        outputs = module_config(frame_head).get("num_classes")
        if outputs is not None and outputs != n_classes:
            raise ValueError(
                f"The frame head has {outputs} outputs for {n_classes} "
                "labels: give a frame head with one output per label."
            )
        modules[FRAME_HEAD] = frame_head
    if thresholds is not None:
        settings["thresholds"] = _check_thresholds(thresholds, n_classes)
    if median_window is not None:
        if int(median_window) != median_window or median_window % 2 != 1:
            raise ValueError(
                "median_window must be an odd number of columns >= 1; got "
                f"{median_window!r}."
            )
        settings["median_window"] = int(median_window)
    return {"extra_modules": modules, "extra_settings": settings}


def folder_event_settings(classifier):
    """The event settings a loaded model folder was exported with.

    Arguments
    ---------
    classifier : speechbrain.inference.interfaces.Pretrained
        A loaded model folder (e.g.
        :class:`~speechbrain_ast.inference.ASTAudioClassifier`).

    Returns
    -------
    thresholds : float or list of float or None
        One for every class or one per class; None where the folder has
        none.
    median_window : int or None
        The median filter length in columns; None where the folder has
        none.

    Example
    -------
    >>> from speechbrain_ast.testing.model_folders import tiny_classifier
    >>> model = tiny_classifier()
    >>> folder_event_settings(model)
    (None, None)
    """
    hparams = getattr(classifier, "hparams", None)
    return (
        getattr(hparams, "thresholds", None),
        getattr(hparams, "median_window", None),
    )
