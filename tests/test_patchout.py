"""Tests of the AST lobe's training and speed options: patchout (PaSST's
structured patch dropping) and the eval-mode cache of adapted positional
embeddings.

Authors
 * speechbrain-ast developers
"""

import pytest
import torch

from speechbrain_ast.model.layers import supports_token_only, token_only_block
from speechbrain_ast.model.lobe import AST
from speechbrain_ast.model.pos_embed import adapt_pos_embed

TINY = dict(embed_dim=64, depth=2, num_heads=2)


def block_input(model, x):
    """What the first block receives: tokens + positions, after patchout."""
    seen = []
    hook = model.blocks[0].register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach())
    )
    try:
        model.forward_features(x)
    finally:
        hook.remove()
    return seen[0]


def match_rows(part, full):
    """Index in ``full`` [N, D] of each row of ``part`` [M, D] (exact)."""
    equal = (part[:, None, :] == full[None, :, :]).all(-1)
    assert (equal.sum(1) == 1).all(), "every kept token matches one token"
    return equal.float().argmax(1).tolist()


@pytest.fixture(scope="module")
def pair():
    """The same weights with and without patchout (12 x 12 grid)."""
    torch.manual_seed(0)
    plain = AST(input_tdim=128, **TINY)
    dropping = AST(input_tdim=128, patchout_time=5, patchout_freq=3, **TINY)
    dropping.load_state_dict(plain.state_dict())
    return plain, dropping


def test_eval_output_unchanged(pair):
    plain, dropping = pair
    x = torch.randn(2, 128, 128)
    plain.eval(), dropping.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), dropping(x))
        assert torch.equal(plain.forward_frames(x), dropping.forward_frames(x))
        # also at another length (adapted positions)
        y = torch.randn(1, 300, 128)
        assert torch.equal(plain(y), dropping(y))


def test_train_token_count_and_frames(pair):
    _, dropping = pair
    dropping.train()
    x = torch.randn(2, 128, 128)
    tokens = dropping.forward_features(x)
    assert tokens.shape == (2, 2 + (12 - 3) * (12 - 5), 64)
    assert dropping(x).shape == (2, 64)
    # frame outputs: one per kept time column
    assert dropping.forward_frames(x).shape == (2, 12 - 5, 64)
    # time only, on the AudioSet grid with PaSST's counts (40 of 101 here)
    audioset = AST(input_tdim=1024, patchout_time=40, patchout_freq=4, **TINY)
    x = torch.randn(1, 1024, 128)
    assert audioset.train().forward_features(x).shape == (1, 2 + 8 * 61, 64)
    assert audioset.eval().forward_features(x).shape == (1, 2 + 12 * 101, 64)


