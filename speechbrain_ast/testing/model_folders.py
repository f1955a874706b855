"""Small model folders of a random AST, for the examples of the code that
loads, scores or exports a model folder.

Authors
 * speechbrain-ast developers
"""

from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model import AST, ASTHead

__all__ = ["tiny_classifier", "tiny_model_folder"]

# AudioSet's statistics, rounded: the folder's (fixed) normalisation
NORM_STATS = (-4.27, 4.57)


def tiny_model_folder(
    folder,
    labels=("dog", "cat", "bird"),
    multi_label=True,
    input_tdim=128,
    embed_dim=64,
):
    """Writes the model folder of a random one-block AST with a head.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder to write (new or empty).
    labels : sequence of str
        The class names; the head has one output each.
    multi_label : bool
        Sigmoid (True) or softmax (False) scores.
    input_tdim : int
        Frames the lobe is built for; the features are padded or cut to
        as many.
    embed_dim : int
        The lobe's width (two attention heads).

    Returns
    -------
    str
        The folder.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tiny_model_folder(os.path.join(tempfile.mkdtemp(), "model"))
    >>> sorted(os.listdir(folder))
    ['classifier.ckpt', 'embedding_model.ckpt', 'hyperparams.yaml', 'label_encoder.txt']
    """
    return export_model_folder(
        folder,
        AST(input_tdim=input_tdim, embed_dim=embed_dim, depth=1, num_heads=2),
        ASTHead(embed_dim, len(labels)),
        list(labels),
        {"target_length": input_tdim},
        NORM_STATS,
        multi_label=multi_label,
    )


def tiny_classifier(**kwargs):
    """A :func:`tiny_model_folder` in a new temporary folder, loaded.

    Arguments
    ---------
    **kwargs
        :func:`tiny_model_folder`'s arguments.

    Returns
    -------
    speechbrain_ast.inference.ASTAudioClassifier

    Example
    -------
    >>> tiny_classifier().labels
    ['dog', 'cat', 'bird']
    """
    import os
    import tempfile

    from speechbrain_ast.inference.classifier import ASTAudioClassifier

    tmp = tempfile.mkdtemp()
    return ASTAudioClassifier.from_hparams(
        source=tiny_model_folder(os.path.join(tmp, "model"), **kwargs),
        savedir=os.path.join(tmp, "saved"),
    )
