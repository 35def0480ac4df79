"""How many architectures per second can each zero-cost proxy score during a search?

Search-time networks of the NASNet space (random genotypes ``NASNetSpace().sample(seed)``,
N = 1 cell per stage, 8 channels, 28x28x1 inputs, 10 classes) on the CPU, one batch of 64
MNIST digits (the embedded mnist5k set; random inputs if it is unavailable). Building a network
and scoring it are timed separately; each proxy gets one untimed warm-up call first.

    PYTHONPATH=src python benchmarks/bench_proxies.py [--archs 10] [--threads 2] [--device cpu]

Prints a table and writes benchmarks/results/bench_proxies.json (peak memory beside time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from nascli.models import build_network
from nascli.proxies import PROXIES, compute
from nascli.spaces import NASNetSpace

OUT = Path(__file__).parent / "results" / "bench_proxies.json"


def batch(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``size`` training digits (28x28x1), or random inputs when no data set loads."""
    try:
        from nascli.data import load_dataset

        train = load_dataset("mnist5k").train
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:size]
        x, y, source = train.images[idx], train.labels[idx], "mnist5k"
    except Exception as error:  # the benchmark is about proxies, not about the data layer
        print(f"mnist5k unavailable ({error}); using random inputs")
        gen = torch.Generator().manual_seed(0)
        x, y = torch.randn(size, 1, 28, 28, generator=gen), torch.randint(0, 10, (size,))
        source = "random"
    return x.float().to(device), y.long().to(device), source


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=10, help="random genotypes per proxy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1, help="cells per stage (N)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--proxies", nargs="*", default=sorted(PROXIES))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y, source = batch(args.batch, device)
    space = NASNetSpace()

    build_s, models = [], []
    for seed in range(args.archs):
        torch.manual_seed(seed)
        t = time.perf_counter()
        model = build_network(
            space.sample(seed),
            num_classes=10,
            in_channels=1,
            cells_per_stage=args.cells,
            channels=args.channels,
            stem="cifar",
        ).to(device)
        build_s.append(time.perf_counter() - t)
        models.append(model)
    build_mean = statistics.fmean(build_s)

    rows = []
    for name in args.proxies:
        compute(name, models[0], x, y)  # warm-up: first-call allocations and kernel choice
        times = []
        for model in models:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            compute(name, model, x, y)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
        score_mean = statistics.fmean(times)
        rows.append(
            {
                "proxy": name,
                "score_s_mean": score_mean,
                "score_s_median": statistics.median(times),
                "archs_per_s": 1.0 / score_mean,
                "archs_per_s_with_build": 1.0 / (score_mean + build_mean),
                "peak_rss_mib": peak_rss_mib(),
            }
        )

    table = Table(
        title=f"proxies on {args.archs} random NASNet networks "
        f"(N={args.cells}, C={args.channels}, 28x28x1, batch {args.batch}, "
        f"{args.device}, {args.threads} threads)"
    )
    for col in ("proxy", "score ms", "archs/s", "archs/s incl. build", "peak RSS MiB"):
        table.add_column(col, justify="left" if col == "proxy" else "right")
    for r in rows:
        table.add_row(
            r["proxy"],
            f"{1000 * r['score_s_mean']:.1f}",
            f"{r['archs_per_s']:.2f}",
            f"{r['archs_per_s_with_build']:.2f}",
            f"{r['peak_rss_mib']:.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"build: {1000 * build_mean:.1f} ms per network (mean of {args.archs})")

    result = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "data": source},
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "build_s_mean": build_mean,
        "proxies": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
