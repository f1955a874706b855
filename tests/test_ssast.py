"""SSAST: masking, both losses and the checkpoint import, each against an
independent computation written here (plain loops and explicit formulas,
following the reference implementation's definitions).

Authors
 * speechbrain-ast developers
"""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.ssast import SSAST, cluster_mask, frame_mask, patch_values
from speechbrain_ast.weights import (
    build_from_checkpoint,
    load_ssast,
    read_ssast_checkpoint,
    save_ssast_encoder,
)


def tiny_lobe(patch=(16, 16), tdim=128, dim=32, depth=1, heads=2, stride=None):
    fstride, tstride = stride or patch
    return AST(
        input_tdim=tdim,
        patch_size=patch,
        fstride=fstride,
        tstride=tstride,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
    )


# -- masking -----------------------------------------------------------------


def reference_cluster_mask(rng, sequence_len, p_t_dim, mask_size, cluster=3):
    """The reference's gen_maskid_patch, as plain list/set code."""
    mask_id = []
    cur_clus = rng.randrange(cluster) + 3
    while len(list(set(mask_id))) <= mask_size:
        start_id = rng.randrange(sequence_len)
        cur_mask = []
        for i in range(0, cur_clus):
            for j in range(0, cur_clus):
                mask_cand = start_id + p_t_dim * i + j
                if mask_cand > 0 and mask_cand < sequence_len:
                    cur_mask.append(mask_cand)
        mask_id = mask_id + cur_mask
    return list(set(mask_id))[:mask_size], cur_clus


@pytest.mark.parametrize(
    "num, t_dim, size", [(512, 64, 400), (64, 8, 50), (1212, 101, 400)]
)
def test_cluster_mask_equals_the_reference_draw_for_draw(num, t_dim, size):
    for seed in range(20):
        ours = cluster_mask(num, t_dim, size, rng=random.Random(seed))
        ref, _ = reference_cluster_mask(random.Random(seed), num, t_dim, size)
        assert ours.tolist() == ref


def test_cluster_mask_statistics():
    """Sides 3/4/5 equally often, no duplicates, patch 0 never masked, and
    masked patches have masked neighbours far more often than uniform
    masks of the same size."""
    num, t_dim, size = 512, 64, 100
    sides, adjacency = [], {"cluster": [], "frame": []}
    for seed in range(300):
        mask = cluster_mask(num, t_dim, size, rng=random.Random(seed))
        _, side = reference_cluster_mask(random.Random(seed), num, t_dim, size)
        sides.append(side)
        values = mask.tolist()
        assert len(values) == size == len(set(values))
        assert min(values) > 0 and max(values) < num
        uniform = frame_mask(num, size, rng=random.Random(seed)).tolist()
        for name, chosen in (("cluster", set(values)), ("frame", set(uniform))):
            # share of masked patches whose right or lower neighbour is masked
            pairs = sum(
                (i + 1) in chosen or (i + t_dim) in chosen for i in chosen
            )
            adjacency[name].append(pairs / size)
    counts = [sides.count(s) for s in (3, 4, 5)]
    assert sum(counts) == 300 and min(counts) > 70, counts
    cluster_adj = sum(adjacency["cluster"]) / 300
    frame_adj = sum(adjacency["frame"]) / 300
    # uniform: 1 - (1 - 100/512)^2 ~ 0.35; clusters of side >= 3: >= 0.6
    assert frame_adj < 0.45 < 0.6 < cluster_adj, (frame_adj, cluster_adj)


def test_frame_mask_is_uniform_without_replacement():
    num, size, draws = 64, 50, 2000
    counts = [0] * num
    rng = random.Random(1)
    for _ in range(draws):
        mask = frame_mask(num, size, rng=rng).tolist()
        assert len(set(mask)) == size
        for i in mask:
            counts[i] += 1
    expected = draws * size / num
    # binomial sd per index: sqrt(n p (1 - p)) ~ 18.5; allow 5 sd
    sd = math.sqrt(draws * (size / num) * (1 - size / num))
    assert max(abs(c - expected) for c in counts) < 5 * sd
    assert frame_mask(num, size, rng=random.Random(7)).tolist() == (
        random.Random(7).sample(range(num), size)
    )


def test_masks_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="cannot mask 400 of 64 patches"):
        cluster_mask(64, 8, 400)
    with pytest.raises(ValueError, match="lower mask_patch"):
        SSAST(tiny_lobe(), mask_patch=400)
    with pytest.raises(ValueError, match="do not overlap"):
        SSAST(tiny_lobe(stride=(10, 10)))


def test_frame_patches_mask_uniformly_and_patch_ones_in_clusters():
    assert not SSAST(tiny_lobe(patch=(128, 2)), mask_patch=10).cluster_masking
    assert SSAST(tiny_lobe(), mask_patch=10).cluster_masking


