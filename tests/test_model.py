"""Tests of the AST lobe and head: shapes, sizes, lengths, errors.

Authors
 * speechbrain-ast developers
"""

import pytest
import timm
import torch

from speechbrain_ast.model.layers import patch_grid
from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.model.pos_embed import adapt_pos_embed

TINY = dict(embed_dim=64, depth=2, num_heads=2)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def tiny_1024():
    torch.manual_seed(0)
    return AST(input_tdim=1024, **TINY).eval()


@pytest.mark.parametrize(
    "frames, grid", [(1024, (12, 101)), (512, (12, 50)), (128, (12, 12))]
)
def test_shapes(tiny_1024, frames, grid):
    x = torch.randn(2, frames, 128)
    assert tiny_1024.grid(frames) == grid
    with torch.no_grad():
        tokens, hidden = tiny_1024.forward_features(x, True)
        pooled = tiny_1024(x)
        frames_out = tiny_1024.forward_frames(x)
    assert tokens.shape == (2, 2 + grid[0] * grid[1], 64)
    assert pooled.shape == (2, 64)
    assert frames_out.shape == (2, grid[1], 64)
    assert len(hidden) == TINY["depth"]
    assert all(h.shape == tokens.shape for h in hidden)
    # pooled = mean of [CLS] and [DIST] after the final norm
    torch.testing.assert_close(pooled, (tokens[:, 0] + tokens[:, 1]) / 2)
    torch.testing.assert_close(tokens, tiny_1024.norm(hidden[-1]))
    # frame outputs: patch tokens, frequency-major, averaged over frequency
    patches = tokens[:, 2:].reshape(2, grid[0], grid[1], 64)
    torch.testing.assert_close(frames_out, patches.mean(1))


def test_built_grid(tiny_1024):
    assert tiny_1024.patch_grid == (12, 101)
    assert tiny_1024.num_patches == 1212
    assert tiny_1024.pos_embed.shape == (1, 1214, 64)
    assert patch_grid(128, 1024, 16, 16, 16) == (8, 64)


def test_ast_base_size_and_timm_names():
    torch.manual_seed(0)
    lobe = AST()
    head = ASTHead(768, 527)
    total = n_params(lobe) + n_params(head)
    # ~86.6M without the ImageNet heads (REFERENCE.md "Model")
    assert abs(total - 86.6e6) / 86.6e6 < 0.005, total
    # every tensor has timm DeiT-B's name and shape, except the ones AST
    # changes on purpose (1 input channel, 12 x 101 positions) and the
    # ImageNet heads it drops
    with torch.device("meta"):
        deit = timm.create_model("deit_base_distilled_patch16_384")
    ours = {k: tuple(v.shape) for k, v in lobe.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in deit.state_dict().items()}
    for key in ("head.weight", "head.bias", "head_dist.weight"):
        theirs.pop(key)
    theirs.pop("head_dist.bias")
    assert ours.keys() == theirs.keys()
    differ = {k for k in ours if ours[k] != theirs[k]}
    assert differ == {"pos_embed", "patch_embed.proj.weight"}
    assert ours["pos_embed"] == (1, 1214, 768)
    assert ours["patch_embed.proj.weight"] == (768, 1, 16, 16)
    assert lobe.norm.eps == 1e-6 and lobe.blocks[0].norm1.eps == 1e-6
    assert head[0].eps == 1e-5


def test_init_like_timm():
    torch.manual_seed(0)
    model = AST(input_tdim=1024, embed_dim=128, depth=2, num_heads=2)
    # timm's trunc_normal_(std=.02): bounds at +-2 (absolute), i.e. normal
    for param in (model.cls_token, model.dist_token):
        assert 0.01 < param.std() < 0.03
    assert 0.018 < model.pos_embed.std() < 0.022
    qkv = model.blocks[0].attn.qkv
    assert 0.018 < qkv.weight.std() < 0.022
    assert torch.count_nonzero(qkv.bias) == 0


def test_non_square_patches():
    model = AST(
        input_tdim=256, patch_size=(128, 2), fstride=128, tstride=2, **TINY
    )
    assert model.patch_grid == (1, 128)
    assert model.patch_embed.proj.weight.shape == (64, 1, 128, 2)
    with torch.no_grad():
        assert model(torch.randn(2, 256, 128)).shape == (2, 64)
        assert model.forward_frames(torch.randn(1, 100, 128)).shape == (
            1,
            50,
            64,
        )


def test_patch_embedding_layout():
    # frequency is the conv's height, time its width, flattening f-major
    model = AST(input_tdim=64, **TINY)
    x = torch.randn(1, 64, 128)
    got = model.patch_embed(x)
    conv = model.patch_embed.proj
    f, t = 3, 2  # one patch, by hand
    window = x[0, t * 10 : t * 10 + 16, f * 10 : f * 10 + 16].T
    want = (conv.weight[:, 0] * window).sum((1, 2)) + conv.bias
    t_dim = model.patch_grid[1]
    torch.testing.assert_close(got[0, f * t_dim + t], want)


