"""Is training input-bound? Time BatchLoader (+ augmentation) per batch against one training step.

For each setting, the data pipeline (index, normalise, crop/flip/cutout on the device) is timed
per batch and compared with a forward + backward + SGD step of a small conv net on the same batch.
The bar (PRODUCT.md section 7): the pipeline takes well under 10% of a step.

    PYTHONPATH=src python benchmarks/bench_data.py [--device cuda] [--threads 2] [--batches 30]

Prints a table and writes benchmarks/results/bench_data.json (peak memory beside time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from nascli.data import AugmentSpec, BatchLoader, load_dataset

# (label, dataset, options, batch size, augmentation)
SETTINGS = [
    ("mnist5k 28x28x1", "mnist5k", {}, 64, AugmentSpec(crop_padding=2)),
    # CIFAR-sized stand-in (no downloads here); the NASNet CIFAR recipe: crop 4, flip, cutout 16.
    (
        "synthetic 32x32x3",
        "synthetic",
        {"num_samples": 4096},
        128,
        AugmentSpec(crop_padding=4, flip=True, cutout=16),
    ),
]


def small_convnet(in_channels: int, num_classes: int, width: int = 16) -> nn.Module:
    """Three conv-BN-ReLU stages (C, 2C, 4C), two max-pools, global pool, linear."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, c in enumerate((width, 2 * width, 4 * width)):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds per call, ``repeats`` calls after two warm-up calls."""
    out = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            out.append(time.perf_counter() - t)
    return out


def bench_setting(
    label: str, name: str, options: dict, batch: int, spec: AugmentSpec, args: argparse.Namespace
) -> dict[str, object]:
    device = torch.device(args.device)
    data = load_dataset(name, **options)
    gen = torch.Generator().manual_seed(0)
    rows: dict[str, object] = {"setting": label, "batch_size": batch, "augment": vars(spec)}

    def data_ms(augment: AugmentSpec | None) -> float:
        loader = BatchLoader(
            data.train,
            batch,
            shuffle=True,
            augment=augment,
            device=device,
            generator=gen,
            drop_last=True,
            channels_last=args.channels_last,
        )
        it = iter(loader)

        def next_batch() -> None:
            nonlocal it
            try:
                next(it)
            except StopIteration:  # a new epoch: a new permutation, as in training
                it = iter(loader)
                next(it)

        return summary(timed(next_batch, args.batches, device))

    rows["data_ms"] = data_ms(None)
    rows["data_aug_ms"] = data_ms(spec)

    torch.manual_seed(0)
    model = small_convnet(data.in_channels, data.num_classes).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = next(
        iter(BatchLoader(data.train, batch, device=device, channels_last=args.channels_last))
    )

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    rows["step_ms"] = summary(timed(step, args.batches, device))
    rows["params"] = sum(p.numel() for p in model.parameters())
    rows["ratio"] = {k: rows["data_aug_ms"][k] / rows["step_ms"][k] for k in ("median", "p10")}
    return rows


def summary(seconds: list[float]) -> dict[str, float]:
    """Median and 10th percentile in ms; on a shared machine p10 is closer to the true cost."""
    ms = sorted(1e3 * s for s in seconds)
    return {"median": statistics.median(ms), "p10": ms[len(ms) // 10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: keep default)")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_data.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = [bench_setting(*s, args) for s in SETTINGS]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    table = Table(
        title=f"data pipeline vs training step ({args.device}, {torch.get_num_threads()} threads)"
    )
    for col in ("setting", "batch", "data ms", "data+aug ms", "step ms", "data+aug / step"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for r in results:
        table.add_row(
            r["setting"],
            str(r["batch_size"]),
            *(f"{r[k]['median']:.3f} ({r[k]['p10']:.3f})" for k in ("data_ms", "data_aug_ms")),
            f"{r['step_ms']['median']:.1f} ({r['step_ms']['p10']:.1f})",
            f"{100 * r['ratio']['median']:.1f}% ({100 * r['ratio']['p10']:.1f}%)",
        )
    console = Console()
    console.print(table)
    console.print("median (10th percentile) over the timed batches")
    console.print(f"peak resident memory: {peak_mb:.0f} MiB; load average: {os.getloadavg()}")

    report = {
        "benchmark": "bench_data",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "peak_rss_mib": round(peak_mb, 1),
        "results": results,
    }
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name()
        report["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
