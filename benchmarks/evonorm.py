"""EvoNorm: (a) the graph-built layer's speed vs hand-written formulas and a naive
interpreter, (b) candidates evaluated per minute with and without the rejection
protocols and the result de-duplication, (c) evolution vs random search.

(a) Forward + backward wall time (median of ``--repeats`` after ``--warmup`` calls) of
    EvoNorm-S0 and EvoNorm-B0 (training mode), groups 8, on two input shapes
    (``--shapes``), three ways: the space's layer (``GraphLayer`` of the named genome,
    compiled by ``torch.fx``), the hand-written module of the formula
    (``named.FORMULAS``), and a naive interpreter of the same graph written here (a
    Python loop over the live nodes calling each primitive's function: what the fx
    compilation saves). The backward pass reaches the input and every parameter. Then
    one row per named layer (BN-ReLU, GN-ReLU, EvoNorm-B0, EvoNorm-S0) of a whole host,
    the pre-activation ResNet on 8x8 digits (``--host-batch``), forward, cross-entropy
    and backward with each of the three. Printed: milliseconds, graph/formula and
    interpreted/formula, and the largest difference of the graph's output from the
    formula's (they compute the same function).
(b) The real search (``nas search space=evonorm``, the default study of
    studies/evonorm.yaml: evolution, ``baselines=[]``, ``--trials`` trials, ``--epochs``
    epochs, seed ``--seed``), in-process, in four settings: the rejection protocols on or
    off (``evonorm.screen=false``: no stability and quality tests; the non-finite check
    stays) x the hash de-duplication on or off. De-duplication on is the default:
    evolution redraws a child whose Weisfeiler-Lehman key (``EvoNormSpace.
    equivalence_key``: dead nodes, node order and commuted arguments ignored) equals a
    tried trial's, and the result cache (``reuse_results``) would take over an
    equivalent graph's result or rejection. Off: for that search
    ``EvoNormSpace.equivalence_key`` is replaced by the base class's plain encoding key
    (``SearchSpace.equivalence_key``, restored after) and ``reuse_results=false``, so an
    equivalent graph (another dead node, commuted arguments) is trained again.
    ``invalid`` graphs (the output ignores x, or an aggregation reads a constant) are
    not a setting: they are free to check (no network is built), and evolution redraws
    them before any trial in every setting (so the column is ~0; random search records
    them as rejected trials, see (c)). Printed: wall seconds (the whole command, data
    loading and study creation included, after an untimed one-trial warm-up search),
    candidates (trials) per minute, the trials by outcome as read back from the study
    (complete; rejected, by the protocol in ``rejected_by``; reused, marked
    ``reused_from``, which evolution's redraws leave at 0), then the candidates evaluated
    (complete, or rejected by non-finite / stability / quality, not reused), how many of
    those computed the same layer as an earlier evaluated one (the WL key of the stored
    ``arch``, in trial order: what de-duplication saves) and the seconds those repeats
    took, the distinct layers evaluated, wall seconds per distinct layer (the telling
    number: cheap rejections and repeats inflate candidates per minute), and both rates
    relative to both off.
(c) Evolution (the study's tournament settings) vs random search at equal candidate
    counts: for each of ``--seeds`` seeds, the default study with ``strategy=evolution``
    and with ``strategy=random``, ``baselines=[]``, ``--c-trials`` trials. Printed per
    strategy: the best mean-over-hosts accuracy among COMPLETE trials (the mean of a
    trial's accuracy@resnet and accuracy@mobilenet), the best accuracy@resnet, mean and
    min over seeds, and evolution minus random; then, mean over seeds, the trials that
    complete, the candidates the space could build (not ``invalid``) and the trials
    spent on invalid graphs (random search records each as a rejected trial; evolution
    redraws them unrecorded, so ~0). A seed whose search completes no trial has no best:
    the means are over the seeds that have one (``seeds with one``), ``nan`` where none
    has.

    python benchmarks/evonorm.py [--parts abc] [--repeats 30] [--warmup 5]
        [--trials 32] [--c-trials 60] [--epochs 4] [--seeds 3] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from _table import Column, print_table

GROUPS = 8
LAYER_NAMES = ("evonorm-s0", "evonorm-b0")
HOST_LAYERS = ("bn-relu", "gn-relu", "evonorm-b0", "evonorm-s0")
VARIANTS = ("graph", "formula", "interpreted")
# (b): (row name, overrides, hash de-duplication on); the last, both off, is the
# reference of the ratios. De-duplication off also swaps the space's equivalence key.
SETTINGS = (
    ("screen+dedup", [], True),
    ("no screen", ["evonorm.screen=false"], True),
    ("no dedup", ["reuse_results=false"], False),
    ("both off", ["evonorm.screen=false", "reuse_results=false"], False),
)
PROTOCOLS = ("invalid", "non-finite", "stability", "quality")
# Rejections that come from evaluating a built network (not reused, not refused unbuilt).
EVALUATED_PROTOCOLS = ("non-finite", "stability", "quality")
STRATEGIES = ("evolution", "random")


def _shape(text: str) -> tuple[int, int, int, int]:
    parts = tuple(int(p) for p in text.split("x"))
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"a shape is BxCxHxW of positive ints, got {text!r}")
    return parts  # type: ignore[return-value]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="abc", help="any of a, b, c")
    parser.add_argument("--shapes", default="64x32x8x8,32x64x32x32", help="(a) BxCxHxW,...")
    parser.add_argument("--repeats", type=int, default=30, help="(a) timed calls, median")
    parser.add_argument("--warmup", type=int, default=5, help="(a) untimed calls first")
    parser.add_argument("--host-batch", type=int, default=64, help="(a) the host's batch")
    # (b): the study's 16 random layers, then 16 bred ones (where de-duplication acts).
    parser.add_argument("--trials", type=int, default=32, help="(b) trials per search")
    parser.add_argument("--c-trials", type=int, default=60, help="(c) trials per search")
    parser.add_argument("--epochs", type=int, default=4, help="(b, c) the study's epochs")
    parser.add_argument("--seeds", type=int, default=3, help="(c) seeds per strategy")
    parser.add_argument("--seed", type=int, default=0, help="(b) the searches' seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    for name in ("repeats", "host_batch", "trials", "c_trials", "epochs", "seeds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if args.warmup < 0 or args.seed < 0:
        parser.error("--warmup and --seed must be >= 0.")
    if not args.parts or not set(args.parts) <= set("abc"):
        parser.error(f"--parts must be made of a, b, c, got {args.parts!r}.")
    try:
        args.shapes = [_shape(s) for s in args.shapes.split(",")]
    except argparse.ArgumentTypeError as error:
        parser.error(f"--shapes: {error}")
    return args


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# --------------------------------------------------------------------- (a) layer speed
def interpreted(layer: Any, graph: Any) -> Any:
    """A module computing ``graph`` node by node on every call, with ``layer``'s
    parameters and moving averages (the naive alternative to compiling it)."""
    import torch
    from torch import nn

    from search_spaces.evonorm.graph import LEAVES, live_nodes, node_at
    from search_spaces.evonorm.layer import arguments, function_of

    live = live_nodes(graph)

    class Interpreted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values: dict[int, torch.Tensor] = {0: x, 1: x.new_zeros(())}
            for name in self.layer.parameter_names:
                values[LEAVES.index(name)] = getattr(self.layer, name)
            for index in live:
                node = node_at(graph, index)
                # The compiled layer's functions and arguments (max(a, zero) is a ReLU
                # of a): only the per-call dispatch differs.
                args = [values[source] for source in arguments(graph, index)]
                if node.op.startswith("batch_"):
                    values[index] = getattr(self.layer, f"n{index}")(*args)
                elif node.op.startswith("group_"):
                    values[index] = function_of(graph, index)(*args, self.layer.groups)
                else:
                    values[index] = function_of(graph, index)(*args)
            return values[graph.output]

    return Interpreted()


def _layers(name: str, channels: int) -> dict[str, Any]:
    """The layer ``name`` for ``channels`` channels, each way, from the same seed."""
    import torch

    from search_spaces.evonorm.layer import GraphLayer
    from search_spaces.evonorm.named import FORMULAS, named_layers

    graph = named_layers(10)[name]
    torch.manual_seed(0)
    return {
        "graph": GraphLayer(graph, channels, GROUPS),
        "formula": FORMULAS[name](channels, GROUPS),
        "interpreted": interpreted(GraphLayer(graph, channels, GROUPS), graph),
    }


def _time(step: Callable[[], Any], warmup: int, repeats: int) -> float:
    """Median milliseconds of ``step`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        step()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def _layer_row(name: str, shape: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    layers = _layers(name, shape[1])
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=generator).requires_grad_()
    upstream = torch.randn(*shape, generator=generator)
    with torch.no_grad():
        difference = float((layers["graph"](x) - layers["formula"](x)).abs().max())
    row: dict[str, Any] = {"layer": name, "shape": "x".join(map(str, shape)), "diff": difference}
    for variant, layer in layers.items():
        layer.train()

        def step(layer: Any = layer) -> None:
            x.grad = None
            layer.zero_grad(set_to_none=True)
            layer(x).backward(upstream)

        row[variant] = _time(step, args.warmup, args.repeats)
    return row


def _host_row(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from nas.core.dataspec import DataSpec
    from search_spaces.evonorm import hosts
    from search_spaces.evonorm.layer import GraphLayer
    from search_spaces.evonorm.named import FORMULAS, named_layers
    from search_spaces.evonorm.space import RESNET_WIDTHS, EvoNormSpace

    space = EvoNormSpace(groups=GROUPS)
    graph = named_layers(space.settings.nodes)[name]
    spec = DataSpec(1, 10, 8)
    torch.manual_seed(0)
    networks = {
        "graph": space.build_host(graph, spec, "resnet"),
        "formula": hosts.PreActResNet(
            1, 10, RESNET_WIDTHS, lambda c: FORMULAS[name](c, GROUPS)
        ),
        "interpreted": hosts.PreActResNet(
            1, 10, RESNET_WIDTHS,
            lambda c: interpreted(GraphLayer(graph, c, GROUPS), graph),
        ),
    }  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.host_batch, *spec.input_shape(1)[1:], generator=generator)
    y = torch.randint(0, 10, (args.host_batch,), generator=generator)
    row: dict[str, Any] = {"layer": name, "shape": f"resnet b{args.host_batch}", "diff": math.nan}
    for variant, network in networks.items():
        network.train()

        def step(network: Any = network) -> None:
            network.zero_grad(set_to_none=True)
            F.cross_entropy(network(x), y).backward()

        row[variant] = _time(step, args.warmup, args.repeats)
    return row


def part_a(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [_layer_row(name, shape, args) for name in LAYER_NAMES for shape in args.shapes]
    rows += [_host_row(name, args) for name in HOST_LAYERS]
    for row in rows:
        row["graph_ratio"] = row["graph"] / row["formula"]
        row["interp_ratio"] = row["interpreted"] / row["formula"]
    print_table(
        f"(a) forward+backward ms (median of {args.repeats} after {args.warmup}), groups "
        f"{GROUPS}, training mode: graph layer (torch.fx) vs hand-written formula vs "
        f"node-by-node interpreter; host rows: the whole PreAct-ResNet on 8x8, "
        f"{_threads()} torch threads, cpu",
        [
            Column("layer", "layer", "<11"),
            Column("shape / host", "shape", "<14"),
            Column("graph ms", "graph", ">9.3f"),
            Column("formula ms", "formula", ">10.3f"),
            Column("interp ms", "interpreted", ">10.3f"),
            Column("graph/formula", "graph_ratio", ">13.2f"),
            Column("interp/formula", "interp_ratio", ">14.2f"),
            Column("max |diff|", "diff", ">10.1e"),
        ],
        rows,
    )
    return rows


# --------------------------------------------------------------------- searches
@contextlib.contextmanager
def _plain_keys() -> Iterator[None]:
    """EvoNorm's graph hash replaced, while inside, by the base class's plain encoding
    key (``SearchSpace.equivalence_key``): evolution then tells children apart by their
    genomes only, and the result cache keys them so too."""
    from search_spaces.base import SearchSpace
    from search_spaces.evonorm.space import EvoNormSpace

    with mock.patch.object(EvoNormSpace, "equivalence_key", SearchSpace.equivalence_key):
        yield


def _search(tmp: Path, study: str, overrides: list[str]) -> tuple[float, list[Any]]:
    """Run ``nas search space=evonorm`` in-process into a fresh sqlite file under
    ``tmp`` (its output swallowed); the wall seconds and the study's trials."""
    import optuna

    from nas.cli import main as nas

    url = f"sqlite:///{tmp / study}.db"
    command = ["search", "space=evonorm", f"storage={url}", f"study={study}", *overrides]
    output = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = nas(command)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"nas {' '.join(command)} exited {code}:\n{output.getvalue()[-3000:]}")
    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return wall, trials


def _outcomes(trials: list[Any]) -> dict[str, int]:
    counts = Counter(
        str(t.user_attrs["rejected_by"]) for t in trials if "rejected_by" in t.user_attrs
    )
    row = {protocol: counts.pop(protocol, 0) for protocol in PROTOCOLS}
    row["other"] = sum(counts.values())  # rejected by a protocol not listed here
    row["complete"] = sum(t.state.name == "COMPLETE" for t in trials)
    row["reused"] = sum("reused_from" in t.user_attrs for t in trials)
    row["trials"] = len(trials)
    return row


def _evaluated(trials: list[Any]) -> dict[str, Any]:
    """The candidates evaluated (complete, or rejected by a protocol that runs the built
    network; not reused), and those equivalent to an earlier evaluated one by the WL key
    of their stored ``arch``, in trial order: count and seconds."""
    from search_spaces.evonorm.graph import decode_graph, equivalence_key

    seen: set[str] = set()
    repeats, repeat_seconds, evaluated = 0, 0.0, 0
    for trial in sorted(trials, key=lambda t: t.number):
        attrs = trial.user_attrs
        done = trial.state.name == "COMPLETE" or attrs.get("rejected_by") in EVALUATED_PROTOCOLS
        if not done or "reused_from" in attrs or "arch" not in attrs:
            continue
        evaluated += 1
        key = equivalence_key(decode_graph(attrs["arch"], len(attrs["arch"]["nodes"])))
        if key in seen:
            repeats += 1
            if trial.datetime_start and trial.datetime_complete:
                repeat_seconds += (trial.datetime_complete - trial.datetime_start).total_seconds()
        seen.add(key)
    return {
        "evaluated": evaluated,
        "repeats": repeats,
        "repeat_s": repeat_seconds,
        "distinct": len(seen),
    }


def part_b(args: argparse.Namespace) -> list[dict[str, Any]]:
    common = [f"trials={args.trials}", f"epochs={args.epochs}", "baselines=[]", f"seed={args.seed}"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        # Untimed: first-use costs (imports, the data, torch kernels) of every search.
        _search(Path(tmp), "warm-up", ["trials=1", "epochs=1", "baselines=[bn-relu]"])
        for name, overrides, dedup in SETTINGS:
            study = "b-" + name.replace(" ", "-").replace("+", "-")
            with contextlib.nullcontext() if dedup else _plain_keys():
                wall, trials = _search(Path(tmp), study, [*common, *overrides])
            row = {"setting": name, "dedup": dedup, "wall": wall}
            row["per_min"] = 60 * len(trials) / wall
            row.update(_outcomes(trials), **_evaluated(trials))
            row["s_per_distinct"] = wall / row["distinct"] if row["distinct"] else math.nan
            rows.append(row)
    reference = rows[-1]
    for row in rows:
        row["ratio"] = row["per_min"] / reference["per_min"]
        row["distinct_ratio"] = row["s_per_distinct"] / reference["s_per_distinct"]
    print_table(
        f"(b) the default evonorm study (evolution), {args.trials} candidates, {args.epochs} "
        f"epochs, seed {args.seed}, baselines=[]: candidates per minute and seconds per "
        f"distinct layer with the rejection protocols (screen) and the hash de-duplication "
        f"(WL key + reuse_results) on or off; repeats: evaluated candidates equivalent to "
        f"an earlier one, {_threads()} torch threads, cpu",
        [
            Column("setting", "setting", "<12"),
            Column("wall s", "wall", ">7.1f"),
            Column("cand/min", "per_min", ">8.1f"),
            Column("complete", "complete", ">8d"),
            Column("invalid", "invalid", ">7d"),
            Column("non-finite", "non-finite", ">10d"),
            Column("stability", "stability", ">9d"),
            Column("quality", "quality", ">7d"),
            Column("reused", "reused", ">6d"),
            Column("evaluated", "evaluated", ">9d"),
            Column("repeats", "repeats", ">7d"),
            Column("repeat s", "repeat_s", ">8.1f"),
            Column("distinct", "distinct", ">8d"),
            Column("s/distinct", "s_per_distinct", ">10.2f"),
            Column("cand/min vs both off", lambda row: f"{row['ratio']:.2f}x", ">20"),
            Column("s/distinct vs both off", lambda row: f"{row['distinct_ratio']:.2f}x", ">22"),
        ],
        rows,
    )
    return rows


def _best(trials: list[Any]) -> dict[str, Any]:
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    return {
        "best": max((statistics.mean(t.values) for t in complete), default=math.nan),
        # The study's objectives are [accuracy@resnet, accuracy@mobilenet], in that order.
        "best_resnet": max((t.values[0] for t in complete), default=math.nan),
        "complete": len(complete),
        "buildable": sum(t.user_attrs.get("rejected_by") != "invalid" for t in trials),
        "invalid": sum(t.user_attrs.get("rejected_by") == "invalid" for t in trials),
    }


def _over_seeds(values: list[float]) -> tuple[float, float]:
    """(mean, min) over the seeds that have a value; nan where none has."""
    found = [v for v in values if not math.isnan(v)]
    return (statistics.mean(found), min(found)) if found else (math.nan, math.nan)


def part_c(args: argparse.Namespace) -> list[dict[str, Any]]:
    common = [f"trials={args.c_trials}", f"epochs={args.epochs}", "baselines=[]"]
    runs: dict[str, list[dict[str, Any]]] = {strategy: [] for strategy in STRATEGIES}
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        for seed in range(args.seeds):
            for strategy in STRATEGIES:
                overrides = [*common, f"strategy={strategy}", f"seed={seed}"]
                _, trials = _search(Path(tmp), f"c-{strategy}-{seed}", overrides)
                runs[strategy].append(_best(trials))
    rows = []
    for strategy, mine in runs.items():
        mean, low = _over_seeds([run["best"] for run in mine])
        resnet_mean, resnet_min = _over_seeds([run["best_resnet"] for run in mine])
        rows.append(
            {
                "strategy": strategy,
                "mean_best": mean,
                "min_best": low,
                "mean_resnet": resnet_mean,
                "min_resnet": resnet_min,
                "found": sum(not math.isnan(run["best"]) for run in mine),
                "complete": statistics.mean(run["complete"] for run in mine),
                "buildable": statistics.mean(run["buildable"] for run in mine),
                "invalid": statistics.mean(run["invalid"] for run in mine),
            }
        )
    random_row = rows[-1]
    for row in rows:
        row["vs_random"] = row["mean_best"] - random_row["mean_best"]
        row["vs_random_resnet"] = row["mean_resnet"] - random_row["mean_resnet"]
    print_table(
        f"(c) evolution (tournaments, the study's settings) vs random search, {args.c_trials} "
        f"candidates, {args.epochs} epochs, baselines=[], {args.seeds} seeds: best accuracy "
        f"of the complete trials (mean over hosts; resnet), {_threads()} torch threads, cpu",
        [
            Column("strategy", "strategy", "<10"),
            Column("mean best", "mean_best", ">9.4f"),
            Column("min best", "min_best", ">8.4f"),
            Column("vs random", "vs_random", ">+9.4f"),
            Column("resnet mean", "mean_resnet", ">11.4f"),
            Column("resnet min", "min_resnet", ">10.4f"),
            Column("resnet vs random", "vs_random_resnet", ">+16.4f"),
            Column("seeds with one", lambda row: f"{row['found']}/{args.seeds}", ">14"),
            Column("complete", "complete", ">8.1f"),
            Column("buildable", "buildable", ">9.1f"),
            Column("invalid", "invalid", ">7.1f"),
        ],
        rows,
    )
    return rows


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Run the chosen parts, print their tables and return their rows by part."""
    import optuna
    import torch

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    results: dict[str, list[dict[str, Any]]] = {}
    if "a" in args.parts:
        results["a"] = part_a(args)
    if "b" in args.parts:
        results["b"] = part_b(args)
    if "c" in args.parts:
        results["c"] = part_c(args)
    return results


if __name__ == "__main__":
    main()
