r"""Synthetic Gaussian modalities with a known signal-to-noise ratio and a closed-form optimum.

Model, per modality m (with M modalities, C classes, dimension D):

    y ~ uniform{0..C-1} (balanced: exactly n/C per class up to one),
    x_m = mu_{m,y} + sigma_m * eps,   eps ~ N(0, I_D), independent across modalities given y.

The class means mu_{m,c} are drawn once from the seed: random directions scaled to norm
snr_m * sigma_m, so ``snr_m`` = ||mu|| / sigma_m sets how informative modality m is, whatever its
noise level sigma_m (``noise_std``).

Bayes-optimal fusion. The class-conditionals are Gaussian with a shared isotropic covariance
sigma_m^2 I per modality and the modalities are conditionally independent, so

    log p(y=c | x) = log pi_c + sum_m [ (mu_{m,c} . x_m) / sigma_m^2 - ||mu_{m,c}||^2 / (2 sigma_m^2) ] + const,

a sum of per-modality linear scores weighted by the inverse noise variances 1/sigma_m^2. A missing
modality is marginalised exactly by dropping its term. :func:`bayes_optimal_logits` computes this
on raw (not standardised) inputs, so a model's accuracy can be compared with the optimum.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.registry import register_dataset
from mmbench.data.splits import stratified_split


def _per_modality(value, m: int, what: str) -> np.ndarray:
    arr = np.full(m, float(value)) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if arr.shape != (m,):
        raise ValueError(f"{what} needs one value per modality ({m}), got {value}")
    return np.array(arr)


def make_synthetic(num_modalities: int = 2, num_classes: int = 4, dim: int = 16,
                   snr: Sequence[float] = (2.0, 0.5), n: int = 1200, seed: int = 0,
                   noise_std: Union[float, Sequence[float]] = 1.0, split_seed: int = 0,
                   name: str = "synthetic") -> MultimodalDataset:
    """Sample the Gaussian multimodal data set described in the module docstring.

    Args:
        num_modalities: M; modalities are named ``m0 .. m{M-1}``, each a vector ``(dim,)``.
        num_classes: C.
        dim: D, per-modality dimension.
        snr: per-modality ||mu_{m,c}|| / sigma_m (length M; a scalar is used for all).
        n: number of samples.
        seed: draws the class means, labels and noise.
        noise_std: sigma_m (scalar or length M).
        split_seed: seed of the stratified 60/20/20 split.

    Returns:
        arrays ``{"m<k>": float32 [n, dim]}``, labels int64 ``[n]``; ``meta`` holds ``means``
        (float64 ``[M, C, D]``), ``noise_std`` ``[M]``, ``snr`` ``[M]``, ``priors`` ``[C]``, ``seed``.
    """
    snr = _per_modality(snr, num_modalities, "snr")
    sigma = _per_modality(noise_std, num_modalities, "noise_std")
    if (sigma <= 0).any() or (snr < 0).any():
        raise ValueError(f"need noise_std > 0 and snr >= 0, got {sigma}, {snr}")
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(num_modalities, num_classes, dim))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    means = directions * (snr * sigma)[:, None, None]
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    names = [f"m{k}" for k in range(num_modalities)]
    arrays = {
        nm: (means[k][labels] + sigma[k] * rng.normal(size=(n, dim))).astype(np.float32)
        for k, nm in enumerate(names)
    }
    priors = np.bincount(labels, minlength=num_classes) / n
    return MultimodalDataset(
        name=name, specs=[ModalitySpec(nm, "vector", (dim,)) for nm in names], arrays=arrays,
        labels=labels, num_classes=num_classes, split=stratified_split(labels, seed=split_seed),
        source="synthetic Gaussian modalities (mmbench.data.synthetic)",
        meta={"means": means, "noise_std": sigma, "snr": snr, "priors": priors, "seed": seed,
              "modality_names": names},
    )


def bayes_optimal_logits(dataset_or_params: Union[MultimodalDataset, Mapping],
                         arrays: Union[Mapping[str, np.ndarray], Sequence[np.ndarray]],
                         modalities: Optional[Sequence[str]] = None) -> np.ndarray:
    """Log-posteriors (up to a per-sample constant) of the Bayes-optimal fused classifier.

    Args:
        dataset_or_params: a data set from :func:`make_synthetic` or its ``meta`` dict (``means``
            ``[M, C, D]``, ``noise_std`` ``[M]``, optional ``priors`` ``[C]`` and ``modality_names``).
        arrays: raw (unstandardised) inputs, ``{name: [N, D]}`` or a list in modality order. A
            modality absent from a dict is treated as missing (its term dropped: exact marginalisation).
        modalities: use only these modalities (e.g. ``["m0"]`` for the unimodal optimum).

    Returns:
        float64 ``[N, C]``: sum over used m of (x_m . mu_{m,c}) / sigma_m^2 - ||mu_{m,c}||^2 / (2 sigma_m^2),
        plus log prior; argmax is the Bayes decision.
    """
    params = dataset_or_params.meta if isinstance(dataset_or_params, MultimodalDataset) else dataset_or_params
    means = np.asarray(params["means"], dtype=np.float64)
    sigma = np.asarray(params["noise_std"], dtype=np.float64)
    names = list(params.get("modality_names") or [f"m{k}" for k in range(means.shape[0])])
    if not isinstance(arrays, Mapping):
        arrays = dict(zip(names, arrays))
    use = names if modalities is None else list(modalities)
    for nm in use:
        if nm not in names:
            raise ValueError(f"unknown modality {nm!r}; known: {', '.join(names)}")
    present = [nm for nm in use if nm in arrays]
    if not present:
        raise ValueError("no modality to compute the logits from")
    n = np.asarray(arrays[present[0]]).shape[0]
    priors = np.asarray(params.get("priors", np.full(means.shape[1], 1.0 / means.shape[1])), dtype=np.float64)
    logits = np.tile(np.log(priors), (n, 1))
    for nm in present:
        k = names.index(nm)
        x = np.asarray(arrays[nm], dtype=np.float64).reshape(n, -1)
        mu, var = means[k], sigma[k] ** 2
        logits += x @ mu.T / var - 0.5 * (mu ** 2).sum(axis=1) / var
    return logits


register_dataset("synthetic", lambda **kw: make_synthetic(**{"name": "synthetic", **kw}),
                 description="Gaussian toy: 2 vector modalities, SNR 2.0 (strong) and 0.5 (weak), 4 classes, 1200")
register_dataset("synthetic-3", lambda **kw: make_synthetic(**{"num_modalities": 3, "snr": (2.0, 1.0, 0.5),
                                                                 "name": "synthetic-3", **kw}),
                 description="Gaussian toy: 3 vector modalities, SNR 2.0 / 1.0 / 0.5, 4 classes, 1200")
