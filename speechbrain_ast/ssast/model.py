"""SSAST: self-supervised pretraining of the AST lobe (Gong, Lai, Chung &
Glass, AAAI 2022).

Masked patch modelling on unlabelled audio. A spectrogram is cut into
patches that do not overlap (16 x 16 "patch-based" or 128 x 2
"frame-based"); the embeddings of some patches are replaced by a learned
mask embedding, the AST encoder runs over the whole sequence, and two
heads read its outputs at the masked positions:

* discriminative (masked patch classification, ``mpc``): ``cpredlayer``
  maps each output to the patch space; for every clip, each true masked
  patch must pick its own prediction among the predictions of all the
  clip's masked patches (InfoNCE, the other masked patches are the
  negatives);
* generative (masked patch reconstruction, ``mpg``): ``gpredlayer``
  predicts the patch's raw values, mean squared error.

The pretraining loss is ``mpc + mpg_weight * mpg`` (``mpg_weight`` 10 as
the reference). Masks are drawn per clip: clusters of neighbouring patches
for patch-based models (:func:`cluster_mask`), uniform frames for
frame-based ones (:func:`frame_mask`).

After pretraining only the encoder is kept:
:func:`speechbrain_ast.weights.save_ssast_encoder` writes it and
:func:`speechbrain_ast.weights.load_ssast` loads it into a lobe built for
fine-tuning.

Authors
 * speechbrain-ast developers
"""

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechbrain_ast.model.lobe import AST, NUM_TOKENS
from speechbrain_ast.ssast.masks import cluster_mask, frame_mask, patch_values

__all__ = ["SSAST"]


def _pred_layer(embed_dim, patch_dim):
    return nn.Sequential(
        nn.Linear(embed_dim, embed_dim),
        nn.ReLU(),
        nn.Linear(embed_dim, patch_dim),
    )


