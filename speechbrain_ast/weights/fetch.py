"""Pretrained weights named as upstream's recipes name them: a local file or
folder, a web address, or a HuggingFace hub id, fetched with SpeechBrain's
:func:`speechbrain.utils.fetching.fetch` (its cache, its symlinks, its
offline switch) and handed to the readers as a local path.

Authors
 * speechbrain-ast developers
"""

import os

from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.fetching import FetchConfig, fetch

__all__ = ["HF_MODEL_FILES", "fetch_pretrained", "network_errors"]

# a transformers AST folder: the weights (the first found), its config and,
# when the repository has it, the feature extractor's statistics
HF_MODEL_FILES = {
    "weights": ("model.safetensors", "pytorch_model.bin"),
    "required": ("config.json",),
    "optional": ("preprocessor_config.json",),
}
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")


def network_errors():
    """The exception types of a failed download (no network, no such file
    on the hub or the server), as a tuple for ``except``.

    Returns
    -------
    tuple of type

    Example
    -------
    >>> ConnectionError in network_errors()
    True
    """
    errors = [OSError, ConnectionError, TimeoutError]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # older huggingface_hub
        pass
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    try:
        import requests

        errors.append(requests.RequestException)
    except ImportError:
        pass
    return tuple(errors)


def fetch_pretrained(source, savedir=None, allow_network=True, name=None):
    """A local path for pretrained weights named by ``source``.

    * an existing file or folder: returned as it is;
    * ``http://`` or ``https://``: the file, downloaded once into
      ``savedir`` (a query such as Dropbox's ``?dl=1`` is not part of the
      saved name);
    * ``owner/name``: a HuggingFace hub repository of a transformers AST
      (e.g. ``MIT/ast-finetuned-audioset-10-10-0.4593``): its
      ``config.json``, weights and ``preprocessor_config.json`` (when it has
      one) linked into ``savedir/owner--name``, which is returned;
    * ``owner/name/path/file.pth``: one file of a hub repository (a
      reference ``.pth`` or an SSAST checkpoint uploaded there).

    Under DDP the main process downloads and the others wait for it.

    Arguments
    ---------
    source : str or path-like
    savedir : str or path-like, optional
        Where fetched files are linked (hub) or saved (web). Default:
        ``<torch hub dir>/speechbrain_ast``.
    allow_network : bool
        False: only what the hub cache or ``savedir`` already holds.
    name : str, optional
        The option that gave ``source`` (``audioset_pretrain``), for the
        error messages.

    Returns
    -------
    str
        The local file or folder.

    Raises
    ------
    FileNotFoundError
        ``source`` looks like a local path (``/``, ``./``, a weights file
        name) that does not exist.
    RuntimeError
        The download failed; the message says how to fetch it by hand.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.pth")
    >>> open(path, "wb").close()
    >>> fetch_pretrained(path) == path
    True
    """
    source = os.fspath(source)
    if os.path.exists(source):
        return source
    if savedir is None:
        import torch

        savedir = os.path.join(torch.hub.get_dir(), "speechbrain_ast")
    config = FetchConfig(allow_network=allow_network)
    if source.startswith(("http://", "https://")):
        base, name = source.split("?")[0].rsplit("/", 1)
        kwargs = dict(
            filename=source[len(base) + 1 :],
            source=base,
            savedir=savedir,
            save_filename=name,
        )
        return str(_fetch(kwargs, config, source))
    parts = source.split("/")
    looks_local = (
        source.startswith((os.sep, ".", "~"))
        or len(parts) < 2
        or not all(parts)
        or (len(parts) == 2 and source.endswith(WEIGHT_SUFFIXES))
    )
    if looks_local:
        what = f"{name}={source!r}" if name else repr(source)
        off = f", or --{name} False" if name else ""
        raise FileNotFoundError(
            f"{what} does not exist: give an existing file or folder, a "
            "https:// address, or a HuggingFace hub id (owner/name, e.g. "
            f"MIT/ast-finetuned-audioset-10-10-0.4593){off}."
        )
    repo = "/".join(parts[:2])
    if len(parts) > 2:
        kwargs = dict(
            filename="/".join(parts[2:]),
            source=repo,
            savedir=os.path.join(savedir, "--".join(parts[:2])),
            save_filename=parts[-1],
        )
        return str(_fetch(kwargs, config, source))
    folder = os.path.join(savedir, "--".join(parts))
    for name in HF_MODEL_FILES["required"]:
        _fetch(dict(filename=name, source=repo, savedir=folder), config, repo)
    for names, required in (
        (HF_MODEL_FILES["weights"], True),
        (HF_MODEL_FILES["optional"], False),
    ):
        errors = []
        for name in names:
            kwargs = dict(filename=name, source=repo, savedir=folder)
            try:
                _fetch(kwargs, config, repo)
                break
            except RuntimeError as err:
                errors.append(err)
        else:
            if required:
                raise RuntimeError(
                    f"{repo}: could not fetch any of {', '.join(names)}; "
                    f"the last error: {errors[-1]}"
                ) from errors[-1]
    return folder


def _fetch(kwargs, config, source):
    """``fetch`` on the main process, then on every process (which finds
    the file the main process saved)."""
    kwargs = dict(kwargs, fetch_config=config)
    try:
        run_on_main(fetch, kwargs=kwargs)
        path = fetch(**kwargs)
    except (*network_errors(), ValueError) as err:  # fetch's 404: ValueError
        raise RuntimeError(
            f"could not fetch {kwargs['filename']} of {source} "
            f"({type(err).__name__}: {err}). Offline? Download it on a "
            "machine with network access and pass its local path instead."
        ) from err
    if not os.path.exists(path):
        raise RuntimeError(
            f"fetching {kwargs['filename']} of {source} left nothing at "
            f"{path}; download it by hand and pass its local path."
        )
    return path
