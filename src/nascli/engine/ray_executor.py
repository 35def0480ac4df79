"""``executor=ray``: candidate evaluations as Ray actors, on one box or a whole cluster.

Each worker is an actor that builds its estimator once (the dataset comes from Ray's object
store, put there once by the search process, and stays on the actor's device). ``num_cpus`` and
``num_gpus`` are the resources of one evaluation (fractions allowed: ``num_gpus=0.25`` runs four
candidates on each GPU). A new candidate is asked for whenever an actor is free, as in the
regularized-evolution paper. Timeouts, lost actors and nodes, and retries are handled by
:class:`~nascli.engine.supervisor.Supervisor`, as for the process pool.

Ray is an optional extra (``pip install "nascli[ray]"``), imported only when this executor is
chosen.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nascli.engine.supervisor import Supervisor, Task, WorkerStartError
from nascli.errors import UserError
from nascli.estimators.base import Estimate, Estimator, estimate

log = logging.getLogger("nascli")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("executor=ray needs Ray: pip install 'nascli[ray]' (or pick "
                        "executor=pool or executor=local)") from None
    return ray


class _Evaluator:
    """The body of one Ray actor: an estimator built once, evaluating on request."""

    def __init__(self, factory: Callable[..., Estimator], shared: Any, threads: int) -> None:
        import ray
        import torch

        from nascli.engine import executors

        torch.set_num_threads(max(1, threads))
        gpus = ray.get_gpu_ids()
        if gpus:  # Ray shows the actor its GPU(s) only, from cuda:0 on
            executors._WORKER_GPU = int(gpus[0])
        context = ray.get_runtime_context()
        self.name = f"{context.get_node_id()[:8]}/pid{os.getpid()}" + (
            f"-gpu{','.join(str(g) for g in gpus)}" if gpus else "")
        self.estimator = factory(shared=shared) if shared is not None else factory()

    def ready(self) -> str:
        """The worker's name once its estimator is built."""
        return self.name

    def evaluate(self, task_id: int, genotype: Any, seed: int | None,
                 steps: int | None = None) -> tuple[int, Any]:
        """``(task id, (Estimate, worker name))``; an estimator crash is a failed estimate."""
        try:
            return task_id, (estimate(self.estimator, genotype, seed, steps), self.name)
        except Exception as exc:
            return task_id, (Estimate.failed(f"{type(exc).__name__}: {exc}"), self.name)


@dataclass
class _Actor:
    """A worker actor as the search process sees it."""

    actor: Any
    ready_ref: Any
    slot: int = 0
    name: str = "ray-actor"
    ref: Any = None
    task_id: int = 0
    dead: str | None = None


