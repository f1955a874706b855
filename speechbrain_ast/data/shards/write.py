"""Writing a split's clips into WebDataset tar shards, and checking them.

Writing (:func:`write_shards`) is deterministic (clips in manifest order,
members sorted, mtime 0, uid/gid 0, no user names: the same clips give
byte-identical shards), parallel over shards, and resumable: a shard is
written under a temporary name and renamed when complete; a rerun verifies
the complete shards it finds (:func:`verify_shard`) and writes only the
others. Each shard's tar is written by ``webdataset.TarWriter``; the
parallel, atomic and resumable writing around it is ours because
``webdataset.ShardWriter`` writes one shard after the other, in place.

Authors
 * speechbrain-ast developers
"""

import csv
import glob
import hashlib
import json
import multiprocessing
import os
import tarfile

from webdataset import TarWriter

from speechbrain.utils.logger import get_logger
from speechbrain_ast.data.shards.read import (
    CLIPS_FILE,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    clip_key,
    read_shard,
    shard_name,
)

__all__ = ["verify_shard", "write_shard", "write_shards"]

logger = get_logger(__name__)

_TMP = ".tmp"


def _meta_bytes(meta):
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def _audio_ext(path):
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if not ext or ext == "json":
        raise ValueError(
            f"{path!r}: an audio file needs an extension other than .json "
            "(e.g. .flac, .wav): it names the member in the shard."
        )
    return ext


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_meta(clip):
    return {
        "id": clip["ID"],
        "labels": list(clip["labels"]),
        "duration": clip.get("duration"),
    }


def _record(path, first, count):
    """The index entry of a complete shard."""
    return {
        "name": os.path.basename(path),
        "first": first,
        "clips": count,
        "bytes": os.path.getsize(path),
        "sha256": _file_sha256(path),
    }


def write_shard(path, clips, first):
    """Writes one shard, atomically (temporary name, then rename).

    Arguments
    ---------
    path : str
        The shard to write.
    clips : list of dict
        ``ID``, ``wav`` (the audio file), ``labels`` (list of str) and
        optionally ``duration``, in the order they go into the shard.
    first : int
        Position of the first clip in the split (its key).

    Returns
    -------
    dict
        ``name``, ``first``, ``clips``, ``bytes``, ``sha256`` of the shard.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.flac", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.flac", "labels": ["/m/x"]}
    >>> write_shard(tmp + "/" + shard_name(0), [clip], first=0)["clips"]
    1
    """
    tmp = f"{path}{_TMP}{os.getpid()}"
    with open(tmp, "wb") as f:
        # bytes in, no encoding; fixed owner, mode and time: reproducible
        with TarWriter(
            f, user="", group="", mode=0o644, encoder=False, mtime=0
        ) as tar:
            for n, clip in enumerate(clips):
                with open(clip["wav"], "rb") as audio_file:
                    audio = audio_file.read()
                meta = _expected_meta(clip)
                meta["sha256"] = hashlib.sha256(audio).hexdigest()
                tar.write(
                    {
                        "__key__": clip_key(first + n),
                        _audio_ext(clip["wav"]): audio,
                        "json": _meta_bytes(meta),
                    }
                )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return _record(path, first, len(clips))


def verify_shard(path, clips, first):
    """Checks that a shard holds exactly these clips, undamaged.

    Every member is read back: keys in order, metadata equal to the
    clips', each audio member's sha256 equal to the one recorded next to
    it, and its size equal to the source file's.

    Arguments
    ---------
    path, clips, first
        As for :func:`write_shard`.

    Returns
    -------
    str or None
        None when the shard is good, else what is wrong with it.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.wav", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.wav", "labels": ["/m/x"]}
    >>> _ = write_shard(tmp + "/s.tar", [clip], first=0)
    >>> verify_shard(tmp + "/s.tar", [clip], first=0) is None
    True
    >>> verify_shard(tmp + "/s.tar", [dict(clip, ID="b")], first=0)
    "clip 000000000: metadata {'duration': None, 'id': 'a', ..."
    """
    try:
        samples = list(read_shard(path))
    except (tarfile.TarError, OSError, ValueError) as err:
        return f"not a readable tar file ({err})"
    if len(samples) != len(clips):
        return f"{len(samples)} clips, expected {len(clips)}"
    for n, (sample, clip) in enumerate(zip(samples, clips)):
        key = clip_key(first + n)
        ext = _audio_ext(clip["wav"])
        if sample["__key__"] != key or set(sample) != {"__key__", "json", ext}:
            return f"clip {n}: members {sorted(sample)}, expected {key}.{ext}"
        meta = dict(sample["json"])
        sha = meta.pop("sha256", None)
        if meta != _expected_meta(clip):
            return (
                f"clip {key}: metadata {meta}, expected {_expected_meta(clip)}"
            )
        if hashlib.sha256(sample[ext]).hexdigest() != sha:
            return f"clip {key}: audio bytes do not match their sha256"
        if len(sample[ext]) != os.path.getsize(clip["wav"]):
            return f"clip {key}: audio size differs from {clip['wav']}"
    return None