@pytest.mark.parametrize("frames", [128, 300])
def test_kept_tokens_carry_their_positions(pair, frames):
    plain, dropping = pair
    f_dim, t_dim = plain.grid(frames)
    # silence: every patch embeds to the conv bias, so tokens differ only by
    # their positional embedding and each kept token names its position
    x = torch.zeros(2, frames, 128)
    with torch.no_grad():
        full = block_input(plain.eval(), x)[0]
        dropping.train()
        for _ in range(3):
            kept = block_input(dropping, x)
            # the same columns and rows for the whole batch (as PaSST)
            assert torch.equal(kept[0], kept[1])
            index = match_rows(kept[0], full)
            # [CLS] and [DIST] always kept, first, with their positions
            assert index[:2] == [0, 1]
            patches = [i - 2 for i in index[2:]]
            rows = sorted({i // t_dim for i in patches})
            cols = sorted({i % t_dim for i in patches})
            assert len(rows) == f_dim - 3 and len(cols) == t_dim - 5
            # whole rows x whole columns, frequency-major, in grid order
            assert patches == [r * t_dim + c for r in rows for c in cols]
    # the full-sequence tokens are the adapted positions (timm-free check)
    pos = plain.pos_embed[:, 2:]
    adapted = adapt_pos_embed(pos, (12, 12), (f_dim, t_dim))[0]
    bias = plain.patch_embed.proj.bias
    torch.testing.assert_close(full[2:], adapted + bias)


def test_random_columns_change_between_steps(pair):
    _, dropping = pair
    dropping.train()
    x = torch.zeros(1, 128, 128)
    seen = set()
    with torch.no_grad():
        full = block_input(dropping.eval(), x)[0]
        dropping.train()
        for _ in range(6):
            seen.add(tuple(match_rows(block_input(dropping, x)[0], full)))
    assert len(seen) > 1


def test_gradients_with_patchout(pair):
    _, dropping = pair
    dropping.train()
    dropping.zero_grad()
    dropping(torch.randn(2, 200, 128)).pow(2).sum().backward()
    for name, param in dropping.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    dropping.zero_grad()


def test_counts_checked_and_clamped():
    # the built grid is 12 x 12: dropping all columns or rows is an error
    with pytest.raises(ValueError, match=r"patchout_time=12 .* 12 time"):
        AST(input_tdim=128, patchout_time=12, **TINY)
    with pytest.raises(ValueError, match=r"patchout_freq=12 .* 12 freq"):
        AST(input_tdim=128, patchout_freq=12, **TINY)
    with pytest.raises(ValueError, match="patchout_time=-1"):
        AST(input_tdim=128, patchout_time=-1, **TINY)
    with pytest.raises(ValueError, match="patchout_freq=1.5"):
        AST(input_tdim=128, patchout_freq=1.5, **TINY)
    # an input shorter than the built grid (30 frames: 12 x 2) keeps at
    # least one column instead of failing the training step
    model = AST(input_tdim=128, patchout_time=8, **TINY).train()
    assert model.forward_features(torch.randn(1, 30, 128)).shape == (
        1,
        2 + 12 * 1,
        64,
    )


# ---------------------------------------------------------------------------
# eval-mode cache of adapted positional embeddings
# ---------------------------------------------------------------------------


def uncached(model, x):
    """The output computed without the cache (grad enabled, no reuse)."""
    with torch.enable_grad():
        return model(x).detach()


def test_cache_equals_uncached_and_is_used():
    torch.manual_seed(1)
    model = AST(input_tdim=128, **TINY).eval()
    x = torch.randn(2, 98, 128)  # a 1 s clip at native length: 12 x 9
    with torch.no_grad():
        first = model(x)
        assert list(model._pos_cache) == [(12, 9)]
        cached = model._pos_cache[(12, 9)][2]
        assert torch.equal(model(x), first)
        assert model._pos_cache[(12, 9)][2] is cached  # reused
    with torch.inference_mode():
        assert torch.equal(model(x), first)
    assert torch.equal(uncached(model, x), first)
    # the built grid needs no adaptation and is not cached
    with torch.no_grad():
        model(torch.randn(1, 128, 128))
    assert list(model._pos_cache) == [(12, 9)]


def test_cache_invalidated_by_updates():
    torch.manual_seed(2)
    model = AST(input_tdim=128, **TINY).eval()
    other = AST(input_tdim=128, **TINY).eval()
    x = torch.randn(1, 400, 128)  # longer: interpolated positions
    with torch.no_grad():
        before = model(x)
        # an in-place update (what an optimiser step does)
        model.pos_embed.add_(0.5)
        after = model(x)
    assert not torch.equal(before, after)
    assert torch.equal(after, uncached(model, x))
    # load_state_dict copies into the same storage
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    # dtype (and device) changes give a new storage
    model.double()
    with torch.no_grad():
        got = model(x.double())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, uncached(model, x.double()))


def test_no_cache_with_autograd_or_training():
    torch.manual_seed(3)
    model = AST(input_tdim=128, **TINY).eval()
    x = torch.randn(1, 98, 128)
    # eval mode with gradients (e.g. saliency, frozen-norm fine-tuning):
    # the gradient reaches the positional embedding
    model(x).pow(2).sum().backward()
    assert model.pos_embed.grad.abs().sum() > 0
    assert not model._pos_cache
    with torch.no_grad():
        model(x)
    assert model._pos_cache
    model.train()
    model(x)
    assert not model._pos_cache


# ---------------------------------------------------------------------------
# the pooled forward computes only [CLS] / [DIST] in the last block
# ---------------------------------------------------------------------------


def test_token_only_last_block_equals_timm_block():
    torch.manual_seed(4)
    model = AST(input_tdim=128, **TINY)
    block = model.blocks[-1]
    x = torch.randn(3, 146, 64)
    for mode in (False, True):  # eval and train (no dropout configured)
        block.train(mode)
        with torch.no_grad():
            want = block(x)[:, :2]
            got = token_only_block(block, x, 2)
        # measured: <= 5e-7 (the same ops on fewer rows)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert supports_token_only(block)


def test_pooled_forward_skips_patch_outputs():
    torch.manual_seed(5)
    model = AST(input_tdim=128, **TINY).eval()
    seen = []
    model.blocks[-1].mlp.register_forward_pre_hook(
        lambda module, args: seen.append(tuple(args[0].shape))
    )
    x = torch.randn(2, 200, 128)
    with torch.no_grad():
        pooled = model(x)
        tokens = model.forward_features(x)
    # forward: the last MLP sees 2 tokens; forward_features: all of them
    assert seen == [(2, 2, 64), (2, 2 + 12 * 19, 64)]
    torch.testing.assert_close(
        pooled, (tokens[:, 0] + tokens[:, 1]) / 2, rtol=0, atol=1e-5
    )
    # the int8 copy takes the same path; dynamic quantization scales the
    # activations per call, so its two-token rows get their own (tighter)
    # range and the result stays close to the float one
    from speechbrain_ast.deploy.quantize import quantize_int8

    qmodel = quantize_int8(model)
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(qmodel(x), pooled)
    assert cos.min() > 0.99, cos


def test_cached_model_copies_and_pickles():
    import copy
    import pickle

    model = AST(input_tdim=128, **TINY).eval()
    x = torch.randn(1, 200, 128)
    with torch.inference_mode():
        want = model(x)
    entry = model._pos_cache[(12, 19)][2]
    assert entry.grad_fn is None and not entry.is_inference()
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        with torch.no_grad():
            assert torch.equal(clone(x), want)


RECIPE_YAMLS = {
    "recipes/ESC50/hparams/ast.yaml": (20, 4),
    "recipes/SpeechCommands/hparams/ast.yaml": (5, 4),
    "recipes/AudioSet/hparams/ast_balanced.yaml": (40, 4),
}


@pytest.mark.parametrize("yaml_path", sorted(RECIPE_YAMLS))
def test_recipes_switch_patchout_on_from_the_command_line(yaml_path, tmp_path):
    """``--patchout_time T --patchout_freq F`` reach the recipe's lobe:
    training drops that many columns and rows, eval sees the full grid;
    off by default (the paper's setting)."""
    import os

    from hyperpyyaml import load_hyperpyyaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    drop_t, drop_f = RECIPE_YAMLS[yaml_path]
    base = {
        "data_folder": str(tmp_path / "data"),
        "output_folder": str(tmp_path / "out"),
        "imagenet_pretrain": False,
        "audioset_pretrain": False,
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
    }
    with open(os.path.join(root, yaml_path)) as f:
        default = load_hyperpyyaml(f, base)["embedding_model"]
    assert (default.patchout_time, default.patchout_freq) == (0, 0)
    with open(os.path.join(root, yaml_path)) as f:
        hparams = load_hyperpyyaml(
            f, {**base, "patchout_time": drop_t, "patchout_freq": drop_f}
        )
    lobe = hparams["embedding_model"]
    f_dim, t_dim = lobe.patch_grid
    feats = torch.randn(1, hparams["target_length"], 128)
    with torch.no_grad():
        kept = lobe.train().forward_features(feats).shape[1]
        full = lobe.eval().forward_features(feats).shape[1]
    assert kept == 2 + (f_dim - drop_f) * (t_dim - drop_t)
    assert full == 2 + f_dim * t_dim


def test_torch_compile_of_the_lobe_equals_eager():
    """``torch.compile`` (inductor, CPU) of the lobe: same embeddings at
    the built length and at another length (adapted positions)."""
    torch.manual_seed(0)
    lobe = AST(input_tdim=128, **TINY).eval()
    compiled = torch.compile(lobe)
    for frames in (128, 200):
        feats = torch.randn(2, frames, 128)
        with torch.no_grad():
            expected = lobe(feats)
            got = compiled(feats)
        assert torch.allclose(got, expected, atol=1e-5)
