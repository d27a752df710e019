"""BigNAS's coarse-to-fine selection as an Optuna sampler."""

from __future__ import annotations

import optuna

from nas.coarse_to_fine import CoarseToFineSampler, best_feasible

DEPTHS = [1, 2, 3, 4]
KERNELS = [3, 5, 7]


def objective(trial: optuna.Trial) -> float:
    depth = trial.suggest_categorical("depth", DEPTHS)
    width = trial.suggest_int("width", 8, 64, step=8)
    kernel = trial.suggest_categorical("kernel", KERNELS)
    # A budget on "cost" = depth * width: children above 96 are infeasible.
    trial.set_user_attr("constraint", [depth * width - 96])
    return depth * width + kernel / 10


def study_with(coarse: int, trials: int, seed: int = 0) -> optuna.Study:
    sampler = CoarseToFineSampler(skeleton={"depth", "width"}, coarse_trials=coarse, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return study


def test_coarse_phase_fixes_fine_choices_at_their_middle() -> None:
    study = study_with(coarse=8, trials=8)
    assert {t.params["kernel"] for t in study.trials} == {5}
    assert len({(t.params["depth"], t.params["width"]) for t in study.trials}) > 3


def test_fine_phase_mutates_around_the_best_feasible_child() -> None:
    study = study_with(coarse=10, trials=40)
    coarse, fine = study.trials[:10], study.trials[10:]
    parent = best_feasible(coarse)
    assert parent is not None and parent.user_attrs["constraint"][0] <= 0
    first = fine[0].params
    # Skeleton choices stay at, or next to, the parent's.
    assert abs(DEPTHS.index(first["depth"]) - DEPTHS.index(parent.params["depth"])) <= 1
    assert abs(first["width"] - parent.params["width"]) <= 8
    # Fine-grained choices now vary.
    assert len({t.params["kernel"] for t in fine}) > 1
    best = best_feasible(study.trials)
    assert best is not None and best.user_attrs["constraint"][0] <= 0
    assert best.value >= parent.value


def test_best_feasible_prefers_meeting_the_budget() -> None:
    study = optuna.create_study(direction="maximize")
    for value, excess in [(0.9, 5.0), (0.7, -1.0), (0.8, 0.0)]:
        trial = study.ask()
        trial.set_user_attr("constraint", [excess])
        study.tell(trial, value)
    best = best_feasible(study.trials)
    assert best is not None and best.value == 0.8


def test_coarse_phase_tries_each_skeleton_once_then_moves_on() -> None:
    """Four skeletons and a coarse budget of 50: the coarse phase is the four of them,
    each once, and the fifth trial already mutates the best (its fine choice varies)."""

    def small(trial: optuna.Trial) -> float:
        depth = trial.suggest_categorical("depth", [1, 2])
        width = trial.suggest_categorical("width", [8, 16])
        kernel = trial.suggest_categorical("kernel", KERNELS)
        return depth * width + kernel / 10

    sampler = CoarseToFineSampler(skeleton={"depth", "width"}, coarse_trials=50, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(small, n_trials=30)
    coarse = [(t.params["depth"], t.params["width"]) for t in study.trials[:4]]
    assert sorted(coarse) == [(1, 8), (1, 16), (2, 8), (2, 16)]
    assert {t.params["kernel"] for t in study.trials[:4]} == {5}
    assert len({t.params["kernel"] for t in study.trials[4:]}) > 1  # the fine phase
