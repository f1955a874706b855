"""Security: no code path unpickles a checkpoint (a malicious pickle must
not run), and random or mutated bytes through the tagging CLI's audio
loading never hang or raise anything but the named ``AudioError``.

Authors
 * speechbrain-ast developers
"""

import json
import os
import pathlib
import pickle
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch
from _reliability_audio import valid_wav_bytes

from speechbrain_ast.convert import main as convert_main
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.weights import (
    build_from_checkpoint,
    load_deit,
    load_weights,
    read_hf_checkpoint,
    read_reference_checkpoint,
)

HERE = os.path.dirname(os.path.abspath(__file__))


class _Payload:
    """Unpickling this creates the marker file (any code could run)."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _evil_state(marker):
    lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2)
    state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    state["module.mlp_head.1.weight"] = torch.zeros(3, 64)
    state["payload"] = _Payload(marker)
    return state


@pytest.fixture
def evil(tmp_path):
    """A torch.save'd checkpoint and a raw pickle carrying the payload."""
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "evil.pth"
    torch.save(_evil_state(marker), ckpt)
    raw = tmp_path / "evil.pkl"
    with open(raw, "wb") as f:
        pickle.dump({"payload": _Payload(marker)}, f)
    return marker, str(ckpt), str(raw)


def test_payload_is_real(evil):
    """The payload does run when unpickled the unsafe way."""
    marker, ckpt, raw = evil
    with open(raw, "rb") as f:
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def _refused(call, marker, match="will not be unpickled"):
    with pytest.raises(ValueError, match=match):
        call()
    assert not marker.exists()


def test_checkpoint_readers_never_unpickle(evil, tmp_path):
    marker, ckpt, raw = evil
    for path in (ckpt, raw):
        _refused(lambda: load_weights(path), marker)
        _refused(lambda: read_reference_checkpoint(path), marker)
        _refused(lambda: build_from_checkpoint(path), marker)
    # a HuggingFace folder with a pickled pytorch_model.bin
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"hidden_size": 64}))
    os.link(ckpt, hf / "pytorch_model.bin")
    _refused(lambda: read_hf_checkpoint(str(hf)), marker)
    # weight averaging of training checkpoints
    from speechbrain.utils.checkpoints import average_checkpoints

    found = [types.SimpleNamespace(paramfiles={"m": ckpt})] * 2
    with pytest.raises(Exception, match="(?i)weights only|unpickl"):
        average_checkpoints(found, "m")
    assert not marker.exists()


def test_convert_cli_never_unpickles(evil, tmp_path, capsys):
    marker, ckpt, _ = evil
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    out = str(tmp_path / "out")
    argv = [ckpt, "--out", out, "--labels", str(labels)]
    assert convert_main(argv + ["--input-tdim", "128"]) == 1
    err = capsys.readouterr().err
    assert "will not be unpickled" in err and ckpt in err
    assert not marker.exists()


def test_load_deit_local_file_never_unpickles(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "deit.pth"
    torch.save(
        {"cls_token": torch.zeros(1, 1, 192), "x": _Payload(marker)}, path
    )
    lobe = AST(input_tdim=128, embed_dim=192, depth=1, num_heads=3)
    with pytest.raises(Exception, match="(?i)weights.only"):
        load_deit(lobe, "deit_tiny_distilled_patch16_224", checkpoint=path)
    assert not marker.exists()


def test_model_folder_never_unpickles(tmp_path, capsys):
    from speechbrain_ast import tag

    marker = tmp_path / "MARKER"
    torch.manual_seed(0)
    folder = export_model_folder(
        str(tmp_path / "model"),
        AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2),
        ASTHead(64, 3),
        ["a", "b", "c"],
        {"target_length": 128},
        (-4.27, 4.57),
        multi_label=False,
    )
    for name in ("embedding_model.ckpt", "classifier.ckpt"):
        path = os.path.join(folder, name)
        state = torch.load(path, weights_only=True)
        state["payload"] = _Payload(marker)
        torch.save(state, path)
        with pytest.raises(ValueError, match="will not be unpickled") as err:
            ASTAudioClassifier.from_hparams(source=folder)
        assert name in str(err.value)
        assert tag.main(["--model", folder, "x.wav"]) == 2
        assert "will not be unpickled" in capsys.readouterr().err
        assert not marker.exists()
        state.pop("payload")
        torch.save(state, path)


# ---------------------------------------------------------------------------
# Fuzzing the tagging CLI's audio loading path
# ---------------------------------------------------------------------------

FUZZ_ITERATIONS = 160
FUZZ_SECONDS = 6.0