class SSAST(nn.Module):
    """The SSAST pretraining model around an AST lobe.

    Arguments
    ---------
    encoder : speechbrain_ast.model.lobe.AST
        The lobe to pretrain; its strides must equal its patch size (no
        overlap while pretraining). Its patchout is not applied here.
    mask_patch : int
        Patches masked per clip (the reference: 400 of 512).
    cluster_factor : int
        Cluster sides drawn from ``3 .. cluster_factor + 2`` (patch masking).
    cluster_masking : bool, optional
        Clustered masks (:func:`cluster_mask`) or uniform ones
        (:func:`frame_mask`). Default: clusters unless the patches span the
        whole frequency axis (frame-based), as the reference decides.
    mpg_weight : float
        Weight of the generative loss in the sum (10 in the reference).
    objective : str
        ``"joint"`` (both losses), ``"mpc"`` or ``"mpg"``.
    shared_mask : bool
        False (the reference): the discriminative and the generative loss
        each mask the clip anew and run the encoder once each. True: one
        mask and one encoder pass feed both heads (half the compute).

    Example
    -------
    >>> lobe = AST(
    ...     input_tdim=128,
    ...     patch_size=16,
    ...     fstride=16,
    ...     tstride=16,
    ...     embed_dim=32,
    ...     depth=1,
    ...     num_heads=2,
    ... )
    >>> model = SSAST(lobe, mask_patch=40)
    >>> out = model(torch.randn(2, 128, 128))
    >>> sorted(out)
    ['acc', 'loss', 'mpc', 'mpg']
    >>> out["loss"].shape
    torch.Size([])
    """

    def __init__(
        self,
        encoder,
        mask_patch=400,
        cluster_factor=3,
        cluster_masking=None,
        mpg_weight=10.0,
        objective="joint",
        shared_mask=False,
    ):
        super().__init__()
        if not isinstance(encoder, AST):
            raise TypeError(
                f"SSAST needs a speechbrain_ast.model.lobe.AST encoder; got "
                f"{type(encoder).__name__}."
            )
        pf, pt = encoder.patch_size
        if (encoder.fstride, encoder.tstride) != (pf, pt):
            raise ValueError(
                f"SSAST pretrains on patches that do not overlap, but the "
                f"encoder has patch_size {(pf, pt)} with fstride="
                f"{encoder.fstride}, tstride={encoder.tstride}: build it "
                f"with fstride={pf} and tstride={pt} (fine-tuning may use "
                "smaller strides, load_ssast adapts them)."
            )
        if objective not in ("joint", "mpc", "mpg"):
            raise ValueError(
                f"objective must be 'joint', 'mpc' or 'mpg'; got {objective!r}"
            )
        self.encoder = encoder
        self.mask_patch = mask_patch
        self.cluster_factor = cluster_factor
        if cluster_masking is None:
            cluster_masking = pf != encoder.input_fdim
        self.cluster_masking = bool(cluster_masking)
        self.mpg_weight = float(mpg_weight)
        self.objective = objective
        self.shared_mask = bool(shared_mask)
        # the mask must fit the grid the encoder is built for
        self.draw_mask(rng=random.Random(0))

        dim = encoder.embed_dim
        self.cpredlayer = _pred_layer(dim, pf * pt)
        self.gpredlayer = _pred_layer(dim, pf * pt)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.xavier_normal_(self.mask_embed)

    def draw_mask(self, grid=None, rng=None):
        """One clip's masked patch indices (``[mask_patch]``) for ``grid``
        (default: the encoder's)."""
        f_dim, t_dim = self.encoder.patch_grid if grid is None else grid
        if self.cluster_masking:
            return cluster_mask(
                f_dim * t_dim, t_dim, self.mask_patch, self.cluster_factor, rng
            )
        return frame_mask(f_dim * t_dim, self.mask_patch, rng)

    def draw_masks(self, batch, grid=None, rng=None, device=None):
        """``[batch, mask_patch]`` indices, a mask of its own per clip."""
        masks = [self.draw_mask(grid, rng) for _ in range(batch)]
        return torch.stack(masks).to(device)

    def encode_masked(self, feats, mask_index):
        """Encoder outputs with the masked patch embeddings replaced
        (the lobe's own forward, without patchout).

        Arguments
        ---------
        feats : torch.Tensor
            ``[batch, time, input_fdim]`` normalised features.
        mask_index : torch.Tensor
            ``[batch, M]`` patch indices to mask (frequency-major).

        Returns
        -------
        torch.Tensor
            ``[batch, 2 + num_patches, embed_dim]`` after the final norm.
        """
        self.encoder.check_input(feats)  # before its shape is read
        f_dim, t_dim = self.encoder.grid(feats.shape[1])
        masked = torch.zeros(
            feats.shape[0], f_dim * t_dim, dtype=torch.bool, device=feats.device
        )
        masked.scatter_(1, mask_index, True)
        return self.encoder.forward_features(
            feats, masked=masked, mask_embed=self.mask_embed
        )

    def _masked_outputs(self, feats, mask_index):
        """Encoder outputs ``[B, M, D]`` and true patch values ``[B, M, P]``
        at the masked positions."""
        outputs = self.encode_masked(feats, mask_index)[:, NUM_TOKENS:]
        values = patch_values(feats, self.encoder.patch_size)
        take = mask_index.unsqueeze(-1)
        outputs = outputs.gather(1, take.expand(-1, -1, outputs.shape[-1]))
        values = values.gather(1, take.expand(-1, -1, values.shape[-1]))
        return outputs, values.detach()

    @staticmethod
    def infonce(pred, target):
        """The reference's masked patch classification loss and accuracy.

        Arguments
        ---------
        pred : torch.Tensor
            ``[B, M, P]`` predictions at the masked positions.
        target : torch.Tensor
            ``[B, M, P]`` true patch values.

        Returns
        -------
        contrast : torch.Tensor
            Per clip, ``scores = target @ pred^T`` (``[M, M]``), log-softmax
            over the predictions; minus the mean of the diagonal over
            clips and patches.
        acc : torch.Tensor
            Fraction of predictions ``j`` whose row-softmax column maximum
            is at target ``j``.
        """
        scores = torch.bmm(target.float(), pred.float().transpose(1, 2))
        log_prob = F.log_softmax(scores, dim=-1)
        contrast = -torch.diagonal(log_prob, dim1=1, dim2=2).mean()
        index = torch.arange(scores.shape[1], device=scores.device)
        acc = (log_prob.argmax(dim=1) == index).float().mean()
        return contrast, acc

    def mpc(self, feats, mask_index=None, rng=None):
        """Discriminative loss (InfoNCE) and accuracy on ``feats``.

        ``mask_index`` ``[B, M]`` (default: drawn with :meth:`draw_masks`).
        """
        if mask_index is None:
            mask_index = self._masks_for(feats, rng)
        outputs, values = self._masked_outputs(feats, mask_index)
        return self.infonce(self.cpredlayer(outputs), values)

    def mpg(self, feats, mask_index=None, rng=None):
        """Generative loss: MSE of the reconstructed masked patches."""
        if mask_index is None:
            mask_index = self._masks_for(feats, rng)
        outputs, values = self._masked_outputs(feats, mask_index)
        pred = self.gpredlayer(outputs).float()
        return F.mse_loss(pred, values.float())

    def _masks_for(self, feats, rng):
        grid = self.encoder.grid(feats.shape[1])
        return self.draw_masks(feats.shape[0], grid, rng, feats.device)

    def forward(self, feats, rng=None):
        """The pretraining objective on a batch.

        Arguments
        ---------
        feats : torch.Tensor
            ``[batch, time, input_fdim]`` normalised features.
        rng : random.Random, optional
            Source of the masks (e.g. a fixed one for validation).

        Returns
        -------
        dict
            ``loss`` (``mpc + mpg_weight * mpg``, or one of them by
            ``objective``), ``mpc``, ``acc`` and ``mpg`` (zeros for the
            objective's unused half).
        """
        zero = feats.new_zeros((), dtype=torch.float32)
        contrast, acc, mse = zero, zero, zero
        if self.shared_mask and self.objective == "joint":
            mask_index = self._masks_for(feats, rng)
            outputs, values = self._masked_outputs(feats, mask_index)
            contrast, acc = self.infonce(self.cpredlayer(outputs), values)
            pred = self.gpredlayer(outputs).float()
            mse = F.mse_loss(pred, values.float())
        else:
            if self.objective in ("joint", "mpc"):
                contrast, acc = self.mpc(feats, rng=rng)
            if self.objective in ("joint", "mpg"):
                mse = self.mpg(feats, rng=rng)
        if self.objective == "mpc":
            loss = contrast
        elif self.objective == "mpg":
            loss = mse
        else:
            loss = contrast + self.mpg_weight * mse
        return {"loss": loss, "mpc": contrast, "acc": acc, "mpg": mse}
