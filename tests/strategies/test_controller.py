"""The LSTM controller and the ppo / reinforce strategies built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from strategy_helpers import LookupSpace, lookup_table

from nascli.spaces import NASNetSpace
from nascli.strategies import PPO, Controller, Reinforce, StrategyError, build
from nascli.strategies.synthetic import GridSpace

NASNET = NASNetSpace()


def test_the_default_controller_is_the_papers_one_layer_lstm():
    ppo = build("ppo", NASNET, 0)
    assert ppo.controller.lstm.hidden_size == 100 and ppo.controller.lstm.num_layers == 1
    assert ppo.max_retries == 20  # the controllers' duplicate_retries


def test_one_softmax_head_per_decision_with_its_own_choices():
    c = Controller([2, 5, 3], hidden_size=8, generator=torch.Generator().manual_seed(0))
    choices, _ = c.sample(500, torch.Generator().manual_seed(1))
    assert choices.shape == (500, 3)
    assert [int(choices[:, k].max()) for k in range(3)] == [1, 4, 2]
    assert int(choices.min()) == 0


def test_sampled_log_probs_match_evaluated_ones():
    c = Controller([4, 3, 7, 2], hidden_size=16, generator=torch.Generator().manual_seed(0))
    choices, logp = c.sample(50, torch.Generator().manual_seed(1))
    logp2, entropy = c.evaluate(choices)
    torch.testing.assert_close(logp, logp2.detach(), rtol=1e-5, atol=1e-5)
    # an untrained controller is close to uniform
    torch.testing.assert_close(
        entropy.detach(), torch.full((50,), math.log(4 * 3 * 7 * 2)), rtol=0.02, atol=0.0
    )


def test_probabilities_of_all_sequences_sum_to_one():
    c = Controller([2, 3], hidden_size=4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        c.head.bias.add_(torch.randn(5))  # not uniform
        grid = torch.tensor([[a, b] for a in range(2) for b in range(3)])
        logp, _ = c.evaluate(grid)
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_tanh_constant_bounds_and_temperature_flattens_the_policy():
    seq = torch.tensor([[0]])

    def p_first(**kw):
        c = Controller([2], hidden_size=4, generator=torch.Generator().manual_seed(0), **kw)
        with torch.no_grad():
            c.head.bias.copy_(torch.tensor([50.0, 0.0]))
            return float(c.evaluate(seq)[0].exp())

    assert p_first() == pytest.approx(1.0)
    assert p_first(tanh_constant=1.5) == pytest.approx(1 / (1 + math.exp(-1.5)), abs=0.02)
    assert p_first(temperature=100.0) < 0.65


def test_single_choice_decisions_are_not_modelled():
    s = build("ppo", NASNET, 0)  # the default NASNet space has one combine op
    assert len(s.controller.sizes) == 40
    g = s.ask()
    assert all(b.combine == "add" for b in g.normal.blocks + g.reduce.blocks)


def test_a_space_without_choices_is_refused():
    with pytest.raises(StrategyError, match="no decision with more than one choice"):
        build("ppo", GridSpace([1, 1]), 0)


@pytest.mark.parametrize("cls", [PPO, Reinforce])
def test_an_update_after_every_batch_of_tells(cls):
    s = cls(GridSpace([3] * 5), 0, batch_size=4)
    before = {k: v.clone() for k, v in s.controller.state_dict().items()}
    gs = [s.ask() for _ in range(7)]
    for g in gs[:3]:
        s.tell(g, 1.0)
    assert s.num_updates == 0
    s.tell(gs[3], 0.0)
    assert s.num_updates == 1
    after = s.controller.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert s.baseline is not None


def test_baseline_is_an_exponential_moving_average():
    s = Reinforce(GridSpace([3] * 5), 0, batch_size=2, baseline_decay=0.5)
    gs = [s.ask() for _ in range(4)]
    for g, r in zip(gs, [1.0, 3.0, 4.0, 0.0], strict=True):
        s.tell(g, r)
    # first batch mean 2 starts it; then 2 -> 1.5 -> 2.25 (batch 1) -> 3.125 -> 1.5625 (batch 2)
    assert s.baseline == pytest.approx(1.5625)


def test_failed_evaluations_get_the_failed_score():
    s = PPO(GridSpace([3] * 5), 0, batch_size=10)
    gs = [s.ask() for _ in range(4)]
    s.tell(gs[0], None)  # nothing seen yet: 0
    s.tell(gs[1], 0.7)
    s.tell(gs[2], 0.4)
    s.tell(gs[3], float("nan"))  # lowest so far
    assert [r for _, _, r in s._batch] == [0.0, 0.7, 0.4, 0.4]
    t = PPO(GridSpace([3] * 5), 0, batch_size=10, failed_score=-1.0)
    g = t.ask()
    t.tell(g, None)
    assert t._batch[0][2] == -1.0


def test_re_proposals_are_answered_from_the_cache():
    space = LookupSpace()
    table = lookup_table(space)
    s = build("ppo", space, 0, batch_size=5, lr=0.01, max_retries=5)
    told = set()
    for _ in range(45):
        g = s.ask()
        assert space.hash(g) not in told
        told.add(space.hash(g))
        s.tell(g, table[g])
    assert s.num_cached > 0
    assert s.inner.num_told == 45 + s.num_cached  # each cached answer was told to the controller
    assert s.num_updates > 45 // 5  # cached answers train the controller too


def test_alone_the_controller_re_asks_what_it_samples():
    space = GridSpace([2, 2])
    s = PPO(space, 0, batch_size=4)
    asked = [space.hash(s.ask()) for _ in range(12)]
    assert len(set(asked)) <= 4 and s.num_pending == 12


def test_a_discarded_ask_drops_its_sample():
    space = GridSpace([3] * 5)
    s = PPO(space, 0, batch_size=2)
    a, b = s.ask(), s.ask()
    s.discard(a)
    assert s.num_pending == 1 and s.num_discarded == 1
    assert list(s._trajectories) == [space.hash(b)]
    s.tell(b, 1.0)
    assert s._trajectories == {} and len(s._batch) == 1  # a discard is never learnt from
    with pytest.raises(StrategyError, match="not pending"):
        s.discard(a)


def test_discard_of_one_of_two_pending_copies_keeps_the_other():
    space = GridSpace([2])
    s = Reinforce(space, 0, batch_size=10)
    asks = [s.ask() for _ in range(6)]  # two architectures: some are pending twice or more
    h = space.hash(asks[0])
    copies = sum(space.hash(g) == h for g in asks)
    assert copies >= 2
    s.discard(asks[0])
    assert len(s._trajectories[h]) == copies - 1


@pytest.mark.parametrize("cls", [PPO, Reinforce])
def test_the_controller_learns_a_hidden_target(cls):
    space = GridSpace([3] * 6)
    target = [2, 0, 1, 1, 0, 2]
    s = cls(space, 0, batch_size=8, lr=0.01)  # no Deduplicate: a converged policy may repeat
    for _ in range(30 * 8):
        g = s.ask()
        s.tell(g, float(np.mean(np.asarray(space.encode(g)) == target)))
    p_target = math.exp(s._log_prob(target))
    assert p_target > 0.5  # uniform: 3**-6 = 0.0014