def _mutants(gen, seeds):
    """Random bytes, and valid WAV/FLAC files with random byte flips,
    truncations and header field overwrites."""
    kind = gen.integers(4)
    if kind == 0:
        return gen.bytes(int(gen.integers(1, 3000)))
    data = bytearray(seeds[int(gen.integers(len(seeds)))])
    if kind == 1:  # flip bytes, mostly in the header
        for _ in range(int(gen.integers(1, 8))):
            i = int(gen.integers(min(len(data), 64)))
            data[i] = int(gen.integers(256))
    elif kind == 2:  # cut anywhere
        data = data[: int(gen.integers(1, len(data)))]
    else:  # a random 32-bit field in the header (sizes, rates, counts)
        i = int(gen.integers(0, 44 - 4))
        data[i : i + 4] = gen.bytes(4)
        if gen.integers(2):
            data[i : i + 4] = np.uint32(
                gen.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 44101])
            ).tobytes()
    return bytes(data)


def _fuzz_worker(folder, iterations, seconds, seed):
    """Runs in a child process (so a hang or a crash in C code is seen);
    prints a JSON summary."""
    import soundfile as sf

    from speechbrain_ast.data.audio import AudioError, iter_windows, load_audio

    del sf  # imported so that its set-up time is not in the first case
    gen = np.random.default_rng(seed)
    seeds = [
        valid_wav_bytes(0.05, 16000, "PCM_16"),
        valid_wav_bytes(0.05, 44100, "PCM_24"),
        valid_wav_bytes(0.05, 8000, "FLOAT"),
        valid_wav_bytes(0.05, 16000, "PCM_16", fmt="FLAC"),
    ]
    path = os.path.join(folder, "fuzz.wav")
    counts = {"ok": 0, "AudioError": 0}
    slowest = 0.0
    start = time.monotonic()
    done = 0
    while done < iterations and time.monotonic() - start < seconds:
        with open(path, "wb") as f:
            f.write(_mutants(gen, seeds))
        for load in (
            lambda: [load_audio(path)],
            lambda: [w for _, _, w in iter_windows(path, 0.02, 0.01)],
        ):
            t0 = time.monotonic()
            try:
                wavs = load()
            except AudioError as err:
                assert path in str(err), str(err)
                counts["AudioError"] += 1
            else:
                for wav in wavs:
                    assert wav.dtype == torch.float32 and wav.dim() == 1
                    assert torch.isfinite(wav).all()
                counts["ok"] += 1
            slowest = max(slowest, time.monotonic() - t0)
        done += 1
    # the command itself on a few of them: exit status 0 or 1, and every
    # error line is an AudioError's (the CLI writes other exceptions as
    # "error: 'PATH': TypeName: ...")
    import contextlib
    import io

    from speechbrain_ast import tag

    model_dir = _tiny_model_folder(os.path.join(folder, "model"))
    cli = 0
    while cli < 8 and time.monotonic() - start < seconds + 10:
        with open(path, "wb") as f:
            f.write(_mutants(gen, seeds))
        err = io.StringIO()
        quiet = contextlib.redirect_stdout(io.StringIO())
        with contextlib.redirect_stderr(err), quiet:
            status = tag.main(
                ["--model", model_dir, path, "--no-progress"]
                + (["--window", "0.02"] if cli % 2 else [])
            )
        assert status in (0, 1), err.getvalue()
        for line in err.getvalue().splitlines():
            if line.startswith("error:"):
                assert not line.startswith(f"error: {path!r}:"), line
        cli += 1
    print(
        json.dumps(
            {"done": done, "cli": cli, "counts": counts, "slowest": slowest}
        )
    )


def _tiny_model_folder(folder):
    torch.manual_seed(0)
    return export_model_folder(
        folder,
        AST(input_tdim=16, embed_dim=32, depth=1, num_heads=2),
        ASTHead(32, 2),
        ["a", "b"],
        {"target_length": 16},
        (-4.27, 4.57),
        multi_label=True,
    )


def test_fuzz_tag_audio_loading(tmp_path):
    """Bounded: FUZZ_ITERATIONS files or FUZZ_SECONDS, in a child process
    with a hard timeout. Any other exception fails the child."""
    code = (
        # run in this folder: ``python -c`` imports from its working folder
        "import test_reliability_security as t; "
        f"t._fuzz_worker({str(tmp_path)!r}, {FUZZ_ITERATIONS}, "
        f"{FUZZ_SECONDS}, 1234)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 60,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["done"] >= 50, summary
    assert summary["counts"]["AudioError"] > 0, summary
    assert summary["counts"]["ok"] > 0, summary
    assert summary["slowest"] < 5.0, summary
    assert summary["cli"] >= 4, summary
