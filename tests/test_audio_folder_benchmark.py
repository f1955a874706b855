"""Smoke test of benchmarks/audio_folder.py on the project's real FSDD
clips: the folder recipe from scratch and from an SSAST encoder pretrained
on the training split's audio, on the same speaker split, with the curves.

Authors
 * speechbrain-ast developers
"""

import json

import audio_folder
from test_real_learning import fsdd_recordings


def test_quick_run_scratch_and_ssast_on_one_split(tmp_path):
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    out = tmp_path / "folder.json"
    audio_folder.main(
        [
            "--quick", "--skip", "speech_commands,sounds",
            "--recordings", recordings,
            "--out", str(out), "--plot", str(tmp_path / "curves.png"),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    results = json.loads(out.read_text())
    for name in ("folder", "ssast", "ssast_small_settings"):
        assert len(results[name]["valid_curve"]) == 2, name
        assert 0.0 <= results[name]["test_acc"] <= 1.0, name
    assert len(results["ssast"]["pretrain"]["pretext_valid_acc"]) == 1
    # the fine-tuning took the encoder's shape and the reference's strides
    chosen = results["ssast"]["chosen"]
    assert (chosen["embed_dim"], chosen["tstride"]) == (32, 1)
    small = results["ssast_small_settings"]
    assert small["encoder"] == results["ssast"]["encoder"]
    assert small["chosen"]["embed_dim"] == 32
    assert "speech_commands" not in results or not results["speech_commands"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
