"""Training throughput of nascli networks on CPU, and nascli against timm on the same network.

Each measurement is a forward + cross-entropy + backward step, timed in a fresh process (so its
peak resident memory is its own) after one warm-up step. Rounds alternate between the models,
so a busy machine slows them alike; the table gives the median step and the fastest one (the
more robust figure when other processes compete for the cores).

Settings:
- NASNet-A 6@768 on CIFAR (batch 32, 32x32), the paper's 3.3M-parameter network;
- a search-time network (NASNet-A cells, N=1, C=8, 28x28x1, batch 64);
- NASNet-A with the ImageNet stem, N=6, C=32 (F=768) at 96x96, batch 8: nascli, timm's
  ``NASNetALarge(stem_size=32, num_features=768)`` as registered (TF "same" padding) and with
  static padding (``pad_type=""``), the same cells with the same parameter count up to the first
  stem cell's input handling (see the ``params`` column).

    PYTHONPATH=src python benchmarks/bench_network.py [--threads 2] [--rounds 2] [--steps 3]

Prints a table and writes benchmarks/results/bench_network.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

SAME_NET = "NASNet-A 6@768 IN-stem 96px"
# (label, implementation, batch, (C, H, W), num_classes); each runs in every --formats
SETTINGS = [
    ("NASNet-A 6@768 CIFAR 32px", "nascli-cifar", 32, (3, 32, 32), 10),
    ("search net N=1 C=8 28px", "nascli-search", 64, (1, 28, 28), 10),
    (SAME_NET, "nascli-imagenet", 8, (3, 96, 96), 10),
    (SAME_NET, "timm", 8, (3, 96, 96), 10),
    (SAME_NET, "timm-static-pad", 8, (3, 96, 96), 10),
]
FORMATS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def build(impl: str, in_channels: int, num_classes: int) -> torch.nn.Module:
    """The model of one row of SETTINGS."""
    from nascli.genotypes import NASNET_A
    from nascli.models import build_network

    if impl == "nascli-cifar":
        return build_network(NASNET_A, num_classes, in_channels, cells_per_stage=6, channels=32)
    if impl == "nascli-search":
        return build_network(NASNET_A, num_classes, in_channels, cells_per_stage=1, channels=8)
    if impl == "nascli-imagenet":
        return build_network(
            NASNET_A, num_classes, in_channels, 6, 32, stem="imagenet", stem_multiplier=1
        )
    from timm.models.nasnet import NASNetALarge

    pad = "" if impl == "timm-static-pad" else "same"
    return NASNetALarge(
        num_classes=num_classes, in_chans=in_channels, stem_size=32, num_features=768, pad_type=pad
    )


def measure(
    impl: str,
    fmt: str,
    batch: int,
    shape: tuple[int, int, int],
    classes: int,
    threads: int,
    steps: int,
) -> dict[str, object]:
    """Wall and CPU seconds per training step of one model, in this (fresh) process."""
    from nascli.models import count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(impl, shape[0], classes).train().to(memory_format=FORMATS[fmt])
    x = torch.randn(batch, *shape).contiguous(memory_format=FORMATS[fmt])
    y = torch.randint(0, classes, (batch,))
    times, cpu = [], []
    for i in range(steps + 1):  # the first step warms up (allocator, oneDNN primitives)
        t, c = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        if i:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {
        "times": times,
        "cpu_times": cpu,
        "params": count_parameters(model),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def summarize(label: str, impl: str, fmt: str, batch: int, shape, runs: list[dict]) -> dict:
    """One result row from the rounds of one model."""
    times = [t for run in runs for t in run["times"]]
    cpu = [t for run in runs for t in run["cpu_times"]]
    step = statistics.median(times)
    return {
        "setting": label,
        "implementation": impl,
        "memory_format": fmt,
        "batch_size": batch,
        "input": list(shape),
        "params": runs[0]["params"],
        "step_s_median": step,
        "step_s_min": min(times),
        "cpu_s_median": statistics.median(cpu),
        "images_per_s": batch / step,
        "images_per_s_best": batch / min(times),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
    }


def print_table(console: Console, rows: list[dict], threads: int) -> None:
    table = Table(title=f"training step (forward + backward) on CPU, {threads} threads")
    cols = (
        "setting",
        "impl",
        "format",
        "batch",
        "params",
        "step s",
        "CPU s",
        "img/s",
        "best img/s",
        "RSS MiB",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:3] else "right")
    for row in rows:
        table.add_row(
            row["setting"],
            row["implementation"],
            row["memory_format"],
            str(row["batch_size"]),
            f"{row['params']:,}",
            f"{row['step_s_median']:.3f}",
            f"{row['cpu_s_median']:.3f}",
            f"{row['images_per_s']:.1f}",
            f"{row['images_per_s_best']:.1f}",
            f"{row['peak_rss_mib']:.0f}",
        )
    console.print(table)
    for fmt in FORMATS:
        ours = [
            r
            for r in rows
            if r["implementation"] == "nascli-imagenet" and r["memory_format"] == fmt
        ]
        for r in rows:
            if ours and r["implementation"].startswith("timm") and r["memory_format"] == fmt:
                med = r["step_s_median"] / ours[0]["step_s_median"]
                best = r["step_s_min"] / ours[0]["step_s_min"]
                console.print(
                    f"{fmt}: nascli runs at {med:.2f}x the speed of {r['implementation']} "
                    f"(median step), {best:.2f}x (fastest step)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--formats", default="nchw,nhwc", help="memory formats: nchw, nhwc")
    parser.add_argument("--only", default="", help="comma-separated implementations to run")
    parser.add_argument("--out", default="benchmarks/results/bench_network.json")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    jobs = [
        (label, impl, fmt, batch, shape, classes)
        for label, impl, batch, shape, classes in SETTINGS
        for fmt in args.formats.split(",")
        if not only or impl in only
    ]

    runs: dict[tuple[str, str], list[dict]] = {(j[1], j[2]): [] for j in jobs}
    console = Console(width=150)
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        for r in range(args.rounds):
            for label, impl, fmt, batch, shape, classes in jobs:
                console.log(f"round {r + 1}/{args.rounds}: {label} [{impl}, {fmt}]")
                fut = pool.submit(
                    measure, impl, fmt, batch, shape, classes, args.threads, args.steps
                )
                runs[impl, fmt].append(fut.result())
    rows = [summarize(lab, i, f, b, s, runs[i, f]) for lab, i, f, b, s, _ in jobs]
    print_table(console, rows, args.threads)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "threads": args.threads,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_end": list(os.getloadavg()),
    }
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
