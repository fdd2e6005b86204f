"""The papers' ``RandomResizedCrop`` drawn in a frame's *original* geometry, cut from its stored copy.

The released CREMA-D loader (OGM-GE ``CramedDataset``, also PMR, ARL, DGL) trains on
``RandomResizedCrop(224)`` + ``RandomHorizontalFlip`` of the frame as extracted from the video
(480 x 360), then ``ToTensor`` and ImageNet ``Normalize``. A ``prepare`` cache stores the frame
already resized to 224 x 224 (the test transform), which squashes it horizontally by 480/360 = 4/3
relative to the vertical. The same crop drawn on the stored frame (``crop_geometry=stored``) has its
area fraction right but its aspect-ratio range [3/4, 4/3] in *stored* pixels, which is [1, 16/9] in
original pixels, and its positions on a 224 x 224 grid.

:class:`OriginalGeometryCrop` (``crop_geometry=original``) draws the crop exactly as the released
transform does on the original frame (torchvision's own ``RandomResizedCrop.get_params`` on a
stand-in of the original size: the same box in original pixels, from the same draws of torch's
generator), maps the box to the stored frame's coordinates (x by ``W_s / W_0``, y by ``H_s / H_0``,
fractional) and resamples that region bilinearly to the output size. What remains different from
the released transform is resolution, not geometry: the region is cut from the 224 x 224 copy, not
from the 480 x 360 original, so a crop smaller than the stored frame is enlarged from fewer pixels
(the released one from up to 2.1 x more horizontally, 1.6 x vertically), and the released values
are rounded to uint8 after the resize (at most 0.5 / 255 / 0.225 = 0.0087 in normalised units). The
side-by-side test (``tests/mmbench/test_frame_crop.py``) and ``docs/data-pipelines.md`` give the
measured difference.

Frames stacked as ``[T, 3, H, W]`` share one draw (mmbench's convention for every RGB stack); the
released loaders draw per frame, which is the same for CREMA-D's one frame (``n_frames=1``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Tuple

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: ``prepare``'s settings check imports this module, and listing
# the data sets must not import torch.

#: ``crop_geometry=`` settings of a prepared data set with RGB frames (``mmbench.prepare.cremad``).
CROP_GEOMETRIES = ("original", "stored")
#: torchvision's ``RandomResizedCrop`` defaults, which the released loaders use.
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def parse_frame_size(text: str) -> Tuple[int, int]:
    """``"480x360"`` (width x height, as video sizes are written) -> ``(height, width)`` = ``(360, 480)``.

    Raises:
        ValueError: not two positive integers joined by ``x``.
    """
    parts = str(text).lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        width = height = 0
    if len(parts) != 2 or width <= 0 or height <= 0:
        raise ValueError(f"frame_size={text!r}: expected WIDTHxHEIGHT in pixels, e.g. 480x360")
    return height, width


def check_crop_geometry(geometry: str) -> str:
    if geometry not in CROP_GEOMETRIES:
        raise ValueError(f"crop_geometry={geometry!r}: expected one of {', '.join(CROP_GEOMETRIES)}")
    return geometry


class OriginalGeometryCrop:
    """``RandomResizedCrop`` of the original ``frame_size`` frame, taken from its stored resized copy.

    Args:
        out_size: ``(h, w)`` of the output (the stored size: the cache's frames are what the model reads).
        frame_size: ``(H_0, W_0)`` of the original frame the released transform crops.
        scale, ratio: ``RandomResizedCrop``'s area-fraction and aspect-ratio ranges (in original pixels).

    A class (not a closure) so that DataLoader workers started with ``spawn`` can unpickle it.
    """

    def __init__(self, out_size: Sequence[int], frame_size: Sequence[int], scale=SCALE, ratio=RATIO):
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        if min(self.out_size) <= 0 or min(self.frame_size) <= 0:
            raise ValueError(f"OriginalGeometryCrop: sizes must be positive, got out_size={self.out_size}, "
                             f"frame_size={self.frame_size}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def params(self) -> Tuple[int, int, int, int]:
        """``(top, left, height, width)`` in original pixels, drawn from torch's global generator by
        torchvision's ``RandomResizedCrop.get_params`` exactly as the released transform draws them
        on a PIL image of the original size (a zero-stride stand-in: only its size is read)."""
        import torch
        from torchvision.transforms import RandomResizedCrop

        stand_in = torch.empty(1, 1, 1).expand(1, *self.frame_size)
        return RandomResizedCrop.get_params(stand_in, list(self.scale), list(self.ratio))

    def stored_box(self, params: Sequence[int], stored_size: Sequence[int]) -> Tuple[float, float, float, float]:
        """The original-pixel box ``params`` in the stored frame's (fractional) pixel coordinates."""
        top, left, height, width = params
        sy, sx = stored_size[0] / self.frame_size[0], stored_size[1] / self.frame_size[1]
        return top * sy, left * sx, height * sy, width * sx

    def crop(self, x: "torch.Tensor", params: Sequence[int]) -> "torch.Tensor":
        """The region ``params`` (original pixels) of the stored frames ``x`` ``[..., C, H_s, W_s]``,
        resampled bilinearly to ``[..., C, *out_size]``.

        What the released ``crop`` + ``resize`` does, located on the stored frame. In continuous
        original coordinates (pixel k covers [k, k + 1)), output row r of a crop of rows [top, top + h)
        samples ``u = top + (r + 0.5) h / out_h`` (half-pixel centres, as Pillow's resize and
        ``interpolate(align_corners=False)``), clamped to the crop's own first and last pixel centres
        ``[top + 0.5, top + h - 0.5]`` (the resize sees the cropped image only, so it repeats its edge);
        that point is row ``u * H_s / H_0 - 0.5`` of the stored frame (likewise along x), read bilinearly.
        """
        import torch
        import torch.nn.functional as F

        h_s, w_s = x.shape[-2:]
        top, left, height, width = (float(v) for v in params)
        out_h, out_w = self.out_size
        dtype = x.dtype if x.is_floating_point() else torch.float32

        def positions(start: float, length: float, out: int, stored: int, original: int):
            u = start + (torch.arange(out, dtype=torch.float64) + 0.5) * (length / out)
            u = u.clamp(start + 0.5, start + length - 0.5)
            index = u * (stored / original) - 0.5
            return ((2 * index + 1) / stored - 1).to(dtype)  # grid_sample's normalised coordinate

        gy = positions(top, height, out_h, h_s, self.frame_size[0])
        gx = positions(left, width, out_w, w_s, self.frame_size[1])
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)  # [h, w, (x, y)]
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:]).to(dtype)
        # padding_mode="border": a point past the stored frame's outer pixel centres reads that pixel
        out = F.grid_sample(flat, grid.unsqueeze(0).expand(flat.shape[0], -1, -1, -1).to(x.device),
                            mode="bilinear", padding_mode="border", align_corners=False)
        return out.reshape(*lead, *out.shape[-3:])

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        """``x`` ``[..., C, H_s, W_s]`` (stored frames, one draw for all of them) -> ``[..., C, *out_size]``."""
        return self.crop(x, self.params())
