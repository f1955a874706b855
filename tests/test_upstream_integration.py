"""Tests of the Audio Spectrogram Transformer integration against code it
did not write: torchaudio's Kaldi fbank, SpeechBrain's
``EncoderClassifier`` loading an exported model folder, and the published
weights' formats (the reference ``.pth``, transformers' folders, timm's
DeiT, SSAST encoders) read into the lobe.

``scripts/upstream.py`` writes this file into an upstream SpeechBrain
checkout as ``speechbrain/integrations/tests/``
``test_audio_spectrogram_transformer.py`` (imports renamed); here it tests
the same code under its own name.

Authors
 * speechbrain-ast developers 2026
"""

import pytest
import torch

pytest.importorskip("timm", reason="the integration needs timm")


def test_fbank_equals_torchaudio_kaldi():
    """The batched frontend equals torchaudio's Kaldi fbank clip by clip."""
    import torchaudio

    from speechbrain_ast.features.fbank import (
        TORCHAUDIO_FBANK_KWARGS,
        KaldiFbank,
    )

    torch.manual_seed(0)
    clips = [torch.randn(16000) * 0.1, torch.randn(11000) * 0.3]
    wavs = torch.zeros(2, 16000)
    wavs[1, :11000] = clips[1]
    wavs[0] = clips[0]
    lens = torch.tensor([1.0, 11000 / 16000])
    fbank = KaldiFbank(target_length=None, demean_waveform=False)
    feats = fbank(wavs, lens)
    for i, clip in enumerate(clips):
        ref = torchaudio.compliance.kaldi.fbank(
            clip[None], **TORCHAUDIO_FBANK_KWARGS
        )
        ours = feats[i, : ref.shape[0]]
        assert (ours - ref).abs().max() < 1e-3
    # with autograd (training through the frontend): the same features
    trained = fbank(wavs.clone().requires_grad_(), lens)
    assert (trained - feats).abs().max() < 1e-3
    trained.sum().backward()


def test_lobe_and_head_any_length():
    """The lobe embeds clips of its training length and other lengths."""
    from speechbrain_ast.model.lobe import AST, ASTHead

    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2).eval()
    head = ASTHead(32, 5)
    for frames in (64, 40, 100):
        logits = head(lobe(torch.randn(2, frames, 128)))
        assert logits.shape == (2, 5)
        assert torch.isfinite(logits).all()


def test_model_folder_loads_through_encoder_classifier(tmp_path):
    """An exported folder loads with SpeechBrain's EncoderClassifier and
    gives the lobe's own logits (SpeechBrain's ``out_prob`` is the
    classifier's output)."""
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.inference.model_folder import export_model_folder
    from speechbrain_ast.model.lobe import AST, ASTHead

    torch.manual_seed(0)
    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2).eval()
    head = ASTHead(32, 3).eval()
    folder = export_model_folder(
        str(tmp_path / "model"),
        lobe,
        head,
        ["dog", "rain", "siren"],
        frontend_kwargs={"target_length": 64},
        norm_stats=(-4.27, 4.57),
        multi_label=False,
    )
    model = EncoderClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "cache")
    )
    wav = torch.randn(1, 8000) * 0.1
    out_prob, _, _, labels = model.classify_batch(wav)
    with torch.no_grad():
        feats = KaldiFbank(target_length=64)(wav, torch.ones(1))
        logits = head(lobe(FixedNormalization(-4.27, 4.57)(feats)))
    assert torch.allclose(out_prob.reshape(1, -1), logits, atol=1e-5)
    assert labels[0] in ("dog", "rain", "siren")