def test_other_length_equals_model_built_for_it(tiny_1024):
    small = AST(input_tdim=128, **TINY).eval()
    state = dict(tiny_1024.state_dict())
    pos = state["pos_embed"]
    state["pos_embed"] = torch.cat(
        [pos[:, :2], adapt_pos_embed(pos[:, 2:], (12, 101), (12, 12))], 1
    )
    small.load_state_dict(state)
    x = torch.randn(2, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(tiny_1024(x), small(x))
        # a longer input interpolates instead
        assert tiny_1024(torch.randn(1, 2000, 128)).shape == (1, 64)


def test_short_input_is_zero_padded(tiny_1024):
    x = torch.randn(2, 5, 128)
    padded = torch.cat([x, torch.zeros(2, 11, 128)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(tiny_1024(x), tiny_1024(padded))
        assert tiny_1024.forward_frames(x).shape == (2, 1, 64)
    assert tiny_1024.grid(5) == (12, 1)


def test_lengths_unused(tiny_1024):
    x = torch.randn(2, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            tiny_1024(x), tiny_1024(x, torch.tensor([1.0, 0.5]))
        )


def test_gradients_reach_every_parameter():
    model = AST(input_tdim=256, **TINY)
    # another length: the gradient goes through the adapted embedding
    model(torch.randn(2, 100, 128)).pow(2).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_inplace_gelu_changes_nothing_but_memory():
    """The blocks' GELU overwrites the MLP's hidden activations only when no
    gradient is needed: outputs and gradients equal those of the same lobe
    with ``nn.GELU``, and an input that needs a gradient is left as is."""
    import copy

    from speechbrain_ast.model.layers import InplaceGELU

    torch.manual_seed(0)
    lobe = AST(input_tdim=128, **TINY)
    plain = copy.deepcopy(lobe)
    for block in plain.blocks:
        assert type(block.mlp.act) is InplaceGELU
        block.mlp.act = torch.nn.GELU()
    lobe.eval(), plain.eval()
    x = torch.randn(2, 128, 128)
    with torch.inference_mode():
        assert torch.equal(lobe(x), plain(x))
    with torch.no_grad():
        assert torch.equal(lobe.forward_frames(x), plain.forward_frames(x))
    grads = []
    for model in (lobe, plain):
        xg = x.clone().requires_grad_(True)
        model(xg).square().sum().backward()
        grads.append(xg.grad)
    assert torch.equal(grads[0], grads[1])
    hidden = torch.randn(4, requires_grad=True)
    before = hidden.detach().clone()
    out = InplaceGELU()(hidden)
    assert torch.equal(hidden.detach(), before) and out.requires_grad


def test_drop_path_and_dropout():
    model = AST(input_tdim=128, drop_path_rate=0.2, drop_rate=0.1, **TINY)
    # stochastic depth grows linearly over the blocks, as in timm
    assert isinstance(model.blocks[0].drop_path1, torch.nn.Identity)
    assert model.blocks[1].drop_path1.drop_prob == pytest.approx(0.2)
    x = torch.randn(4, 128, 128)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.randn(128, 128), r"\[batch, time, 128\]; received \(128, 128"),
        (torch.randn(2, 100, 64), r"\[batch, time, 128\]; received \(2, 100"),
        (torch.randn(2, 0, 128), r"received \(2, 0, 128\)"),
        (torch.randn(0, 100, 128), r"received \(0, 100, 128\)"),
        (torch.full((1, 100, 128), float("nan")), "NaN or Inf"),
        (torch.full((1, 100, 128), float("inf")), "NaN or Inf"),
    ],
)
def test_input_errors(tiny_1024, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_1024(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_fdim=10), "16 bins high.*input_fdim=10"),
        (dict(patch_size=(256, 2)), "256 bins high"),
        (dict(input_tdim=8), "16 frames wide"),
        (dict(fstride=0), "fstride and tstride must be positive"),
        (dict(tstride=-1), "fstride and tstride must be positive"),
        (dict(embed_dim=64, num_heads=3), "not divisible by num_heads=3"),
        (dict(patch_size=(1, 2, 3)), "patch_size"),
    ],
)
def test_construction_errors(kwargs, match):
    config = dict(TINY, input_tdim=128)
    config.update(kwargs)
    with pytest.raises(ValueError, match=match):
        AST(**config)


def test_head():
    head = ASTHead(64, 7, norm_eps=1e-12)
    assert [k for k in head.state_dict()] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    assert head[0].eps == 1e-12
    assert head(torch.randn(3, 64)).shape == (3, 7)
    with pytest.raises(ValueError, match="n_classes=0"):
        ASTHead(64, 0)


def test_mean_pooling_is_the_mean_of_the_patch_tokens():
    """pooling="mean" (SSAST's ft_avgtok): the embedding is the mean of the
    patch tokens after the final norm; "cls" the mean of [CLS] and [DIST];
    the model folder and the ONNX graph carry it through the config."""
    torch.manual_seed(0)
    lobe = AST(input_tdim=64, embed_dim=32, depth=2, num_heads=2).eval()
    feats = torch.randn(2, 64, 128)
    tokens = lobe.forward_features(feats)
    torch.testing.assert_close(
        lobe(feats), (tokens[:, 0] + tokens[:, 1]) / 2, atol=1e-5, rtol=0
    )
    lobe.set_pooling("mean")
    torch.testing.assert_close(lobe(feats), tokens[:, 2:].mean(1))
    rebuilt = AST(**lobe.config).eval()
    rebuilt.load_state_dict(lobe.state_dict())
    torch.testing.assert_close(rebuilt(feats), lobe(feats))
    with pytest.raises(ValueError, match="pooling must be one of"):
        AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2, pooling="max")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_frames_with_clip_are_one_pass_of_forward_and_forward_frames(pooling):
    """``forward_frames(x, with_clip=True)``: the clip embedding equals
    ``forward`` (to float rounding with "cls", whose forward computes only
    the tokens in the last block) and the frames equal ``forward_frames``."""
    torch.manual_seed(0)
    lobe = AST(input_tdim=64, embed_dim=32, depth=2, num_heads=2)
    lobe.set_pooling(pooling).eval()
    feats = torch.randn(2, 64, 128)
    with torch.no_grad():
        clip, frames = lobe.forward_frames(feats, with_clip=True)
        assert torch.allclose(clip, lobe(feats), atol=1e-5)
        assert torch.equal(frames, lobe.forward_frames(feats))
