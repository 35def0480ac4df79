"""GPU throughput and the search's cold start, in one script (issue 11). Under 5 minutes on
one H200:

1. precision x layout: NASNet-A 6@768 with the CIFAR stem and auxiliary head, batch 128,
   32x32, forward + backward + SGD, images/s (fp32, fp32 + TF32, bf16 and fp16 autocast; NCHW
   and channels_last);
2. nascli against timm on the same network (ImageNet stem, 6@768, 64x64, batch 64), fp32 +
   TF32 channels_last and bf16 channels_last;
3. where a candidate's time goes: multiply-adds by a real forward against the ``meta`` count,
   ``gc.collect``, ``empty_cache``, the first candidate against the later ones, with cuDNN
   autotuning on and off;
4. the default search (``nascli search device=cuda``, 24 candidates) end to end with the
   local executor and with 2, 4 and 8 workers per GPU: wall time, first-candidate time,
   candidates/s sustained;
5. train-final's step eager and compiled (``torch.compile`` default and reduce-overhead, i.e.
   CUDA graphs): compile seconds, images/s.

    python benchmarks/bench_gpu.py [--quick] [--device cuda] [--skip-search]

``--quick --device cpu`` runs every section with tiny settings (to check the script on a
machine without a GPU). Prints a table per section and writes benchmarks/results/bench_gpu.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
console = Console()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nasnet(stem: str = "cifar", aux: bool = True, cells: int = 6, channels: int = 32,
           classes: int = 10) -> torch.nn.Module:
    """NASNet-A N@F (6@768: N=6, C=32) from nascli's builder."""
    from nascli.genotypes import NASNET_A
    from nascli.models import build_network

    return build_network(NASNET_A, classes, 3, cells, channels, stem=stem, auxiliary=aux,
                         stem_multiplier=3 if stem == "cifar" else 1)


def throughput(model: torch.nn.Module, device: torch.device, batch: int, size: int, amp: str,
               channels_last: bool, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(images/s, seconds of the first step) of forward + cross-entropy + backward + SGD."""
    from nascli.training.device import autocast

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device).to(memory_format=fmt).train()
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    def step() -> None:
        with autocast(device, amp):
            out = model(x)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            loss = torch.nn.functional.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + 0.4 * torch.nn.functional.cross_entropy(aux, y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - t0), first


def precision_table(device: torch.device, quick: bool) -> list[dict]:
    """Section 1: images/s by precision and layout."""
    from nascli.training.device import set_tf32

    torch.backends.cudnn.benchmark = True  # fixed shapes, as in train-final
    batch, size, steps = (8, 16, 2) if quick else (128, 32, 20)
    rows = []
    for precision, amp, tf32 in (("fp32", "none", False), ("fp32+tf32", "none", True),
                                 ("bf16", "bf16", True), ("fp16", "fp16", True)):
        if device.type != "cuda" and precision != "fp32":
            continue
        if device.type == "cuda":
            set_tf32(tf32)
        for layout, cl in (("NCHW", False), ("channels_last", True)):
            torch.manual_seed(0)
            model = nasnet(channels=8 if quick else 32, cells=1 if quick else 6)
            ips, _ = throughput(model, device, batch, size, amp, cl, steps)
            rows.append({"precision": precision, "layout": layout, "images_per_s": round(ips)})
            del model
    if device.type == "cuda":
        set_tf32(True)
    return rows


def timm_table(device: torch.device, quick: bool) -> list[dict]:
    """Section 2: nascli against timm's NASNetALarge(stem_size=32, num_features=768)."""
    try:
        from timm.models.nasnet import NASNetALarge
    except ImportError:
        return [{"note": "timm is not installed"}]
    from nascli.models import count_parameters

    batch, size, steps = (4, 32, 2) if quick else (64, 64, 15)
    amps = ["none"] if device.type != "cuda" else ["none", "bf16"]
    rows = []
    for amp in amps:
        for name in ("nascli", "timm"):
            torch.manual_seed(0)
            model = nasnet("imagenet", aux=False, cells=1 if quick else 6) if name == "nascli" \
                else NASNetALarge(num_classes=10, stem_size=32, num_features=768)
            ips, _ = throughput(model, device, batch, size, amp, True, steps)
            rows.append({"model": name, "precision": "fp32+tf32" if amp == "none" else amp,
                         "layout": "channels_last", "params": count_parameters(model),
                         "images_per_s": round(ips)})
            del model
    return rows


def candidate_shares(device: torch.device, quick: bool) -> dict:
    """Section 3: what a search candidate spends besides training, with cuDNN autotuning
    on and off (each setting in a fresh process would be purer; this keeps it in budget)."""
    from nascli.data import load_dataset
    from nascli.estimators import TrainEstimator
    from nascli.models import build_model, count_macs
    from nascli.spaces import NASNetSpace

    space = NASNetSpace()
    data = load_dataset("mnist5k", seed=0)
    genotypes = [space.sample(s) for s in range(3 if quick else 8)]
    out: dict = {}
    for bench in (False, True):
        torch.backends.cudnn.benchmark = bench
        est = TrainEstimator(space, data, device=device, channels_last=True,
                             **({"max_steps": 2} if quick else {}))
        times = []
        for i, g in enumerate(genotypes):
            t0 = time.perf_counter()
            est(g, seed=i + (100 if bench else 0))
            times.append(round(time.perf_counter() - t0, 3))
        out[f"cudnn_benchmark_{str(bench).lower()}"] = {"candidate_s": times,
                                                        "warm_up_s": est.warm_up_seconds}
    torch.backends.cudnn.benchmark = False
    size = (data.in_channels, *data.image_size)
    forward, meta, collect, empty = [], [], [], []
    for g in genotypes:
        model = build_model(space, g, num_classes=10, in_channels=1).to(device)
        model = model.to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        count_macs(model, size)
        sync(device)
        forward.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.device("meta"):
            count_macs(build_model(space, g, num_classes=10, in_channels=1), size)
        meta.append(time.perf_counter() - t0)
        del model
        t0 = time.perf_counter()
        gc.collect()
        collect.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        empty.append(time.perf_counter() - t0)
    mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
    out["per_candidate_s"] = {"macs_by_forward": mean(forward), "macs_on_meta": mean(meta),
                              "gc_collect": mean(collect), "empty_cache": mean(empty)}
    return out


def search_runs(device: str, quick: bool) -> list[dict]:
    """Section 4: the default search end to end in a fresh process per setting."""
    rows = []
    settings = [1, 2] if quick else [1, 2, 4, 8]
    for workers in settings:
        overrides = [f"device={device}", "progress=off"]
        if device == "cuda":
            overrides.append(f"device.workers_per_gpu={workers}")
            if workers == 1:
                overrides.append("executor=local")
        else:
            overrides += ["executor=pool", f"executor.workers={workers}"]
        if quick:
            overrides += ["budget.evaluations=4", "proxy.max_steps=2"]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "nascli", "search", *overrides],
                                  cwd=tmp, capture_output=True, text=True, check=False,
                                  env=dict(os.environ, COLUMNS="200"), timeout=300)
            wall = time.perf_counter() - t0
            if proc.returncode:
                rows.append({"workers_per_gpu": workers, "error": proc.stderr[-500:]})
                continue
            (history,) = Path(tmp).rglob("history.jsonl")
            hist = [json.loads(line) for line in history.read_text().splitlines()]
        ends = sorted(r["elapsed"] for r in hist)
        sustained = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and \
            ends[-1] > ends[0] else None
        rows.append({"workers_per_gpu": workers, "wall_s": round(wall, 1),
                     "evaluations": len(hist), "first_candidate_s": round(hist[0]["seconds"], 2),
                     "first_done_at_s": round(ends[0], 2),
                     "candidates_per_s": round(sustained, 2) if sustained else None,
                     "workers": len({r["worker"] for r in hist})})
    return rows


