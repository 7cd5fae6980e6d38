"""Data-parallel training across processes: what ``torchrun ... -m condgan_lib.train`` adds to a run.

    torchrun --standalone --nproc_per_node N -m condgan_lib.train --config NAME [options]

Each process (rank) holds a full copy of G and D, wrapped in ``DistributedDataParallel`` (Li et al., 2020): NCCL on
CUDA, gloo on the CPU. The rules this library follows:

- ``cfg.batch_size`` is the **global** batch. Every rank draws the same global batch of images, noise and labels
  from the same seeded generators and keeps its own slice of ``batch_size / N`` rows, so the ranks see disjoint
  shards of the data and together see exactly the batches of a one-process run. Learning rates therefore do not
  change with N; growing the global batch is a separate, explicit decision (``--batch-size`` with
  ``--set lr_scaling=sqrt``, the square-root rule for Adam of Malladi et al., 2022, after a warm-up).
- Gradients are averaged over ranks by DDP's all-reduce; every rank then takes the same optimiser step.
- Batch norm (the generator's, and the DCGAN discriminators') normalises with statistics of the global batch:
  ``nn.SyncBatchNorm`` on CUDA, ``GlobalBatchNorm2d`` below on the CPU (PyTorch's SyncBatchNorm is GPU-only).
- Buffers, among them spectral norm's power-iteration vector ``u``, are broadcast from rank 0 at every forward
  pass by DDP (``broadcast_buffers=True``). The ranks compute identical ``u`` anyway, as their weights are equal.
- Rank 0 alone keeps the EMA generator, logs, evaluates and writes checkpoints; on ``--resume`` it reads the newest
  checkpoint and broadcasts it, so other machines need no shared file system.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    """Number of processes in the run (1 without ``torchrun``)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's global rank (0 without ``torchrun``)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on the process that logs, evaluates and writes files."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """``torchrun`` sets ``WORLD_SIZE``; a plain ``python -m`` does not."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str) -> str:
    """Join the process group ``torchrun`` describes in the environment; returns this rank's device.

    NCCL for CUDA (one GPU per process, chosen by ``LOCAL_RANK``), gloo for the CPU.
    """
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", init_method="env://", device_id=torch.device("cuda", local))
        return f"cuda:{local}"
    dist.init_process_group("gloo", init_method="env://")
    return device


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def backend() -> str:
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else "none"


def shard(t: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch: rows ``[rank * b, (rank + 1) * b)`` with ``b = len(t) / world``."""
    n = world_size()
    if n == 1:
        return t
    b = t.shape[0] // n
    return t[rank() * b:(rank() + 1) * b]


def check_global_batch(batch_size: int) -> int:
    """The per-rank batch; a clear error when the global batch does not split evenly over the ranks."""
    n = world_size()
    if batch_size % n:
        raise ValueError(f"the global batch {batch_size} does not split evenly over {n} processes; "
                         f"use a multiple of {n} (--batch-size)")
    return batch_size // n


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The average of ``t`` over ranks (a copy; ``t`` itself is unchanged)."""
    if world_size() == 1:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / world_size()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (pickled; for checkpoints at resume)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce of the gradient: every rank's loss depends on the sum."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks, differentiable."""
    return _SumOverRanks.apply(t)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the global batch on the CPU: per-channel sums are all-reduced across ranks.

    Two passes (the mean, then the mean squared deviation), each one all-reduce of about ``C`` numbers. The
    all-reduce is differentiable (``sum_over_ranks``): its backward all-reduces the gradient, so every rank's input
    receives the gradient through the global batch's statistics, as in ``nn.SyncBatchNorm``. Outside training, or in
    one process, it is an ordinary ``BatchNorm2d`` (same parameters and buffers: checkpoints are interchangeable).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        count = x.new_full((1,), x.numel() // c)
        total = sum_over_ranks(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = total[c]
        mean = total[:c] / n
        centred = x - mean[None, :, None, None]
        var = sum_over_ranks((centred * centred).sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def sync_batch_norm(module: nn.Module, device: str) -> nn.Module:
    """Every ``BatchNorm2d`` in ``module`` normalised over the global batch (SyncBatchNorm on CUDA, else ours)."""
    if device.startswith("cuda"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            sync_batch_norm(child, device)
    return module


def wrap(module: nn.Module, device: str) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` (one device per process); unchanged in a single process."""
    if world_size() == 1:
        return module
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=True)