class RayExecutor(Supervisor):
    """Evaluate candidates on Ray actors (``executor=ray``).

    Args:
        factory: builds the estimator in each actor (picklable).
        gpus: unused (Ray places GPUs through ``num_gpus``).
        address: a running cluster (``auto``, ``ray://host:10001``), or None to start a
            local Ray for this search (stopped at the end).
        workers: actors; None = as many as the cluster's resources allow.
        num_cpus, num_gpus: resources of one evaluation (fractions allowed).
        timeout_s, retries: see :class:`~nascli.engine.supervisor.Supervisor`.
    """

    #: ray.wait cannot also wait for new submissions: a short poll keeps their results from
    #: waiting a whole poll (25 ms per candidate at 50 ms, 1-3 ms at 5 ms)
    poll_s = 0.005
    #: an actor that Ray lost before it ran (its worker process did not register in time on a
    #: loaded machine, its node went away) is started again this many times in a row before
    #: the search stops; an error raised by the estimator's constructor stops it at once
    start_attempts = 3

    def __init__(
        self, factory: Callable[..., Estimator], gpus: list[int] | None = None, *,
        address: str | None = None, workers: int | None = None, num_cpus: float = 1.0,
        num_gpus: float = 0.0, timeout_s: float | None = None, retries: int = 0,
    ) -> None:
        ray = _ray()
        for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise UserError(f"executor.{key}={value!r} is invalid; expected a number >= 0")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise UserError(f"executor.workers={workers!r} is invalid; expected an integer >= 1 "
                            "or null (as many as the cluster allows)")
        self._ray, self._owns = ray, not ray.is_initialized()
        if self._owns:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.num_cpus, self.num_gpus = float(num_cpus), float(num_gpus)
        slots = workers or self._fit(ray.cluster_resources())
        super().__init__(slots, timeout_s, retries)
        shared = factory.shared() if hasattr(factory, "shared") else None
        self._shared = ray.put(shared) if shared is not None else None  # once, for every actor
        self._factory = factory
        self._lost_starts: dict[int, int] = {}  # slot -> actors Ray lost in a row before they ran
        self._cls = ray.remote(_Evaluator).options(num_cpus=self.num_cpus,
                                                   num_gpus=self.num_gpus)
        log.info("executor: %d Ray actor(s), %g CPU and %g GPU each", slots, self.num_cpus,
                 self.num_gpus)
        self.start()

    def _fit(self, resources: dict[str, float]) -> int:
        """Actors the cluster's resources hold."""
        fits = []
        if self.num_cpus > 0:
            fits.append(int(resources.get("CPU", 0) // self.num_cpus))
        if self.num_gpus > 0:
            fits.append(int(resources.get("GPU", 0) // self.num_gpus))
        count = min(fits) if fits else 1
        if count < 1:
            raise UserError(f"executor=ray: the cluster has {resources.get('CPU', 0):g} CPU(s) "
                            f"and {resources.get('GPU', 0):g} GPU(s), not enough for one "
                            f"evaluation of executor.num_cpus={self.num_cpus:g} and "
                            f"executor.num_gpus={self.num_gpus:g}")
        return count

    def _start(self, slot: int) -> _Actor:
        actor = self._cls.remote(self._factory, self._shared, max(1, int(self.num_cpus)))
        return _Actor(actor, actor.ready.remote(), slot=slot)

    def _send(self, handle: _Actor, task: Task) -> None:
        handle.ref = handle.actor.evaluate.remote(task.id, task.genotype, task.seed, task.steps)
        handle.task_id = task.id

    def _collect(self, timeout: float) -> list[tuple[int, int, Any]]:
        ray = self._ray
        waiting = {}
        for slot, handle in list(self._handles.items()):
            if handle.ready_ref is not None:
                waiting[handle.ready_ref] = (slot, handle, "ready")
            if handle.ref is not None:
                waiting[handle.ref] = (slot, handle, "done")
        if not waiting:
            time.sleep(timeout)
            return []
        ready, rest = ray.wait(list(waiting), num_returns=1, timeout=timeout)
        if ready and rest:  # and whatever else finished meanwhile
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        done = []
        for ref in ready:
            slot, handle, kind = waiting[ref]
            if self._handles.get(slot) is not handle:
                continue  # an actor replaced meanwhile: its news must not touch the new one
            try:
                value = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._lost(handle, kind, exc)
                continue
            if kind == "ready":
                handle.name, handle.ready_ref = value, None
                self._lost_starts[slot] = 0
            else:
                handle.ref = None
                task_id, outcome = value
                done.append((slot, task_id, outcome))
        return done

    def _lost(self, handle: _Actor, kind: str, exc: Exception) -> None:
        """An actor whose estimator cannot be built stops the search, and so does one that Ray
        loses before it runs :attr:`start_attempts` times in a row; one that died mid-evaluation
        (or was lost before it ran) is replaced by the supervisor."""
        lines = str(exc).strip().splitlines()
        reason = next((line for line in reversed(lines) if line.strip()), type(exc).__name__)
        if kind == "ready":
            lost = self._lost_starts.get(handle.slot, 0) + 1
            self._lost_starts[handle.slot] = lost
            if getattr(exc, "actor_init_failed", True) or lost >= self.start_attempts:
                raise WorkerStartError(f"executor: a Ray actor could not start: {reason.strip()}")
            handle.dead, handle.ready_ref = f"was lost before it started ({reason.strip()})", None
            return
        handle.dead, handle.ref = f"died ({type(exc).__name__})", None

    def _death(self, handle: _Actor) -> str | None:
        return handle.dead

    def _kill(self, handle: _Actor) -> None:
        try:
            self._ray.kill(handle.actor, no_restart=True)
        except Exception:
            log.debug("killing a Ray actor failed", exc_info=True)

    def _ready(self, handle: _Actor) -> bool:
        return handle.ready_ref is None and handle.dead is None

    def _name(self, handle: _Actor) -> str:
        return handle.name

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the actors, and the local Ray this executor started."""
        super().shutdown(cancel)
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
