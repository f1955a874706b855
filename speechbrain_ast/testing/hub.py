"""A HuggingFace hub cache written offline, in huggingface_hub's layout, so
that ``hf_hub_download`` (and SpeechBrain's ``fetch`` over it) finds a
repository's files without network: the tests of weights named by hub id.

Authors
 * speechbrain-ast developers
"""

import os
import shutil

__all__ = ["write_hub_cache"]

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache, repo, files):
    """Puts ``files`` into the hub cache ``cache`` as ``repo``'s ``main``.

    Arguments
    ---------
    cache : str or path-like
        The hub cache folder (``HF_HUB_CACHE``).
    repo : str
        ``owner/name``.
    files : dict
        Name in the repository (may contain ``/``) -> local file to copy.

    Returns
    -------
    str
        The snapshot folder.

    Example
    -------
    >>> import tempfile
    >>> cache = tempfile.mkdtemp()
    >>> snapshot = write_hub_cache(cache, "owner/name", {"a.txt": __file__})
    >>> sorted(os.listdir(snapshot))
    ['a.txt']
    """
    repo_dir = os.path.join(cache, "models--" + repo.replace("/", "--"))
    snapshot = os.path.join(repo_dir, "snapshots", COMMIT)
    os.makedirs(os.path.join(repo_dir, "refs"), exist_ok=True)
    with open(os.path.join(repo_dir, "refs", "main"), "w") as f:
        f.write(COMMIT)
    for name, path in files.items():
        target = os.path.join(snapshot, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(path, target)
    return snapshot
