"""``python -m mmbench run`` for a segmentation data set (the ``run`` command hands such runs here).

Same options, store and output folder as a classification run; the printed summary is mIoU and pixel
accuracy per modality combination (RGB, depth, both), their mean and worst.
"""
from __future__ import annotations

import json
import sys


def execute(args) -> int:
    """Run (or fetch from the cache) one segmentation run described by the ``run`` command's ``args``."""
    from mmbench.config import RunSpec, parse_overrides
    from mmbench.output_dirs import announce, run_out
    from mmbench.patterns import get_pattern
    from mmbench.runner import Runner
    from mmbench.segmentation.methods import get_segmentation_method
    from mmbench.segmentation.runner import check_segmentation_spec
    from mmbench.segmentation.settings import resolve_segmentation

    # Names and settings up front: a typo is an error naming what is supported, not a "failed" run.
    method_cls = get_segmentation_method(args.method, args.dataset)
    get_pattern(args.pattern)
    spec = RunSpec(args.method, args.dataset, args.pattern, args.seed, parse_overrides(args.set))
    check_segmentation_spec(spec)
    # an unprepared data set (nyuv2, cityscapes) is an error naming `prepare`, not a stored failed run
    __import__("mmbench.data_check", fromlist=["check_datasets"]).check_datasets([spec.dataset])
    train, _ = resolve_segmentation(spec, method_cls)
    explicit, args.out = args.out is not None, args.out or run_out()
    runner = Runner(args.out)
    cached = not args.force and runner.store.is_done(spec.key())
    if not cached:
        __import__("mmbench.env_errors", fromlist=["check_writable"]).check_writable(args.out)
    epochs = int(train["epochs"])

    def progress(epoch: int, record: dict) -> None:
        print(f"  {spec.label()}: epoch {epoch + 1}/{epochs}  train loss {record['loss']:.4f}  "
              f"val mIoU {record['val']:.4f}", file=sys.stderr, flush=True)

    if not cached and not args.quiet:
        if not explicit:
            print(announce(args.out, explicit), file=sys.stderr, flush=True)
        print(f"training {spec.label()} (segmentation, {epochs} epoch{'s' if epochs != 1 else ''})",
              file=sys.stderr, flush=True)
    result = runner.run(spec, force=args.force, progress=None if args.quiet else progress)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0 if result["status"] == "ok" else 1
    where = runner.store.run_path(result["key"])
    print(f"{spec.label()}: {result['status']} ({'cached' if cached else 'stored'} in {where})")
    if result["status"] != "ok":
        print(result.get("error", ""))
        return 1
    m = result["metrics"]
    order = ("rgb", "depth", "rgb+depth")
    print("  mIoU       " + "  ".join(f"{k} {m['subset_miou'][k]:.4f}" for k in order)
          + f"  mean {m['miou_mean']:.4f}  worst {m['miou_worst']:.4f}")
    print("  pixel acc  " + "  ".join(f"{k} {m['subset_pixel_acc'][k]:.4f}" for k in order)
          + f"  mean {m['pixel_acc_mean']:.4f}  worst {m['pixel_acc_worst']:.4f}")
    if "masked_test_miou" in m:
        print(f"  masked test mIoU {m['masked_test_miou']:.4f}")
    print(f"  best epoch {m['best_epoch']}, val mIoU {m['val_selection']:.4f}")
    return 0
