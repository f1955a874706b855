"""Kill-and-resume for the recipe tests: start a recipe run, SIGKILL it
once its first intra-epoch checkpoint is written, run it again.

Authors
 * speechbrain-ast developers
"""

import os
import shutil
import signal
import subprocess
import time

import yaml


def kill_after_first_checkpoint(cmd, cwd, env, save_folder, needed):
    """Runs ``cmd`` and SIGKILLs it as soon as a checkpoint folder in
    ``save_folder`` holds every file in ``needed``.

    Arguments
    ---------
    cmd : list of str
    cwd : str
    env : dict
    save_folder : pathlib.Path
    needed : iterable of str
        File names (``CKPT.yaml`` is written last by SafeCheckpointer).

    Returns
    -------
    dict
        The ``CKPT.yaml`` meta of the newest complete checkpoint after the
        kill (the one a restart loads); an AssertionError when the run
        ended, or 240 s passed, without one.
    """
    needed = set(needed)
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline, found = time.time() + 240, False
    try:
        while time.time() < deadline and proc.poll() is None:
            saves = (
                list(save_folder.glob("CKPT+*")) if save_folder.exists() else []
            )
            if any(needed <= {p.name for p in d.iterdir()} for d in saves):
                found = True
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert found, f"no checkpoint with {sorted(needed)} was written"
    metas = []
    for meta_file in save_folder.glob("CKPT+*/CKPT.yaml"):
        with open(meta_file) as f:
            metas.append(yaml.safe_load(f))
    return max(metas, key=lambda meta: meta["unixtime"])


def copy_without(folder, copy, name):
    """Copies a run's output ``folder`` to ``copy`` and deletes ``name``
    from each of its checkpoints (a checkpoint of an older version)."""
    shutil.copytree(folder, copy)
    for path in copy.glob(f"save/CKPT+*/{name}"):
        os.remove(path)
