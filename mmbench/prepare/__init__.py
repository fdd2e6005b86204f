"""``python -m mmbench prepare NAME --src DIR``: the field's data sets from disk, preprocessed once.

A data set on disk is decoded and preprocessed once into a memory-mappable cache under
``$MMBENCH_CACHE`` (default ``~/.cache/mmbench``); afterwards ``--dataset NAME`` in ``run`` / ``all``
reads the cache with no other flag. The cache layout is in :mod:`mmbench.prepare.cache`.

Stable API (other preparers build on it; keep it stable)::

    from mmbench.prepare.base import Preparer, Item, Listing, PreparedCache, SkipItem, register_preparer
    from mmbench.prepare import frontends          # audio_spectrogram, folder_frames, video_frames, ...

    class MyData(Preparer):
        name = "my-data"                           # prepare NAME
        defaults = {"sample_rate": 16000, ...}     # every setting, papers' defaults
        datasets = {"my-data": "official"}         # registered data-set name -> split variant
        dataset_descriptions = {"my-data": "..."}  # one line each for `mmbench list datasets`
        parallel = True                            # False: process() runs in the main process
        def modalities(self, settings) -> list[ModalitySpec]: ...
        def list_items(self, src, settings) -> Listing: ...      # raise naming a missing file / bad label
        def process(self, item, settings) -> dict[str, np.ndarray]: ...   # raise SkipItem(reason, detail)
        def split(self, variant, cache: PreparedCache, seed) -> dict[str, np.ndarray]: ...
    register_preparer(MyData())                    # at import of the module

then add the module's import path to :data:`BUILTIN` below. Its ``datasets`` are registered as data
sets (loaders reading the memmaps, :mod:`mmbench.data.prepared`) at the first data-set lookup.

Functions: :func:`mmbench.prepare.run.prepare` (the command's work, returns a ``PrepareReport``),
:func:`mmbench.prepare.cache.find_cache` / ``read_cache``, and
:func:`mmbench.prepare.cache.cache_fingerprint` (``"<settings hash>-<content hash>"`` of the cache a
data set reads, ``None`` for a data set not prepared from disk). The registered data sets declare
it (with the split variant and seed) as their registry fingerprint, which the run key includes
(:func:`mmbench.data.prepared.prepared_fingerprint`).
"""
from __future__ import annotations

import importlib

# Modules whose import registers a preparer. Decoders are imported lazily inside them, so importing
# these is cheap.
BUILTIN = ["mmbench.prepare.cremad", "mmbench.prepare.mosei", "mmbench.prepare.audiovisual", "mmbench.prepare.ucf101",
           "mmbench.prepare.casia_surf",
           # segmentation (per-pixel labels): mmbench.segmentation.prepared
           "mmbench.segmentation.prepare_nyuv2", "mmbench.segmentation.prepare_cityscapes"]


def load_builtin() -> None:
    """Import every built-in preparer module (registers them; idempotent)."""
    for module in BUILTIN:
        importlib.import_module(module)