def _write_or_verify(job):
    """One shard of :func:`write_shards` (runs in a worker process)."""
    path, clips, first = job
    if os.path.isfile(path):
        problem = verify_shard(path, clips, first)
        if problem is None:
            return _record(path, first, len(clips)), "verified"
        logger.warning("Rewriting %s: %s", path, problem)
    return write_shard(path, clips, first), "written"


def _write_clip_list(clips, path, shard_size):
    """``clips.csv``: position, ID, labels, duration, shard of each clip."""
    with open(path + _TMP, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["position", "ID", "labels", "duration", "shard"])
        for position, clip in enumerate(clips):
            writer.writerow(
                [
                    position,
                    clip["ID"],
                    ",".join(clip["labels"]),
                    clip.get("duration", ""),
                    shard_name(position // shard_size),
                ]
            )
    os.replace(path + _TMP, path)


def write_shards(clips, save_folder, shard_size=1000, workers=1, split=None):
    """Writes a split's clips into shards, with ``index.json`` and
    ``clips.csv``; resumable and deterministic.

    Clip ``n`` goes into shard ``n // shard_size``. Shards are written in
    parallel (one process per shard at a time), each under a temporary
    name renamed when complete; temporary files left by a killed run are
    removed, complete shards found are verified (:func:`verify_shard`) and
    kept, damaged ones rewritten. The index is written last (atomically):
    its presence means the split is complete.

    Arguments
    ---------
    clips : list of dict
        ``ID``, ``wav``, ``labels`` (list of str), ``duration`` per clip,
        in the order they are stored (their positions).
    save_folder : str
        The split's shard folder (created).
    shard_size : int
        Clips per shard (the last one may hold fewer).
    workers : int
        Processes writing shards.
    split : str, optional
        Recorded in the index.

    Returns
    -------
    dict
        The index: ``num_clips``, ``shard_size``, ``shards`` (``name``,
        ``first``, ``clips``, ``bytes``, ``sha256`` each), and counts of
        shards ``written`` and ``verified`` in this call.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> clips = []
    >>> for i in range(5):
    ...     sf.write(f"{tmp}/{i}.flac", np.zeros(800 + i), 16000)
    ...     clips.append({"ID": str(i), "wav": f"{tmp}/{i}.flac", "labels": []})
    >>> index = write_shards(clips, tmp + "/shards", shard_size=2)
    >>> [s["clips"] for s in index["shards"]], index["num_clips"]
    ([2, 2, 1], 5)
    >>> write_shards(clips, tmp + "/shards", shard_size=2)["verified"]
    3
    """
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size!r}")
    if not clips:
        raise ValueError(f"No clips to write into {save_folder}.")
    ids = [clip["ID"] for clip in clips]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"Clip IDs must be unique; repeated: {dupes}")
    os.makedirs(save_folder, exist_ok=True)
    for stale in glob.glob(os.path.join(save_folder, f"shard-*.tar{_TMP}*")):
        os.remove(stale)
    index_path = os.path.join(save_folder, INDEX_FILE)
    if os.path.exists(index_path):
        os.remove(index_path)  # rewritten last, when every shard is good
    jobs = []
    for number, first in enumerate(range(0, len(clips), shard_size)):
        path = os.path.join(save_folder, shard_name(number))
        jobs.append((path, clips[first : first + shard_size], first))
    planned = {os.path.basename(job[0]) for job in jobs}
    for extra in glob.glob(os.path.join(save_folder, "shard-*.tar")):
        if os.path.basename(extra) not in planned:
            logger.info("Removing %s (not part of this split)", extra)
            os.remove(extra)
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        results = [_write_or_verify(job) for job in jobs]
    else:
        with multiprocessing.get_context().Pool(workers) as pool:
            results = pool.map(_write_or_verify, jobs, chunksize=1)
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "split": split,
        "shard_size": int(shard_size),
        "num_clips": len(clips),
        "shards": [record for record, _ in results],
    }
    _write_clip_list(
        clips, os.path.join(save_folder, CLIPS_FILE), int(shard_size)
    )
    with open(index_path + _TMP, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(index_path + _TMP, index_path)
    done = [what for _, what in results]
    return dict(
        index,
        written=done.count("written"),
        verified=done.count("verified"),
    )
