"""The LSTM controller of Zoph and Le (2017) and Zoph et al. (2018), and the strategy shell that
``ppo`` and ``reinforce`` share.

The controller emits one choice per decision, in the space's order. At each step the LSTM reads
the embedding of the previous choice (a learned start token first) and a per-decision softmax
head scores that decision's choices, so any space's decisions work. Decisions with a single
choice are not modelled (their index is always 0).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nascli.spaces import Genotype, SearchSpace
from nascli.strategies.base import (
    Strategy,
    StrategyError,
    check_option,
    is_int,
    is_number,
)


class Controller(nn.Module):
    """One-layer LSTM policy over a sequence of categorical decisions.

    Args:
        sizes: number of choices of each modelled decision (each >= 2).
        hidden_size: LSTM units (paper: 100); embeddings have the same width.
        temperature: logits are divided by it before sampling.
        tanh_constant: if set, logits become ``c * tanh(logits)`` (bounds the policy's
            confidence, as in ENAS).
        generator: seeds the uniform(-0.1, 0.1) initialisation.
    """

    def __init__(
        self,
        sizes: list[int],
        hidden_size: int = 100,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not sizes or min(sizes) < 2:
            raise StrategyError(f"controller needs decisions with >= 2 choices, got {sizes}")
        self.sizes = list(sizes)
        self.temperature = float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        total = sum(self.sizes)
        offsets = np.cumsum([0, *self.sizes])
        self.offsets = [int(o) for o in offsets[:-1]]
        self.embed = nn.Embedding(total + 1, hidden_size)  # last row: the start token
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        # all heads packed in one matrix; decision k owns rows offsets[k]:offsets[k]+sizes[k]
        self.head = nn.Linear(hidden_size, total)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1, generator=generator)
        # mask that confines a log-softmax over all rows to each decision's own rows
        mask = torch.full((len(self.sizes), total), -math.inf)
        for k, (o, n) in enumerate(zip(self.offsets, self.sizes, strict=True)):
            mask[k, o : o + n] = 0.0
        self.register_buffer("mask", mask, persistent=False)
        offsets_t = torch.tensor(self.offsets)
        self.register_buffer("choice_offset", offsets_t, persistent=False)
        self.register_buffer("prev_offset", offsets_t[:-1].clone(), persistent=False)

    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature != 1.0:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` sequences: choice indices ``[n, D]`` (long) and their log-probs ``[n]``."""
        hidden = self.lstm.hidden_size
        h = torch.zeros(n, hidden)
        c = torch.zeros(n, hidden)
        x = self.embed.weight[-1].expand(n, hidden)
        choices, logp = [], torch.zeros(n)
        # one step of self.lstm (same weights and gate order); calling the module per step costs
        # 3x more, and training runs the module over whole sequences (2.5x faster than cells)
        weights = (
            self.lstm.weight_ih_l0,
            self.lstm.weight_hh_l0,
            self.lstm.bias_ih_l0,
            self.lstm.bias_hh_l0,
        )
        for k, (o, size) in enumerate(zip(self.offsets, self.sizes, strict=True)):
            h, c = torch.lstm_cell(x, (h, c), *weights)
            w, b = self.head.weight[o : o + size], self.head.bias[o : o + size]
            logits = self._shape(F.linear(h, w, b))
            log_probs = F.log_softmax(logits, dim=-1)
            pick = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
            logp += log_probs.gather(1, pick[:, None]).squeeze(1)
            choices.append(pick)
            if k + 1 < len(self.sizes):
                x = self.embed.weight[o + pick]
        return torch.stack(choices, dim=1), logp

    def evaluate(self, choices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs ``[n]`` and entropies ``[n]`` (summed over decisions) of given sequences."""
        n = choices.shape[0]
        hidden = self.lstm.hidden_size
        start = self.embed.weight[-1].expand(n, 1, hidden)
        prev = self.embed(choices[:, :-1] + self.prev_offset)  # input k is choice k-1
        outputs, _ = self.lstm(torch.cat([start, prev], dim=1))  # [n, D, H]
        # one matmul for every head; the mask keeps each step's softmax on its own choices
        logits = self._shape(self.head(outputs)) + self.mask  # [n, D, total]
        log_probs = F.log_softmax(logits, dim=-1)
        index = (choices + self.choice_offset)[..., None]
        logp = log_probs.gather(2, index).squeeze(2).sum(1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs.masked_fill(probs == 0, 0.0)).sum((1, 2))
        return logp, entropy


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op torch threads (``None``: unchanged), then restore.

    The controller's tensors are tiny: extra threads only add synchronisation, and on a busy
    machine a two-thread update measured 100x slower than a one-thread one.
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ControllerStrategy(Strategy):
    """Ask-and-tell shell around a :class:`Controller`; subclasses define :meth:`_loss_steps`.

    The controller samples ``batch_size`` architectures at a time; once ``batch_size`` results
    have been told (in tell order) it updates, and unused samples drawn from the old policy are
    discarded. Rewards are scores; a failed evaluation gets ``failed_score`` (default: the lowest
    successful score told so far, 0.0 before any). The advantage is reward minus an exponential
    moving average baseline, started at the first batch's mean reward and then updated with
    each reward in tell order.

    Every told result trains the controller, including a cached answer that a
    :class:`~nascli.strategies.addons.Deduplicate` wrapper gives for a re-proposed architecture
    and a result told without an ask (learnt at its probability under the current policy). A
    discarded ask drops its sample. ``duplicate_retries`` is 20, not 100: a converged controller
    re-proposes mostly seen architectures, and every ``batch_size`` cached answers cost a policy
    update.

    The defaults of ``lr``, ``batch_size`` and ``tanh_constant`` were chosen by measurement
    for budgets of 100 to 1,000 evaluations (``benchmarks/bench_controller_defaults.py``,
    docs/strategies.md); the others are NASNet's. The papers' settings are the presets
    ``experiment=nasnet_ppo_paper`` and ``experiment=nas_reinforce_paper``.

    Args:
        hidden_size: LSTM units; embeddings have the same width (paper: 100).
        lr: Adam learning rate (measured: 0.01; NASNet: 0.00035).
        batch_size: results per controller update (measured: 10; paper: 20).
        entropy_weight: weight of the entropy bonus (paper: 1e-5).
        baseline_decay: decay of the moving-average baseline, in [0, 1) (paper: 0.95).
        temperature: logits are divided by it (``None``: 1.0, a config's "unset").
        tanh_constant: if set, logits become ``c * tanh(logits)`` (measured: 1.5, which keeps
            the policy from collapsing onto one architecture; paper: none).
        failed_score: reward of a failed evaluation (``None``: the lowest score told so far).
        num_threads: caps torch's intra-op threads while the controller samples or trains; the
            setting is process-wide for that moment, so pass ``None`` if other threads of the
            process run torch work concurrently.
    """

    duplicate_retries = 20

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        hidden_size: int = 100,
        lr: float = 0.01,
        batch_size: int = 10,
        entropy_weight: float = 0.00001,
        baseline_decay: float = 0.95,
        temperature: float | None = 1.0,
        tanh_constant: float | None = 1.5,
        failed_score: float | None = None,
        num_threads: int | None = 1,
    ) -> None:
        super().__init__(space, seed)
        self._check_options(hidden_size, lr, batch_size, entropy_weight, baseline_decay,
                            temperature, tanh_constant, failed_score, num_threads)
        self.hidden_size = int(hidden_size)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.temperature = 1.0 if temperature is None else float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.failed_score = None if failed_score is None else float(failed_score)
        self.num_threads = None if num_threads is None else int(num_threads)

        decisions = space.decisions
        self._free = [k for k, d in enumerate(decisions) if len(d) > 1]
        if not self._free:
            raise StrategyError(f"space {space.name!r} has no decision with more than one choice")
        self._num_decisions = len(decisions)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.controller = Controller(
            [len(decisions[k]) for k in self._free],
            hidden_size=self.hidden_size,
            temperature=self.temperature,
            tanh_constant=self.tanh_constant,
            generator=self.generator,
        )
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self._min_score: float | None = None
        #: samples drawn but not handed out: (choices, log-prob)
        self._queue: deque[tuple[list[int], float]] = deque()
        #: asked, not told: hash -> [(choices, log-prob), ...] in ask order
        self._trajectories: dict[str, list[tuple[list[int], float]]] = {}
        #: results waiting for the next update: (choices, log-prob at sampling, reward)
        self._batch: list[tuple[list[int], float, float]] = []
        self.num_updates = 0

    def _check_options(self, hidden_size: Any, lr: Any, batch_size: Any, entropy_weight: Any,
                       baseline_decay: Any, temperature: Any, tanh_constant: Any,
                       failed_score: Any, num_threads: Any) -> None:
        """One line naming the option for each value out of range."""
        name = self.name
        check_option(is_int(hidden_size) and hidden_size >= 1, name, "hidden_size", hidden_size,
                     "an integer >= 1")
        check_option(is_number(lr) and lr > 0, name, "lr", lr, "a positive number")
        check_option(is_int(batch_size) and batch_size >= 1, name, "batch_size", batch_size,
                     "an integer >= 1")
        check_option(is_number(entropy_weight) and entropy_weight >= 0, name, "entropy_weight",
                     entropy_weight, "a number >= 0")
        check_option(is_number(baseline_decay) and 0.0 <= baseline_decay < 1.0, name,
                     "baseline_decay", baseline_decay, "a number in [0, 1)")
        check_option(temperature is None or (is_number(temperature) and temperature > 0), name,
                     "temperature", temperature, "a positive number or None")
        check_option(tanh_constant is None or (is_number(tanh_constant) and tanh_constant > 0),
                     name, "tanh_constant", tanh_constant, "a positive number or None")
        check_option(failed_score is None or is_number(failed_score), name, "failed_score",
                     failed_score, "a finite number or None")
        check_option(num_threads is None or (is_int(num_threads) and num_threads >= 1), name,
                     "num_threads", num_threads, "an integer >= 1 or None")

    # -- encoding between the controller's free decisions and the space ----------------------
    def _decode(self, choices: list[int]) -> Genotype:
        full = [0] * self._num_decisions
        for k, c in zip(self._free, choices, strict=True):
            full[k] = c
        return self.space.decode(full)

    def _choices(self, genotype: Genotype) -> list[int]:
        full = self.space.encode(genotype)
        return [full[k] for k in self._free]

    def _log_prob(self, choices: list[int]) -> float:
        with torch.no_grad(), torch_threads(self.num_threads):
            logp, _ = self.controller.evaluate(torch.tensor([choices]))
        return float(logp[0])

    # -- ask ----------------------------------------------------------------------------------
    def _propose(self) -> tuple[Genotype, str]:
        if not self._queue:
            with torch_threads(self.num_threads):
                choices, logp = self.controller.sample(self.batch_size, self.generator)
            self._queue.extend(zip(choices.tolist(), logp.tolist(), strict=True))
        choices_k, logp_k = self._queue.popleft()
        genotype = self._decode(choices_k)
        h = self.space.hash(genotype)
        self._trajectories.setdefault(h, []).append((choices_k, logp_k))
        return genotype, h

    def _discard(self, genotype: Genotype, h: str) -> None:
        trajectories = self._trajectories.get(h)
        if trajectories:
            trajectories.pop()
            if not trajectories:
                del self._trajectories[h]

    # -- tell ---------------------------------------------------------------------------------
    def _reward(self, score: float | None) -> float:
        if score is not None:
            return score
        if self.failed_score is not None:
            return self.failed_score
        return 0.0 if self._min_score is None else self._min_score

    def _observe(
        self,
        genotype: Genotype,
        h: str,
        score: float | None,
        metrics: dict[str, Any] | None,
        was_pending: bool,
    ) -> None:
        if score is not None and (self._min_score is None or score < self._min_score):
            self._min_score = score
        trajectories = self._trajectories.get(h)
        if was_pending and trajectories:
            choices, logp = trajectories.pop(0)
            if not trajectories:
                del self._trajectories[h]
        else:  # told without an ask: learn from it at its current probability
            choices = self._choices(genotype)
            logp = self._log_prob(choices)
        self._record(choices, logp, self._reward(score))

    def _record(self, choices: list[int], logp: float, reward: float) -> None:
        self._batch.append((choices, logp, reward))
        if len(self._batch) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        batch, self._batch = self._batch, []
        rewards = [r for _, _, r in batch]
        if self.baseline is None:
            self.baseline = sum(rewards) / len(rewards)
        advantage = torch.tensor([r - self.baseline for r in rewards])
        for r in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        choices = torch.tensor([c for c, _, _ in batch])
        old_logp = torch.tensor([lp for _, lp, _ in batch])
        with torch_threads(self.num_threads):
            for loss in self._loss_steps(choices, old_logp, advantage):
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        self.num_updates += 1
        self._queue.clear()  # samples from the old policy would make the next batch off-policy

    def _loss_steps(self, choices: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor):
        """Yield one loss per optimiser step for a batch (the generator may re-evaluate)."""
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "controller": {k: v.detach().clone() for k, v in self.controller.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "torch_rng": self.generator.get_state(),
            "baseline": self.baseline,
            "min_score": self._min_score,
            "queue": [[c, lp] for c, lp in self._queue],
            "trajectories": {h: [[c, lp] for c, lp in t] for h, t in self._trajectories.items()},
            "batch": [[c, lp, r] for c, lp, r in self._batch],
            "num_updates": self.num_updates,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["torch_rng"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self._min_score = None if state["min_score"] is None else float(state["min_score"])
        self._queue = deque((list(c), float(lp)) for c, lp in state["queue"])
        self._trajectories = {
            h: [(list(c), float(lp)) for c, lp in t] for h, t in state["trajectories"].items()
        }
        self._batch = [(list(c), float(lp), float(r)) for c, lp, r in state["batch"]]
        self.num_updates = int(state["num_updates"])