def _tiny_lobe(**kwargs):
    from speechbrain_ast.model.lobe import AST

    config = dict(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    config.update(kwargs)
    return AST(**config)


def _same_blocks(a, b):
    return all(
        torch.equal(p, b.state_dict()[k])
        for k, p in a.state_dict().items()
        if k.startswith("blocks.")
    )


def test_reference_checkpoint_initialises_the_backbone(tmp_path):
    """A reference ``.pth`` (``module.v.*`` keys) gives the lobe its
    backbone, the positional embedding adapted to another length."""
    from speechbrain_ast.weights import init_from_pretrained

    torch.manual_seed(0)
    source = _tiny_lobe(input_tdim=1024)  # AudioSet's 10 s, strides 10
    state = {f"module.v.{k}": v for k, v in source.state_dict().items()}
    state["module.mlp_head.0.weight"] = torch.ones(32)
    state["module.mlp_head.0.bias"] = torch.zeros(32)
    state["module.mlp_head.1.weight"] = torch.zeros(5, 32)
    state["module.mlp_head.1.bias"] = torch.zeros(5)
    path = tmp_path / "audioset.pth"
    torch.save(state, path)
    lobe = _tiny_lobe()
    loaded = init_from_pretrained(lobe, audioset_pretrain=str(path))
    assert "pooling cls" in loaded
    assert _same_blocks(source, lobe)
    assert lobe(torch.randn(1, 64, 128)).shape == (1, 32)


def _transformers_folder(folder):
    """A small transformers AST (3 classes, 64 frames) saved in
    ``folder``, as ``save_pretrained`` writes the hub's; the model."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_length=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.ASTForAudioClassification(config).eval()
    model.save_pretrained(folder)
    return model


def test_transformers_folder_gives_the_same_logits(tmp_path):
    """A transformers AST folder (as the hub's
    ``MIT/ast-finetuned-audioset-10-10-0.4593``) gives the lobe and head
    of transformers' own logits."""
    from speechbrain_ast.weights import build_from_checkpoint

    model = _transformers_folder(tmp_path / "hf")
    lobe, head, _ = build_from_checkpoint(str(tmp_path / "hf"))
    feats = torch.randn(1, 64, 128)
    with torch.no_grad():
        ours = head(lobe.eval()(feats))
        theirs = model(feats).logits
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_hub_id_initialises_the_backbone(monkeypatch, tmp_path):
    """A hub id, as the ESC-50 yaml's ``audioset_pretrain``, goes through
    SpeechBrain's fetching (the hub pointed at a local folder here) and
    gives the lobe the checkpoint's backbone at the lobe's own length."""
    import speechbrain.utils.fetching as fetching
    from speechbrain_ast.weights import (
        build_from_checkpoint,
        init_from_pretrained,
    )

    _transformers_folder(tmp_path / "repo")
    asked = []

    def hf_hub_download(repo_id, filename, **kwargs):
        """The hub's download, from the local folder."""
        asked.append(filename)
        path = tmp_path / "repo" / filename
        if not path.exists():
            raise FileNotFoundError(f"{repo_id} has no {filename}")
        return str(path)

    monkeypatch.setattr(
        fetching.huggingface_hub, "hf_hub_download", hf_hub_download
    )
    lobe = _tiny_lobe(input_tdim=48, mlp_ratio=2.0)
    loaded = init_from_pretrained(
        lobe, audioset_pretrain="owner/ast", savedir=str(tmp_path / "saved")
    )
    assert loaded.startswith("AudioSet checkpoint")
    assert loaded.endswith("owner--ast; pooling cls")
    assert asked[:2] == ["config.json", "model.safetensors"]
    source, _, _ = build_from_checkpoint(str(tmp_path / "repo"))
    assert _same_blocks(source, lobe)
    assert lobe(torch.randn(1, 48, 128)).shape == (1, 32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        init_from_pretrained(lobe, audioset_pretrain="./no/such/folder")


def test_ssast_encoder_initialises_the_lobe(tmp_path):
    """An encoder saved after self-supervised pretraining starts a lobe
    of another length; ``pooling: auto`` then takes the patch mean."""
    from speechbrain_ast.weights import init_from_pretrained
    from speechbrain_ast.weights.ssast import save_ssast_encoder

    torch.manual_seed(0)
    patches = dict(patch_size=(128, 2), fstride=128, tstride=2)
    encoder = _tiny_lobe(input_tdim=128, **patches)
    path = tmp_path / "ssast_encoder.pt"
    save_ssast_encoder(encoder, str(path))
    lobe = _tiny_lobe(**patches)
    loaded = init_from_pretrained(lobe, ssl_pretrain=str(path))
    assert "pooling mean" in loaded
    assert _same_blocks(encoder, lobe)


def test_imagenet_deit_initialises_the_lobe(tmp_path):
    """timm's DeiT weights (a local file, as offline machines give them)
    start a lobe when there is no AudioSet checkpoint."""
    import timm

    from speechbrain_ast.weights import init_from_pretrained

    torch.manual_seed(0)
    name = "deit_tiny_distilled_patch16_224"
    deit = timm.create_model(name, pretrained=False, depth=1)
    path = tmp_path / "deit.pth"
    torch.save(deit.state_dict(), path)
    lobe = _tiny_lobe(embed_dim=192, num_heads=3)
    loaded = init_from_pretrained(
        lobe, imagenet_pretrain=name, imagenet_checkpoint=str(path)
    )
    assert loaded.startswith(f"ImageNet {name}")
    assert torch.equal(lobe.cls_token, deit.cls_token)
    assert _same_blocks(deit, lobe)


def test_weights_by_web_address_are_fetched_once(monkeypatch, tmp_path):
    """A web address goes through SpeechBrain's fetching (its download
    pointed at a local folder here) into ``savedir``, once."""
    import speechbrain.utils.fetching as fetching
    from speechbrain_ast.weights.fetch import fetch_pretrained

    served = tmp_path / "server"
    served.mkdir()
    (served / "audioset_10_10_0.4593.pth").write_bytes(b"weights")
    asked = []

    def download_file(source, url, destination):
        """SpeechBrain's download, from the local folder."""
        asked.append(url)
        name = url.split("/")[-1].split("?")[0]
        (tmp_path / destination).write_bytes((served / name).read_bytes())

    monkeypatch.setattr(fetching, "download_file", download_file)
    url = "https://example.org/weights/audioset_10_10_0.4593.pth?dl=1"
    for _ in range(2):
        path = fetch_pretrained(url, tmp_path / "saved")
    assert open(path, "rb").read() == b"weights"
    assert asked == [url]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fetch_pretrained("./no/such/weights.pth", name="audioset_pretrain")


def test_safe_checkpointer_loads_the_last_good_checkpoint(tmp_path):
    """A damaged newest checkpoint is named in a warning and the one
    before it is loaded."""
    from speechbrain_ast.training.checkpoint import SafeCheckpointer

    saver = SafeCheckpointer(tmp_path, {"model": torch.nn.Linear(3, 2)})
    saver.save_checkpoint(meta={"n": 1})
    newest = saver.save_checkpoint(meta={"n": 2})
    (newest.path / "model.ckpt").write_bytes(b"")
    loader = SafeCheckpointer(tmp_path, {"model": torch.nn.Linear(3, 2)})
    with pytest.warns(UserWarning, match="model.ckpt is empty"):
        found = loader.recover_if_possible()
    assert found.meta["n"] == 1
