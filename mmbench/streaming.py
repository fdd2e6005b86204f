"""Streamed splits: a ``torch.utils.data.DataLoader`` over per-sample arrays (``loader=stream``).

The in-memory path (:class:`mmbench.batching.SplitTensors`) holds every split as tensors on the
device, which the small embedded data sets fit. A paper-scale data set (CREMA-D frames at 224x224,
prepared as ``.npy`` memory maps) does not: here samples are read per batch by DataLoader workers
(only the touched rows of a memory map are paged in), augmented on the fly in the workers, collated
into pinned host memory and copied to the GPU with ``non_blocking=True``, so the copy overlaps the
previous step.

:class:`StreamSplit` has the interface of ``SplitTensors`` (``iterate``, ``batch``, ``labels``,
``modalities``, ``device``), so the engine and the methods use either unchanged; with the same
generator both yield the same batches in the same order (tested).
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmbench.batching import Batch, SplitTensors
from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.models.resnet import import_torchvision

LOADERS = ("memory", "stream")
Transform = Callable[[torch.Tensor], torch.Tensor]


def paper_augmentation(spec: ModalitySpec, rgb: Optional[bool] = None,
                       frame_size: Optional[Tuple[int, int]] = None) -> Optional[Transform]:
    """The papers' training augmentation of one modality, or ``None``.

    RGB inputs get ``RandomResizedCrop`` back to their own size and a horizontal flip, one draw per
    sample, so all frames of a clip share the crop: video frames ``[T, 3, H, W]``, and frames stacked
    on the channel axis ``[3 * T, H, W]`` (how ``prepare`` stores CREMA-D, AVE, Kinetics-Sounds,
    VGGSound and UCF101 frames), which are cropped as ``[T, 3, H, W]`` and stacked back.
    Spectrograms are not augmented (the papers do not: a crop or a flip of a spectrogram moves
    frequencies and reverses time), nor is optical flow (a flip would need its u component negated).

    Args:
        rgb: whether the modality holds RGB frames, as its data set declares (``meta["rgb_modalities"]``
            of a prepared data set). ``None``: guessed from the spec (a video, or a 3-channel image), for
            data sets that declare nothing; a channel count cannot tell a ``[6, H, W]`` stack of two RGB
            frames from three stacked (u, v) flow fields, so prepared data sets declare it.
        frame_size: ``(H_0, W_0)`` of the original frames the stored ones were resized from, when the
            data set asks for the crop in that geometry (``meta["crop_frame_size"]``, CREMA-D's
            ``crop_geometry=original``): :class:`mmbench.frame_crop.OriginalGeometryCrop`; ``None``:
            the crop is drawn on the stored frame.
    """
    if rgb is None:
        rgb = spec.kind == "video" or (spec.kind == "image" and spec.shape[0] == 3)
    if not rgb:
        return None
    stacked = spec.kind == "image"
    if stacked and spec.shape[0] % 3:
        raise ValueError(f"modality {spec.name!r} is declared RGB but its {spec.shape[0]} channels are not "
                         "a stack of 3-channel frames [3 * T, H, W]")
    h, w = spec.shape[-2:]
    import_torchvision("augment=true")
    from torchvision.transforms import v2  # a submodule: not loaded by "import torchvision"

    if frame_size is not None:
        from mmbench.frame_crop import OriginalGeometryCrop

        crop = OriginalGeometryCrop((h, w), frame_size)
    else:
        crop = v2.RandomResizedCrop((h, w), antialias=True)
    crop_flip = v2.Compose([crop, v2.RandomHorizontalFlip()])
    if not stacked:
        return crop_flip
    return StackedFrames(crop_flip)


class StackedFrames:
    """``transform`` of ``[T, 3, H, W]`` frames applied to a ``[3 * T, H, W]`` stack (a class, not a
    lambda: DataLoader workers started with ``spawn`` receive it pickled)."""

    def __init__(self, transform: Transform):
        self.transform = transform

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[3 * T, H, W]`` -> ``[3 * T, H, W]``, the same draw for every frame."""
        return self.transform(x.reshape(-1, 3, *x.shape[-2:])).reshape(x.shape)


class ArraySamples(Dataset):
    """Map-style data set over per-modality arrays: item ``i`` is ``({m: x_m [*shape]}, label, i)``.

    Args:
        arrays: modality -> ``[N, *shape]`` array (``np.ndarray``, ``np.memmap``, a lazily standardised
            :class:`~mmbench.data.standardized_array.StandardizedArray` or anything indexable by an int
            that ``np.asarray`` reads); only row ``rows[i]`` is read for item ``i``.
        labels: int ``[N]``.
        rows: ``[n]`` the rows of this split (item ``i`` is row ``rows[i]``).
        transforms: modality -> transform of one float32 sample tensor (training augmentation).
    """

    def __init__(self, arrays: Mapping[str, object], labels, rows: Sequence[int],
                 transforms: Optional[Mapping[str, Optional[Transform]]] = None):
        self.arrays, self.labels = dict(arrays), labels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.transforms = {m: t for m, t in (transforms or {}).items() if t is not None}

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i: int) -> Tuple[Dict[str, torch.Tensor], int, int]:
        row = int(self.rows[i])
        inputs = {}
        for m, arr in self.arrays.items():
            x = torch.from_numpy(np.array(arr[row], dtype=np.float32))  # a copy: a memmap row is read-only
            inputs[m] = self.transforms[m](x) if m in self.transforms else x
        return inputs, int(self.labels[row]), i


