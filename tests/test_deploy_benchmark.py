"""benchmarks/deploy.py runs end to end on a tiny AST (smoke run).

Authors
 * speechbrain-ast developers
"""

import json

import pytest

for _module in (
    "onnx",
    "onnxscript",
    "onnxruntime",
    "openvino",
    "transformers",
):
    pytest.importorskip(_module, reason=f"the deploy benchmark needs {_module}")

import deploy  # noqa: E402


def test_tiny_run_writes_every_row_with_the_cpu(tmp_path, capsys):
    out = tmp_path / "deploy.json"
    assert (
        deploy.main(
            [
                "--size",
                "tiny",
                "--rounds",
                "1",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert record["size"] == "tiny" and record["rounds"] == 1
    assert record["cpu"]["model_name"]
    assert set(record["cpu"]["flags"]) == set(deploy.FLAGS)
    rows = {row["row"]: row for row in record["rows"]}
    assert len(rows) == 10
    assert rows["transformers fp32 (SDPA)"]["logits_cosine"] == 1.0
    # the same weights in every row: the float32 ones agree closely
    for name in (
        "ours fp32",
        "ONNX Runtime fp32, transformers' export",
        "OpenVINO f32, transformers' export",
        "ONNX Runtime fp32, our export",
        "OpenVINO f32, our export",
    ):
        assert rows[name]["logits_cosine"] > 0.99999, name
    assert rows["ours bf16"]["logits_cosine"] > 0.999
    assert rows["ours int8"]["logits_cosine"] > 0.99
    assert all(
        row["ms"] > 0 and len(row["times_ms"]) == 1 for row in rows.values()
    )
    assert "wrote" in capsys.readouterr().out


def test_bad_rounds_is_a_usage_error():
    with pytest.raises(SystemExit):
        deploy.main(["--rounds", "0"])
