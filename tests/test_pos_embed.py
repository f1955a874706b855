"""Tests of the positional-embedding adaptation against the reference rule.

Authors
 * speechbrain-ast developers
"""

import pytest
import torch

from speechbrain_ast.model.pos_embed import adapt_pos_embed


def reference_rule(pos, src_hw, dst_hw, mode="bilinear"):
    """The reference implementation's steps, transcribed literally.

    pos: [1, N, D]; reshape to [1, D, H, W], cut or interpolate the second
    (time) dimension, then the first (frequency) one, flatten.
    """
    src_f, src_t = src_hw
    f_dim, t_dim = dst_hw
    dim = pos.shape[-1]
    new = pos.reshape(1, src_f * src_t, dim).transpose(1, 2)
    new = new.reshape(1, dim, src_f, src_t)
    if t_dim <= src_t:
        start = int(src_t / 2) - int(t_dim / 2)
        new = new[:, :, :, start : start + t_dim]
    else:
        new = torch.nn.functional.interpolate(
            new, size=(src_f, t_dim), mode=mode
        )
    if f_dim <= src_f:
        start = int(src_f / 2) - int(f_dim / 2)
        new = new[:, :, start : start + f_dim, :]
    else:
        new = torch.nn.functional.interpolate(
            new, size=(f_dim, t_dim), mode=mode
        )
    return new.reshape(1, dim, f_dim * t_dim).transpose(1, 2)


CASES = [
    ((24, 24), (12, 101)),  # DeiT-384 -> 128 x 1024 frames (the paper)
    ((24, 24), (12, 50)),  # -> 512 frames
    ((14, 14), (12, 101)),  # DeiT-224
    ((12, 101), (12, 12)),  # AudioSet checkpoint -> 128 frames
    ((12, 101), (12, 200)),  # -> a longer input
    ((12, 101), (30, 101)),  # frequency grows
    ((12, 101), (5, 7)),  # odd cuts on both axes
]


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("src, dst", CASES)
def test_matches_reference_rule(src, dst, method):
    torch.manual_seed(0)
    pos = torch.randn(1, src[0] * src[1], 24)
    got = adapt_pos_embed(pos, src, dst, method=method)
    want = reference_rule(pos, src, dst, mode=method)
    assert got.shape == (1, dst[0] * dst[1], 24)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_paper_case_keeps_rows_6_to_17():
    # 24 x 24 -> 12 x 101: time interpolated to 101, then rows 6..17 kept
    pos = torch.randn(1, 24 * 24, 8)
    got = adapt_pos_embed(pos, (24, 24), (12, 101))
    image = pos.transpose(1, 2).reshape(1, 8, 24, 24)
    wide = torch.nn.functional.interpolate(
        image, size=(24, 101), mode="bilinear", align_corners=False
    )
    want = wide[:, :, 6:18].reshape(1, 8, 1212).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_frequency_major_cut_picks_centre_patches():
    # index = f * t_dim + t: write the index into the embedding and check
    # that a cut keeps exactly the centre patches
    src, dst = (12, 101), (12, 12)
    pos = torch.arange(12 * 101, dtype=torch.float32).reshape(1, -1, 1)
    got = adapt_pos_embed(pos, src, dst).flatten().long().tolist()
    want = [f * 101 + t for f in range(12) for t in range(44, 56)]
    assert got == want


def test_identity_and_gradient():
    pos = torch.randn(1, 12 * 101, 4, requires_grad=True)
    assert adapt_pos_embed(pos, (12, 101), (12, 101)) is pos
    adapt_pos_embed(pos, (12, 101), (12, 300)).sum().backward()
    assert pos.grad is not None and pos.grad.abs().sum() > 0


def test_errors():
    pos = torch.randn(1, 100, 4)
    with pytest.raises(ValueError, match="100 patch embeddings.*12 x 101"):
        adapt_pos_embed(pos, (12, 101), (12, 12))
    with pytest.raises(ValueError, match="method"):
        adapt_pos_embed(pos, (10, 10), (5, 5), method="reinit")
    with pytest.raises(ValueError, match="dst_grid"):
        adapt_pos_embed(pos, (10, 10), (0, 5))
    with pytest.raises(ValueError, match=r"\[1, num_patches, embed_dim\]"):
        adapt_pos_embed(torch.randn(100, 4), (10, 10), (5, 5))