# -- the losses --------------------------------------------------------------


def manual_patches(feats, pf, pt):
    """[B, N, pf * pt] by slicing: frequency-major grid and values."""
    batch, frames, bins = feats.shape
    out = []
    for b in range(batch):
        rows = []
        for f in range(bins // pf):
            for t in range(frames // pt):
                block = feats[b, t * pt : (t + 1) * pt, f * pf : (f + 1) * pf]
                rows.append(block.t().reshape(-1))  # [pf, pt] flattened
        out.append(torch.stack(rows))
    return torch.stack(out)


def manual_masked_outputs(model, feats, mask_index):
    """Encoder outputs at the masked positions, the embedding done by hand:
    patch values times the flattened conv kernel, masked rows replaced by
    the mask embedding, tokens prepended, positions added."""
    enc = model.encoder
    pf, pt = enc.patch_size
    values = manual_patches(feats, pf, pt)
    weight = enc.patch_embed.proj.weight.reshape(enc.embed_dim, pf * pt)
    emb = values @ weight.t() + enc.patch_embed.proj.bias
    for b in range(feats.shape[0]):
        for i in mask_index[b].tolist():
            emb[b, i] = model.mask_embed[0, 0]
    batch = feats.shape[0]
    x = torch.cat(
        [
            enc.cls_token.expand(batch, -1, -1),
            enc.dist_token.expand(batch, -1, -1),
            emb,
        ],
        1,
    )
    x = x + enc.pos_embed
    for block in enc.blocks:
        x = block(x)
    x = enc.norm(x)[:, 2:]
    outputs = torch.stack([x[b, mask_index[b]] for b in range(batch)])
    targets = torch.stack([values[b, mask_index[b]] for b in range(batch)])
    return outputs, targets


def manual_mlp(layer, x):
    w1, b1 = layer[0].weight, layer[0].bias
    w2, b2 = layer[2].weight, layer[2].bias
    return torch.relu(x @ w1.t() + b1) @ w2.t() + b2


def manual_contrast(pred, target):
    """Per clip: s[j][k] = <target_j, pred_k>; -log softmax_k s[j][k] at
    k = j, averaged; accuracy: column k's argmax over j of the
    row-normalised softmax is k."""
    batch, m, _ = pred.shape
    total, correct = 0.0, 0
    for b in range(batch):
        s = [
            [float(torch.dot(target[b, j], pred[b, k])) for k in range(m)]
            for j in range(m)
        ]
        soft = []
        for j in range(m):
            top = max(s[j])
            log_z = top + math.log(sum(math.exp(v - top) for v in s[j]))
            total += s[j][j] - log_z
            soft.append([math.exp(v - log_z) for v in s[j]])
        for k in range(m):
            column = [soft[j][k] for j in range(m)]
            correct += int(column.index(max(column)) == k)
    return -total / (batch * m), correct / (batch * m)


@pytest.mark.parametrize("patch, tdim", [((16, 16), 64), ((128, 2), 40)])
def test_mpc_and_mpg_equal_the_explicit_formulas(patch, tdim):
    torch.manual_seed(0)
    lobe = tiny_lobe(patch=patch, tdim=tdim, depth=2)
    model = SSAST(lobe, mask_patch=12).eval()
    feats = torch.randn(3, tdim, 128)
    mask_index = model.draw_masks(3, rng=random.Random(0))
    with torch.no_grad():
        contrast, acc = model.mpc(feats, mask_index)
        mse = model.mpg(feats, mask_index)
        outputs, targets = manual_masked_outputs(model, feats, mask_index)
        want_contrast, want_acc = manual_contrast(
            manual_mlp(model.cpredlayer, outputs), targets
        )
        recon = manual_mlp(model.gpredlayer, outputs)
    want_mse = sum(
        float(((recon[b, i] - targets[b, i]) ** 2).sum())
        for b in range(3)
        for i in range(12)
    ) / (3 * 12 * patch[0] * patch[1])
    assert abs(float(contrast) - want_contrast) < 1e-4 * max(
        1.0, abs(want_contrast)
    )
    assert abs(float(acc) - want_acc) < 1e-9
    assert abs(float(mse) - want_mse) < 1e-5 * max(1.0, want_mse)


def test_patch_values_follow_the_token_order():
    feats = torch.randn(2, 48, 128)
    torch.testing.assert_close(
        patch_values(feats, (16, 16)), manual_patches(feats, 16, 16)
    )
    torch.testing.assert_close(
        patch_values(feats, (128, 2)), manual_patches(feats, 128, 2)
    )


def test_accuracy_is_one_when_predictions_are_the_targets():
    """A perfect predictor (pred = target, distinct large patches) scores
    accuracy 1 and a loss near 0."""
    target = torch.eye(6).repeat(2, 1, 1)[:, :, :6] * 30
    contrast, acc = SSAST.infonce(target.clone(), target)
    assert float(acc) == 1.0 and float(contrast) < 1e-6


def test_joint_loss_is_mpc_plus_ten_mpg_with_masks_of_their_own():
    torch.manual_seed(1)
    model = SSAST(tiny_lobe(tdim=64), mask_patch=10).eval()
    feats = torch.randn(2, 64, 128)
    with torch.no_grad():
        out = model(feats, rng=random.Random(5))
        rng = random.Random(5)  # the same draws, in the same order
        m1 = torch.stack([cluster_mask(32, 4, 10, rng=rng) for _ in range(2)])
        m2 = torch.stack([cluster_mask(32, 4, 10, rng=rng) for _ in range(2)])
        contrast, acc = model.mpc(feats, m1)
        mse = model.mpg(feats, m2)
    assert not torch.equal(m1, m2)
    torch.testing.assert_close(out["mpc"], contrast)
    torch.testing.assert_close(out["mpg"], mse)
    torch.testing.assert_close(out["loss"], contrast + 10 * mse)
    torch.testing.assert_close(out["acc"], acc)


def test_pretraining_steps_lower_the_loss_and_train_every_part():
    torch.manual_seed(0)
    model = SSAST(tiny_lobe(tdim=64), mask_patch=16, shared_mask=True)
    feats = torch.randn(4, 64, 128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(25):
        out = model(feats, rng=random.Random(step % 2))
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:
            for name in (
                "mask_embed",
                "cpredlayer.0.weight",
                "gpredlayer.2.bias",
            ):
                assert model.get_parameter(name).grad.abs().sum() > 0, name
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0], losses


# -- checkpoints -------------------------------------------------------------


def reference_state_dict(model, input_fdim, input_tdim):
    """The keys the reference saves: DataParallel's ``module.`` prefix,
    timm's ViT as ``v`` (including its unused ImageNet heads), the two
    prediction heads, the mask embedding and the pretraining input size."""
    enc = model.encoder
    state = {
        "module.v.cls_token": enc.cls_token,
        "module.v.pos_embed": enc.pos_embed,
        "module.v.dist_token": enc.dist_token,
        "module.v.patch_embed.proj.weight": enc.patch_embed.proj.weight,
        "module.v.patch_embed.proj.bias": enc.patch_embed.proj.bias,
    }
    for i, block in enumerate(enc.blocks):
        parts = {
            "norm1": block.norm1,
            "attn.qkv": block.attn.qkv,
            "attn.proj": block.attn.proj,
            "norm2": block.norm2,
            "mlp.fc1": block.mlp.fc1,
            "mlp.fc2": block.mlp.fc2,
        }
        for name, module in parts.items():
            state[f"module.v.blocks.{i}.{name}.weight"] = module.weight
            state[f"module.v.blocks.{i}.{name}.bias"] = module.bias
    state["module.v.norm.weight"] = enc.norm.weight
    state["module.v.norm.bias"] = enc.norm.bias
    dim = enc.embed_dim
    for head in ("head", "head_dist"):
        state[f"module.v.{head}.weight"] = torch.randn(1000, dim)
        state[f"module.v.{head}.bias"] = torch.randn(1000)
    for name in ("cpredlayer", "gpredlayer"):
        layer = getattr(model, name)
        for idx in (0, 2):
            state[f"module.{name}.{idx}.weight"] = layer[idx].weight
            state[f"module.{name}.{idx}.bias"] = layer[idx].bias
    state["module.mask_embed"] = model.mask_embed
    state["module.p_input_fdim"] = torch.tensor(input_fdim)
    state["module.p_input_tdim"] = torch.tensor(input_tdim)
    return {k: v.detach().clone() for k, v in state.items()}


@pytest.mark.parametrize(
    "patch, tdim, p_input", [((16, 16), 128, True), ((128, 2), 64, False)]
)
def test_reference_checkpoint_imports_to_the_same_encoder(
    tmp_path, patch, tdim, p_input
):
    torch.manual_seed(2)
    lobe = tiny_lobe(patch=patch, tdim=tdim, dim=64, depth=2, heads=1)
    model = SSAST(lobe, mask_patch=8).eval()
    state = reference_state_dict(model, 128, tdim)
    if not p_input:  # the grid is then inferred from the weight shapes
        del state["module.p_input_fdim"], state["module.p_input_tdim"]
    path = tmp_path / "SSAST-Tiny.pth"
    torch.save(state, path)

    imported = read_ssast_checkpoint(path)
    assert imported.config["patch_size"] == list(patch)
    assert (imported.config["fstride"], imported.config["tstride"]) == patch
    assert imported.config["input_tdim"] == tdim and imported.head_state is None

    fresh = tiny_lobe(patch=patch, tdim=tdim, dim=64, depth=2, heads=1).eval()
    load_ssast(fresh, path)
    feats = torch.randn(2, tdim, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            fresh.forward_features(feats),
            lobe.forward_features(feats),
            rtol=0,
            atol=0,
        )


def test_import_adapts_positions_to_the_fine_tuning_strides(tmp_path):
    """16 x 16 pretrained on an 8 x 8 grid (128 frames), fine-tuned at
    stride 10: 12 x 9 (100 frames, both axes interpolated) and 12 x 3
    (40 frames: the centre 3 time columns, then frequency interpolated)."""
    torch.manual_seed(3)
    model = SSAST(tiny_lobe(dim=64, heads=1), mask_patch=8)
    path = tmp_path / "ssast.pth"
    torch.save(reference_state_dict(model, 128, 128), path)
    src = model.encoder.pos_embed.detach()
    grid = src[:, 2:].transpose(1, 2).reshape(1, 64, 8, 8)
    for tdim, expect in ((100, (12, 9)), (40, (12, 3))):
        lobe = tiny_lobe(dim=64, heads=1, tdim=tdim, stride=(10, 10))
        assert lobe.patch_grid == expect
        load_ssast(lobe, path)
        if expect[1] > 8:
            by_time = F.interpolate(grid, size=(8, 9), mode="bilinear")
        else:
            by_time = grid[:, :, :, 3:6]  # 8 // 2 - 3 // 2 = 3
        want = F.interpolate(by_time, size=expect, mode="bilinear")
        want = want.reshape(1, 64, -1).transpose(1, 2)
        torch.testing.assert_close(lobe.pos_embed[:, 2:].detach(), want)
        torch.testing.assert_close(lobe.pos_embed[:, :2].detach(), src[:, :2])
        torch.testing.assert_close(
            lobe.patch_embed.proj.weight, model.encoder.patch_embed.proj.weight
        )
        assert lobe.patch_embed.proj.stride == (10, 10)
        lobe(torch.randn(1, tdim, 128))


def test_our_encoder_file_loads_through_the_same_function(tmp_path):
    torch.manual_seed(4)
    model = SSAST(tiny_lobe(patch=(128, 2), tdim=64), mask_patch=8).eval()
    path = tmp_path / "ssast_encoder.pt"
    save_ssast_encoder(model, path, norm_stats=(-5.0, 3.0))
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["patch_size"] == [128, 2]
    assert raw["config"]["tstride"] == 2
    same = tiny_lobe(patch=(128, 2), tdim=64).eval()
    imported = load_ssast(same, path)
    assert imported.norm_stats == (-5.0, 3.0)
    feats = torch.randn(2, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(
            same.forward_features(feats),
            model.encoder.forward_features(feats),
            rtol=0,
            atol=0,
        )
    finer = tiny_lobe(patch=(128, 2), tdim=100, stride=(128, 1))
    load_ssast(finer, path)
    assert finer.patch_grid == (1, 99)


def test_converter_path_builds_a_lobe_and_fresh_head(tmp_path):
    model = SSAST(tiny_lobe(dim=64, heads=1), mask_patch=8)
    path = tmp_path / "ssast.pth"
    torch.save(reference_state_dict(model, 128, 128), path)
    lobe, head, built = build_from_checkpoint(
        read_ssast_checkpoint(path), input_tdim=64, n_classes=5
    )
    assert isinstance(head, ASTHead) and built.n_classes == 5
    assert head(lobe(torch.randn(2, 64, 128))).shape == (2, 5)


def test_bad_checkpoints_are_named_with_what_to_do(tmp_path):
    model = SSAST(tiny_lobe(dim=64, heads=1), mask_patch=8)
    path = tmp_path / "ssast.pth"
    torch.save(reference_state_dict(model, 128, 128), path)
    with pytest.raises(ValueError, match=r"16 x 16 patches .* 128 x 2"):
        load_ssast(tiny_lobe(patch=(128, 2), dim=64, heads=1), path)
    with pytest.raises(ValueError, match="width 64 and depth 1"):
        load_ssast(tiny_lobe(dim=32), path)
    with pytest.raises(ValueError, match="1 attention heads, the lobe has 2"):
        load_ssast(tiny_lobe(dim=64, heads=2), path)
    supervised = tmp_path / "audioset.pth"
    torch.save(
        {f"module.v.{k}": v for k, v in model.encoder.state_dict().items()},
        supervised,
    )
    with pytest.raises(ValueError, match="--audioset_pretrain"):
        read_ssast_checkpoint(supervised)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.ones(2)}, other)
    with pytest.raises(ValueError, match="not an SSAST checkpoint"):
        read_ssast_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_ssast_checkpoint(tmp_path / "missing.pth")
