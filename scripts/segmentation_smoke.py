"""Train the ESANet-style network on the procedural RGB-D scenes for a few steps and print mIoU per
modality combination -- a smoke test of the segmentation path end to end (data, class weights, model,
class-weighted loss, evaluation), not a benchmark result. Not part of any suite or run key.

    python scripts/segmentation_smoke.py --steps 150 --size 32 --dropout 0.0
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from mmbench.segmentation.class_weights import median_frequency_weights
from mmbench.segmentation.esanet import ESANetRGBD
from mmbench.segmentation.evaluate import evaluate_combinations, weighted_cross_entropy
from mmbench.segmentation.procedural import NUM_CLASSES, make_procedural_rgbd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train", type=int, default=128, help="train scenes")
    parser.add_argument("--test", type=int, default=32, help="test scenes")
    parser.add_argument("--block", default="nbt1d", choices=["nbt1d", "basic"])
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="per-sample chance of dropping one modality while training (0: always both)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train = make_procedural_rgbd(args.train, args.size, seed=1000 + args.seed)
    test = make_procedural_rgbd(args.test, args.size, seed=2000)
    weights = median_frequency_weights([train["labels"]], NUM_CLASSES)
    model = ESANetRGBD(NUM_CLASSES, block=args.block)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, args.train, (args.batch,))
        present = torch.ones(args.batch, 2, dtype=torch.long)
        drop = torch.rand(args.batch) < args.dropout
        present[drop, torch.randint(0, 2, (int(drop.sum()),))] = 0
        loss = weighted_cross_entropy(model(train["rgb"][idx], train["depth"][idx], present), train["labels"][idx], weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    batches = [(test["rgb"][i:i + 16], test["depth"][i:i + 16], test["labels"][i:i + 16]) for i in range(0, args.test, 16)]
    out = evaluate_combinations(model, batches, NUM_CLASSES)
    print(json.dumps({"class_weights": [round(w, 3) for w in weights.tolist()],
                      "miou": {k: round(v["miou"], 3) for k, v in out["per_combination"].items()},
                      "miou_mean": round(out["miou_mean"], 3), "miou_worst": round(out["miou_worst"], 3),
                      "seconds": round(time.time() - start)}))


if __name__ == "__main__":
    main()