class StreamSplit:
    """One split served by a DataLoader, with the :class:`~mmbench.batching.SplitTensors` interface.

    Args:
        samples: the split's items (an :class:`ArraySamples` or any map-style data set whose items
            are ``({modality: tensor}, label, position)``).
        modalities: modality order.
        labels: ``[N]`` labels of the split (small: kept on the device for evaluation).
        device: where batches go.
        workers: DataLoader worker processes (0: read in the training process).
        plain: the same items without augmentation, for :meth:`batch` (prototypes, statistics).
    """

    def __init__(self, samples: Dataset, modalities: Sequence[str], labels, device: torch.device | str = "cpu",
                 workers: int = 0, plain: Optional[Dataset] = None):
        if int(workers) < 0:
            raise ValueError(f"workers={workers}: expected 0 or more DataLoader worker processes")
        self.samples, self.plain = samples, plain if plain is not None else samples
        self.modalities: Tuple[str, ...] = tuple(modalities)
        self.device = torch.device(device)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=self.device)
        self.num_samples = int(self.labels.shape[0])
        self.workers = int(workers)
        self._loads = 0  # iterations started: seeds the workers' augmentation draws

    def __len__(self) -> int:
        return self.num_samples

    def _to_device(self, inputs: Dict[str, torch.Tensor], labels: torch.Tensor, pos: torch.Tensor,
                   mask: Optional[torch.Tensor]) -> Batch:
        # non_blocking: from pinned memory the copy is asynchronous and overlaps the running step.
        pos = pos.to(self.device, non_blocking=True)
        rows = mask[pos] if mask is not None else torch.ones(len(pos), len(self.modalities), device=self.device)
        return Batch(
            inputs={m: inputs[m].to(self.device, non_blocking=True) for m in self.modalities},
            labels=labels.to(self.device, non_blocking=True), mask=rows, index=pos, modalities=self.modalities,
        )

    def batch(self, index: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Batch:
        """The un-augmented samples at split positions ``index`` ``[B]``."""
        items = [self.plain[int(i)] for i in index.tolist()]
        inputs = {m: torch.stack([it[0][m] for it in items]) for m in self.modalities}
        labels = torch.tensor([it[1] for it in items], dtype=torch.int64)
        return self._to_device(inputs, labels, index.cpu().to(torch.int64), mask)

    def iterate(self, batch_size: int, mask: Optional[torch.Tensor] = None, shuffle: bool = False,
                generator: Optional[torch.Generator] = None, drop_last: bool = False,
                shard: Tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        """Batches over the split, in the order ``SplitTensors.iterate`` gives for the same generator.

        ``shard=(rank, world)`` keeps this process's contiguous part of each (global) batch.
        """
        order = torch.randperm(self.num_samples, generator=generator) if shuffle else torch.arange(self.num_samples)
        stop = self.num_samples - (self.num_samples % batch_size if drop_last else 0)
        rank, world = shard
        chunks = [order[s : s + batch_size].tensor_split(world)[rank].tolist() for s in range(0, stop, batch_size)]
        chunks = [c for c in chunks if c]
        # Worker seeds from the generator's seed and a counter: reproducible augmentation without
        # drawing from ``generator`` (which would change the next epoch's order vs the memory path).
        seed = (generator.initial_seed() if generator is not None else 0) + 1_000_003 * self._loads
        self._loads += 1
        loader = DataLoader(
            self.samples, batch_sampler=chunks, num_workers=self.workers,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(seed),
        )
        for inputs, labels, pos in loader:
            yield self._to_device(inputs, labels, pos, mask)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return self.num_samples // batch_size if drop_last else -(-self.num_samples // batch_size)


def stream_split(data: MultimodalDataset, split: str, device: torch.device | str = "cpu", workers: int = 0,
                 augment: bool = False) -> StreamSplit:
    """A :class:`StreamSplit` over ``data``'s arrays (in memory or memory-mapped) for one split."""
    rows = data.split[split]
    plain = ArraySamples(data.arrays, data.labels, rows)
    samples = plain
    if augment:
        declared = data.meta.get("rgb_modalities")  # prepared data sets say which modalities are RGB frames
        rgb = {s.name: None if declared is None else s.name in declared for s in data.specs}
        original = data.meta.get("crop_frame_size") or {}  # modality -> (H_0, W_0): crop in that geometry
        samples = ArraySamples(data.arrays, data.labels, rows,
                               {s.name: paper_augmentation(s, rgb[s.name], original.get(s.name))
                                for s in data.specs})
    return StreamSplit(samples, data.modalities, data.labels[rows], device, workers, plain=plain)


def build_splits(data: MultimodalDataset, train_cfg: Mapping, device: torch.device):
    """``(train, val, test)``: ``SplitTensors`` for ``loader=memory``, ``StreamSplit`` for ``loader=stream``
    (augmentation, if on, for the training split only)."""
    loader = train_cfg.get("loader", "memory")
    if loader == "memory":
        return tuple(SplitTensors(data, s, device) for s in ("train", "val", "test"))
    if loader != "stream":
        raise ValueError(f"loader={loader!r}: expected one of {', '.join(LOADERS)}")
    workers, augment = int(train_cfg.get("workers", 0)), bool(train_cfg.get("augment", False))
    return (stream_split(data, "train", device, workers, augment),
            stream_split(data, "val", device, workers), stream_split(data, "test", device, workers))
