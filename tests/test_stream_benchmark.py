"""Smoke test of benchmarks/stream.py on a tiny model folder: a short
generated stream tagged as fast as possible and at real time, with every
measurement in the JSON.

Authors
 * speechbrain-ast developers
"""

import json

import numpy as np
import pytest
import stream

from speechbrain_ast.testing.model_folders import tiny_model_folder


def test_quick_run_writes_every_measurement(tmp_path):
    folder = tiny_model_folder(str(tmp_path / "model"), embed_dim=32)
    out = tmp_path / "stream.json"
    argv = ["--quick", "--model", folder, "--threshold", "0.5"]
    assert stream.main(argv + ["--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["machine"]["cpu_flags"] is not None
    assert results["window_s"] == pytest.approx(1.28)
    for name in ("fast", "realtime"):
        run = results[name]
        assert run["sounds"] >= 1 and 0 <= run["detected"] <= 1
        assert run["cpu_s_per_audio_s"] > 0
        assert run["rss_mb"]["peak"] >= run["rss_mb"]["first"] > 0
        latency = run["latency_stream_s"]
        if run["detected"]:
            assert latency["median"] <= latency["p95"]
    assert results["fast"]["audio_s"] == pytest.approx(12.0, abs=0.01)
    assert results["realtime"]["wall_s"] >= 4.0  # paced
    assert "latency_wall_s" in results["realtime"]


def test_generated_stream_holds_its_sounds_at_their_onsets():
    rate = 8000
    clip = np.concatenate([np.zeros(800), np.full(8000, 0.5)])
    scape = stream.Soundscape([clip], 30.0, rate, 5.0, 0.5, -80.0, seed=1)
    wav = np.concatenate(list(scape.blocks()))
    assert len(wav) == 30 * rate
    for onset, piece in scape.sounds:
        # the sound starts where the clip becomes audible
        assert np.allclose(wav[onset : onset + len(piece)], 0.5, atol=1e-3)
        assert abs(wav[onset - 1]) < 1e-3


def test_bad_arguments_are_usage_errors(tmp_path):
    folder = str(tmp_path)
    for argv in (
        ["--model", folder + "/none"],
        ["--model", folder, "--hop", "0"],
    ):
        with pytest.raises(SystemExit) as err:
            stream.main(argv)
        assert err.value.code == 2
