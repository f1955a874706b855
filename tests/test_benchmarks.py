"""The benchmark script runs end to end on a tiny model (the figures in
docs/benchmarks.md come from the same code on AST-Base), writes its JSON,
and --update replaces only the sections it reran."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run.py"


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _today():
    return time.strftime("%Y-%m-%d")


def test_json_then_update_one_section(tmp_path):
    path = tmp_path / "bench.json"
    day = _today()
    first = run("--only", "frontend,native", "--json", str(path))
    assert first.returncode == 0, first.stderr
    assert "### 6. Frontend" in first.stdout
    saved = json.loads(path.read_text())
    assert set(saved["results"]) == {"frontend", "native"}
    # the day of the run (either side of a midnight during it)
    assert set(saved["dates"]) == {"frontend", "native"}
    assert set(saved["dates"].values()) <= {day, _today()}
    frontend = saved["results"]["frontend"]
    # equal output: every bin within 60 dB of its frame's peak
    assert frontend["max_abs_diff_within_60db"] < 1e-3
    assert float(frontend["rows"][0]["speed-up vs loop"]) > 0
    native = saved["results"]["native"]

    second = run("--only", "frontend", "--update", str(path))
    assert second.returncode == 0, second.stderr
    updated = json.loads(path.read_text())
    assert updated["results"]["native"] == native
    assert updated["runs"]["frontend"].endswith(f"--update {path}")
    assert "native" not in updated["runs"]
    assert updated["dates"]["native"] == saved["dates"]["native"]
    assert updated["dates"]["frontend"] in {day, _today()}
    assert updated["machine"] == saved["machine"]

    png = tmp_path / "bench.png"
    drawn = run("--update", str(path), "--plot", str(png), "--plot-only")
    assert drawn.returncode == 0, drawn.stderr
    assert "nothing measured" in drawn.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(path.read_text()) == updated


def test_compiled_training_step_section(tmp_path):
    """--compile runs the training-step section with both models through
    torch.compile (tiny model, CPU) and says so in the table's title."""
    path = tmp_path / "bench.json"
    result = run("--only", "train", "--compile", "--json", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "### 4. Training step (Adam, cross-entropy, fp32, cpu, compiled)"
        in (result.stdout)
    )
    rows = json.loads(path.read_text())["results"]["train"]["rows"]
    assert float(rows[0]["ms/step"]) > 0 and float(rows[1]["ms/step"]) > 0


def test_update_keeps_cpu_and_gpu_files_apart(tmp_path):
    """A CPU run refuses to --update a file of GPU results (the sections
    keep their names on either device, so they would be replaced)."""
    gpu_file = tmp_path / "gpu.json"
    gpu_file.write_text(json.dumps({"machine": {"gpu": "H100"}, "results": {}}))
    result = run("--only", "frontend", "--update", str(gpu_file))
    assert result.returncode == 2
    assert "holds GPU results and this run is on cpu" in result.stderr
    assert "write a separate file with --json" in result.stderr


def test_compile_variants_are_separate_graphs(monkeypatch):
    """The compile section's default and frozen lobes are two compiled
    graphs, the frozen one built with inductor's freezing and the default
    one without: neither reuses the other's (plain torch.compile twice
    would share one graph whatever the config)."""
    import torch
    import torch._inductor.freezing as freezing
    from sections.compiled import compile_variants
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    from torch._dynamo.utils import counters

    from speechbrain_ast.model.lobe import AST

    frozen_builds = []
    freeze = freezing.freeze
    monkeypatch.setattr(
        freezing,
        "freeze",
        lambda *a, **k: frozen_builds.append(1) or freeze(*a, **k),
    )
    torch._dynamo.reset()
    counters.clear()
    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2).eval()
    feats = torch.randn(1, 64, 128)
    compiled, _ = compile_variants(lobe, feats)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0 and graphs % 2 == 0 and frozen_builds
    # one cache entry per variant for the lobe's forward, each with its own
    # backend (a shared or discarded graph leaves one)
    entries = _debug_get_cache_entry_list(AST.forward.__code__)
    assert len(entries) == 2
    assert entries[0].backend is not entries[1].backend
    with torch.inference_mode():
        want = lobe(feats)
        for name in ("default", "frozen", "default"):
            got = compiled[name](feats)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # no rebuild, no graph taken over: each variant kept its own
    assert counters["stats"]["unique_graphs"] == graphs
    assert len(frozen_builds) == graphs // 2
    torch._dynamo.reset()