def compile_table(device: torch.device, quick: bool) -> list[dict]:
    """Section 5: a training step eager against torch.compile, for train-final's network
    (NASNet-A 6@768 CIFAR on a GPU; the CPU default N=2, C=16 at 28x28 on a CPU) and for a
    search-time network (a new graph per candidate: compile time against its training)."""
    from nascli.models import build_model
    from nascli.spaces import NASNetSpace

    torch.backends.cudnn.benchmark = True
    gpu = device.type == "cuda"
    final = (8, 16, 2, 1, 8) if quick else ((128, 32, 30, 6, 32) if gpu else (96, 28, 10, 2, 16))
    space = NASNetSpace()
    nets = [("train-final", final),
            ("search candidate", (64, 28, 5 if quick else 25, None, None))]
    modes = ["off", "default"] + (["reduce-overhead"] if gpu else [])
    rows = []
    for label, (batch, size, steps, cells, channels) in nets:
        for mode in modes:
            torch.manual_seed(0)
            if cells is None:
                model = build_model(space, space.sample(0), num_classes=10, in_channels=3)
            else:
                model = nasnet(channels=channels, cells=cells)
                model.drop_path_prob = 0.1
            run = model if mode == "off" else torch.compile(model.to(device), mode=mode)
            try:
                ips, first = throughput(run, device, batch, size, "none", True, steps)
            except Exception as exc:  # no compiler on this box: say so, keep going
                rows.append({"network": label, "mode": mode,
                             "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            rows.append({"network": label, "mode": mode, "batch": batch,
                         "first_step_s": round(first, 2), "images_per_s": round(ips, 1)})
            del model, run
            torch._dynamo.reset()
    return rows


def show(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    table = Table(title=title)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for k in keys:
        table.add_column(k)
    for r in rows:
        table.add_row(*[str(r.get(k, "")) for k in keys])
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated section numbers")
    args = parser.parse_args()
    from nascli.training.device import setup_device

    device = setup_device(args.device)
    only = {int(s) for s in args.only.split(",") if s}
    out: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                 else "cpu", "torch": torch.__version__, "quick": args.quick}
    sections = [
        (1, "precision", "images/s by precision and layout (NASNet-A 6@768 CIFAR)",
         lambda: precision_table(device, args.quick)),
        (2, "timm", "nascli vs timm (6@768 ImageNet stem)", lambda: timm_table(device, args.quick)),
        (3, "candidate", "a candidate's overheads", lambda: candidate_shares(device, args.quick)),
        (4, "search", "default search end to end",
         lambda: [] if args.skip_search else search_runs(args.device, args.quick)),
        (5, "compile", "train-final step: eager vs compiled",
         lambda: compile_table(device, args.quick)),
    ]
    path = RESULTS / ("bench_gpu.json" if not args.quick else "bench_gpu_quick.json")
    for number, key, title, run in sections:
        if only and number not in only:
            continue
        t0 = time.perf_counter()
        result = run()
        out[key] = result
        out[f"{key}_seconds"] = round(time.perf_counter() - t0, 1)
        if isinstance(result, list):
            show(f"{number}. {title}", result)
        else:
            console.print(f"{number}. {title}", result)
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")  # after every section: a timeout
    console.print(f"wrote {path}")                          # keeps what finished


if __name__ == "__main__":
    main()
