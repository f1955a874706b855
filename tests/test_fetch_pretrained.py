"""Tests of pretrained weights named by a hub id, a web address or a path.

The hub path runs huggingface_hub's own ``hf_hub_download`` and
SpeechBrain's ``fetch`` for real, offline, on a hub cache this test writes
in huggingface_hub's layout (a web address, through ``fetch`` with its
download pointed at a local folder, is tested in
``test_upstream_integration.py``). The weights come from transformers'
``ASTForAudioClassification.save_pretrained``.

Authors
 * speechbrain-ast developers
"""

import os

import pytest
import torch

from speechbrain_ast.model.lobe import AST
from speechbrain_ast.testing.hub import write_hub_cache
from speechbrain_ast.weights import (
    build_from_checkpoint,
    fetch_pretrained,
    init_from_pretrained,
)

REPO = "MIT/ast-finetuned-audioset-10-10-0.4593"


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=128,
        max_length=128,
        num_labels=3,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf")
    ASTForAudioClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """An offline huggingface_hub whose cache holds what ``add`` puts in."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))

    def add(repo, files):
        write_hub_cache(cache, repo, files)

    return add


def lobe_states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hub_id_fetches_a_transformers_folder(hf_folder, offline_hub, tmp_path):
    offline_hub(
        REPO,
        {
            "config.json": hf_folder / "config.json",
            "model.safetensors": hf_folder / "model.safetensors",
        },
    )
    folder = fetch_pretrained(REPO, tmp_path / "pretrained")
    assert folder == os.path.join(
        tmp_path / "pretrained", REPO.replace("/", "--")
    )
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]
    # a second fetch finds the links and downloads nothing
    assert fetch_pretrained(REPO, tmp_path / "pretrained") == folder
    want, _, _ = build_from_checkpoint(hf_folder, input_tdim=64)
    lobe = AST(input_tdim=64, embed_dim=64, depth=1, num_heads=2, mlp_ratio=2.0)
    loaded = init_from_pretrained(
        lobe, audioset_pretrain=REPO, savedir=tmp_path / "pretrained"
    )
    assert loaded == f"AudioSet checkpoint {folder}; pooling cls"
    assert lobe_states_equal(lobe, want)


def test_hub_id_with_pytorch_bin(hf_folder, offline_hub, tmp_path):
    from safetensors.torch import load_file

    bin_path = tmp_path / "pytorch_model.bin"
    torch.save(load_file(hf_folder / "model.safetensors"), bin_path)
    offline_hub(
        REPO,
        {
            "config.json": hf_folder / "config.json",
            "pytorch_model.bin": bin_path,
        },
    )
    folder = fetch_pretrained(REPO, tmp_path / "pretrained")
    assert sorted(os.listdir(folder)) == ["config.json", "pytorch_model.bin"]
    got, _, _ = build_from_checkpoint(folder)
    want, _, _ = build_from_checkpoint(hf_folder)
    assert lobe_states_equal(got, want)


def test_one_file_of_a_hub_repo(hf_folder, offline_hub, tmp_path):
    offline_hub(
        "someone/ssast", {"weights/model.pth": hf_folder / "config.json"}
    )
    path = fetch_pretrained("someone/ssast/weights/model.pth", tmp_path)
    assert path == os.path.join(tmp_path, "someone--ssast", "model.pth")
    assert open(path).read() == (hf_folder / "config.json").read_text()


def test_hub_id_missing_offline_says_what_to_do(offline_hub, tmp_path):
    with pytest.raises(RuntimeError, match="Offline") as err:
        fetch_pretrained(REPO, tmp_path)
    assert REPO in str(err.value) and "config.json" in str(err.value)
    offline_hub(REPO, {"config.json": __file__})
    with pytest.raises(
        RuntimeError, match="model.safetensors, pytorch_model.bin"
    ):
        fetch_pretrained(REPO, tmp_path)


@pytest.mark.parametrize(
    "name",
    ["audioset_10_10_0.4593.pth", "models/ast.pth", "/no/such/file", "./x/y"],
)
def test_missing_local_path_names_the_option(name):
    with pytest.raises(FileNotFoundError) as err:
        init_from_pretrained(
            AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2),
            audioset_pretrain=name,
        )
    message = str(err.value)
    assert f"audioset_pretrain={name!r} does not exist" in message
    assert "--audioset_pretrain False" in message


def test_local_paths_are_not_fetched(hf_folder):
    assert fetch_pretrained(hf_folder) == os.fspath(hf_folder)


def test_convert_takes_a_hub_id(hf_folder, offline_hub, tmp_path, monkeypatch):
    """``python -m speechbrain_ast.convert OWNER/NAME`` equals converting
    the local folder."""
    import torch.hub

    from speechbrain_ast.convert import convert_checkpoint

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    offline_hub(
        REPO,
        {
            name: hf_folder / name
            for name in ("config.json", "model.safetensors")
        },
    )
    by_id = convert_checkpoint(REPO, tmp_path / "by_id")
    local = convert_checkpoint(hf_folder, tmp_path / "local")
    for name in ("embedding_model.ckpt", "classifier.ckpt"):
        a = torch.load(os.path.join(by_id, name))
        b = torch.load(os.path.join(local, name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert os.path.isdir(
        tmp_path / "torch" / "speechbrain_ast" / REPO.replace("/", "--")
    )