def test_plot_only_needs_a_file_and_a_plot(tmp_path):
    result = run("--plot-only", "--plot", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "--plot-only needs --update FILE and --plot PNG" in result.stderr


def test_update_needs_an_existing_file(tmp_path):
    missing = tmp_path / "none.json"
    result = run("--only", "frontend", "--update", str(missing))
    assert result.returncode == 2
    assert f"--update {missing}: no such file" in result.stderr


def test_update_refuses_a_file_it_did_not_write(tmp_path):
    """Checked before measuring, so a bad file costs no run."""
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    result = run("--only", "frontend", "--update", str(corrupt))
    assert result.returncode == 2
    assert f"--update {corrupt}: cannot be read" in result.stderr
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    result = run("--only", "frontend", "--update", str(other))
    assert result.returncode == 2
    assert "not a results file written by --json" in result.stderr
    assert other.read_text() == "[1, 2]"


def _parse_args():
    """The script's argument parser, loaded in this process."""
    from run import parse_args

    return parse_args


def test_gpu_inference_section_runs_on_cpu(monkeypatch):
    """The GPU inference section's code runs on the CPU (tiny model, the
    8192^3 matmul roof stubbed, bf16 autocast as on a GPU), so that its
    Python, autocast and table are exercised on a machine without a GPU;
    its figures have not been measured on a GPU yet."""
    from sections import latency
    from sections.common import Bench

    monkeypatch.setattr(latency, "matmul_gflops", lambda *a, **k: 1.0)
    bench = Bench(_parse_args()(["--tiny", "--quick", "--dtype", "bf16"]))
    latency.bench_latency_gpu(bench)
    rows = bench.results["latency_gpu"]["rows"]
    assert [row["batch"] for row in rows] == [1, 8, 32]
    for row in rows:
        assert float(row["ours clips/s"]) > 0
        assert float(row["transformers clips/s"]) > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--train-batch", "0"], "--train-batch must be positive, got 0"),
        (["--peak-tflops", "-1"], "--peak-tflops must be positive"),
        (["--durations-b8", "x"], "--durations-b8 'x': give some of 1, 5, 10"),
        (["--durations-b8", "3"], "--durations-b8 '3': give some of 1, 5, 10"),
        (["--durations-b8", ""], "--durations-b8 '': give some of 1, 5, 10"),
    ],
)
def test_bad_options_are_usage_errors(args, message, capsys):
    """A value the script cannot use stops it before any measurement, with
    the option and the accepted values named (a batch-8 length outside the
    latency table would otherwise be skipped silently)."""
    parse_args = _parse_args()
    with pytest.raises(SystemExit) as stop:
        parse_args(args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_durations_b8_parsed():
    parse_args = _parse_args()
    assert parse_args(["--durations-b8", "10,1"]).durations_b8 == [1.0, 10.0]
    assert parse_args([]).durations_b8 == [1.0, 5.0, 10.0]


def test_before_after_bad_revision_is_a_usage_error(capsys):
    """benchmarks/before_after.py names a revision git cannot show, before
    building any model."""
    import before_after

    for args, message in (
        (["--rev", "no-such-revision"], "git cannot show"),
        (["--rev", "HEAD", "--threads", "0"], "--threads must be at least 1"),
    ):
        with pytest.raises(SystemExit) as stop:
            before_after.main(args)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


def test_update_records_each_section_s_date(tmp_path):
    """--update keeps the other sections' dates and gives a file written
    before dates were recorded a ``dates`` entry for the rerun section."""
    from run import update_results

    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"results": {"a": 1, "b": 2}, "runs": {}}))
    update_results(str(path), {"a": 3}, "cmd one", date="2026-01-02")
    update_results(str(path), {"b": 4}, "cmd two", date="2026-02-03")
    saved = json.loads(path.read_text())
    assert saved["results"] == {"a": 3, "b": 4}
    assert saved["runs"] == {"a": "cmd one", "b": "cmd two"}
    assert saved["dates"] == {"a": "2026-01-02", "b": "2026-02-03"}
    update_results(str(path), {"a": 5}, "cmd three")
    assert json.loads(path.read_text())["dates"]["a"] == _today()
