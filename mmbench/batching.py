"""Split tensors and mini-batches.

The embedded data sets are small (thousands of samples), so each split lives as whole tensors on
the run's device and batches are index slices: no DataLoader workers, no per-sample Python.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from mmbench.data.base import MultimodalDataset


@dataclass
class Batch:
    """One mini-batch.

    Attributes:
        inputs: modality -> ``[B, *shape]`` float tensor (raw inputs; missing ones are handled by
            the model according to ``mask``).
        labels: ``[B]`` int64.
        mask: ``[B, M]`` float, 1 where modality m is present for the sample, in modality order.
        index: ``[B]`` int64 positions of the samples inside their split (for per-sample state).
        modalities: modality names, in order.
    """

    inputs: Dict[str, torch.Tensor]
    labels: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor
    modalities: Tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def with_mask(self, mask: torch.Tensor) -> "Batch":
        """The same batch with another ``[B, M]`` (or broadcastable ``[M]``) presence mask."""
        return replace(self, mask=mask.to(self.mask).expand_as(self.mask).contiguous())

    def only(self, modalities: Sequence[str]) -> "Batch":
        """The same batch with only ``modalities`` present (the others missing for every sample)."""
        keep = torch.tensor([m in modalities for m in self.modalities], dtype=self.mask.dtype, device=self.mask.device)
        return self.with_mask(self.mask * keep)


class SplitTensors:
    """The tensors of one split, with batch iteration.

    Args:
        data: the data set.
        split: ``"train" | "val" | "test"``.
        device: where the tensors live.
    """

    def __init__(self, data: MultimodalDataset, split: str, device: torch.device | str = "cpu"):
        idx = data.split[split]
        self.modalities: Tuple[str, ...] = tuple(data.modalities)
        self.inputs = {m: torch.as_tensor(data.arrays[m][idx], device=device) for m in self.modalities}
        self.labels = torch.as_tensor(data.labels[idx], device=device)
        self.num_samples = int(self.labels.shape[0])
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.num_samples

    def batch(self, index: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Batch:
        """Gather the samples at ``index`` ``[B]``; ``mask`` is the split-wide ``[N, M]`` presence mask."""
        index = index.to(self.device)
        rows = mask[index] if mask is not None else torch.ones(len(index), len(self.modalities), device=self.device)
        return Batch(
            inputs={m: x[index] for m, x in self.inputs.items()},
            labels=self.labels[index],
            mask=rows,
            index=index,
            modalities=self.modalities,
        )

    def iterate(
        self,
        batch_size: int,
        mask: Optional[torch.Tensor] = None,
        shuffle: bool = False,
        generator: Optional[torch.Generator] = None,
        drop_last: bool = False,
        shard: Tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        """Yield batches over the split. Evaluation never drops samples (``drop_last=False``).

        ``shard=(rank, world)``: keep only this process's contiguous part of each (global) batch.
        """
        order = torch.randperm(self.num_samples, generator=generator) if shuffle else torch.arange(self.num_samples)
        stop = self.num_samples - (self.num_samples % batch_size if drop_last else 0)
        rank, world = shard
        for start in range(0, stop, batch_size):
            chunk = order[start : start + batch_size].tensor_split(world)[rank]
            if len(chunk) == 0:
                break
            yield self.batch(chunk, mask)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return self.num_samples // batch_size if drop_last else -(-self.num_samples // batch_size)


def all_subsets(modalities: Sequence[str]) -> List[Tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, largest first, in modality order within a subset."""
    n = len(modalities)
    subsets = [tuple(m for i, m in enumerate(modalities) if code >> i & 1) for code in range(1, 2**n)]
    return sorted(subsets, key=lambda s: (-len(s), [modalities.index(m) for m in s]))


def subset_name(subset: Sequence[str]) -> str:
    return "+".join(subset)
