"""The objective a Hydra sweeper optimises is validation rank@1 at the chosen stop point, never a test metric."""

from __future__ import annotations

from apex.pipeline.summary import Summary


def summary(**kwargs) -> Summary:
    val = {0: {"rank_at_1": 0.99}, 3: {"rank_at_1": 0.95}, 6: {"rank_at_1": 0.93}, 9: {"rank_at_1": 0.95}}
    test = {step: {"rank_at_1": 0.5 + step / 100} for step in val}  # test prefers the last step: never used
    return Summary("r", "c", 0, 10, 10, steps={0: 0.0, 3: 1 / 3, 6: 2 / 3, 9: 1.0}, test=test, val=val, **kwargs)


def test_objective_is_validation_at_the_stop_chosen_on_validation() -> None:
    chosen = summary()
    assert chosen.chosen_step() == 3 and chosen.objective() == 0.95  # best trained val (step 0 never), earliest tie
    fixed = summary(stop=2 / 3)  # report.stop fixed before the sweep
    assert fixed.chosen_step() == 6 and fixed.objective() == 0.93
    assert summary(stop=0.5).objective() is None  # not a stop point of this run
    assert Summary("r", "c", 0, 10, 10, steps={0: 0.0, 4: 1.0}).objective() is None  # eval.on_val=false
