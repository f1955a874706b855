"""How the AST recipes update their weights: the paper's Adam and its
learning-rate schedule (linear warm-up, then the reference's epoch-wise step
decay); the recipes apply the rate before each optimiser step with
SpeechBrain's ``update_learning_rate``.

Authors
 * speechbrain-ast developers
"""

import torch

__all__ = ["make_optimizer", "WarmupStepDecay"]

# devices with PyTorch's fused Adam kernel for every floating dtype we train in
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_optimizer(params, lr, weight_decay=5e-7, betas=(0.95, 0.999)):
    """The paper's optimiser: Adam, betas (0.95, 0.999), weight decay 5e-7.

    It is PyTorch's fused Adam (one kernel for all parameters) when every
    parameter is a floating-point tensor on the CPU or a CUDA GPU: the same
    update to float rounding, and on the CPU several times faster than the
    default per-parameter loop (AST-Base: ~0.1 s instead of 0.4-0.8 s per
    step, a one-off timing on 2 cores). Elsewhere it is the default Adam.

    Arguments
    ---------
    params : iterable
        Parameters (or parameter groups).
    lr : float
        Base learning rate (before warm-up and decay).
    weight_decay : float
    betas : tuple of float

    Returns
    -------
    torch.optim.Adam

    Example
    -------
    >>> opt = make_optimizer(torch.nn.Linear(2, 2).parameters(), lr=1e-5)
    >>> opt.defaults["betas"], opt.defaults["weight_decay"]
    ((0.95, 0.999), 5e-07)
    >>> opt.defaults["fused"]
    True
    """

    def as_list(group_params):
        """A tensor, or an iterable of them, as a list."""
        if isinstance(group_params, torch.Tensor):
            return [group_params]
        return list(group_params)

    # read here, so materialised once: parameter groups (dicts) or one
    # group of plain parameters, as torch.optim takes them
    params = as_list(params)
    if params and isinstance(params[0], dict):
        params = [dict(g, params=as_list(g["params"])) for g in params]
        tensors = [p for group in params for p in group["params"]]
    else:
        tensors = params
    fused = bool(tensors) and all(
        p.is_floating_point() and p.device.type in _FUSED_ADAM_DEVICES
        for p in tensors
    )
    return torch.optim.Adam(
        params,
        lr=lr,
        weight_decay=weight_decay,
        betas=tuple(betas),
        fused=fused or None,
    )


class WarmupStepDecay:
    """Learning-rate schedule of the reference: warm-up, then step decay.

    ``lr(epoch, step) = lr * warmup(step) * decay_factor ** k(epoch)``, where
    ``warmup(step) = min(1, step / warmup_steps)`` for the global optimiser
    step (1-based; no warm-up when ``warmup_steps`` is 0), and ``k(epoch)``
    is the number of milestones ``decay_start, decay_start + decay_every,
    ...`` that are ``<= epoch - 1`` - exactly what the reference's
    ``MultiStepLR(range(start, 1000, every), gamma=factor)``, stepped after
    every (1-based) epoch, gives during that epoch. ESC-50: start 5, every
    1, factor 0.85 -> epochs 1-5 at ``lr``, epoch 6 at ``0.85 * lr``.

    It is stateless: the recipes set the learning rate before every
    optimiser step from the epoch and the Brain's checkpointed
    ``optimizer_step``, so a resumed run follows the same schedule.

    Not one of ``speechbrain.nnet.schedulers``: their ``StepScheduler``
    decays from the first epoch on (no start epoch, no warm-up) and
    ``LinearWarmupScheduler`` decays linearly after its warm-up.

    Arguments
    ---------
    lr : float
        Base learning rate.
    warmup_steps : int
        Linear warm-up length in optimiser steps (AudioSet: 1000), 0 = none.
    decay_start : int
        First milestone epoch of the step decay.
    decay_every : int
        Milestone spacing in epochs.
    decay_factor : float
        Multiplier per milestone (1.0 = no decay).

    Example
    -------
    >>> sched = WarmupStepDecay(1.0, decay_start=5, decay_factor=0.5)
    >>> [sched(epoch) for epoch in (1, 5, 6, 7)]
    [1.0, 1.0, 0.5, 0.25]
    >>> WarmupStepDecay(1.0, warmup_steps=10)(1, step=5)
    0.5
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> WarmupStepDecay(1.0, warmup_steps=10).apply(opt, 1, step=5)
    0.5
    >>> opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(
        self,
        lr,
        warmup_steps=0,
        decay_start=5,
        decay_every=1,
        decay_factor=1.0,
    ):
        if decay_every < 1 or warmup_steps < 0:
            raise ValueError(
                f"decay_every must be >= 1 (got {decay_every}) and "
                f"warmup_steps >= 0 (got {warmup_steps})"
            )
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.decay_start = decay_start
        self.decay_every = decay_every
        self.decay_factor = decay_factor

    def decay_count(self, epoch):
        """Number of decays applied during ``epoch`` (1-based)."""
        passed = epoch - 1 - self.decay_start
        return 0 if passed < 0 else passed // self.decay_every + 1

    def __call__(self, epoch, step=None):
        """The learning rate for ``epoch`` (1-based) at optimiser ``step``."""
        lr = self.lr * self.decay_factor ** self.decay_count(epoch)
        if step is not None and self.warmup_steps > 0:
            lr *= min(1.0, step / self.warmup_steps)
        return lr

    def apply(self, optimizer, epoch, step):
        """Sets every parameter group's learning rate for this step, as
        SpeechBrain's ``NoamScheduler`` does: silently, where
        ``speechbrain.nnet.schedulers.update_learning_rate`` would log a
        line at each warm-up step.

        Arguments
        ---------
        optimizer : torch.optim.Optimizer
        epoch : int
            The current epoch (1-based).
        step : int
            The optimiser step about to be taken (1-based).

        Returns
        -------
        float
            The learning rate set.
        """
        lr = self(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
