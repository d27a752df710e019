"""Record the lookup table of the ``toy_cells`` space: train all 256 cells on digits.

The cell follows NAS-Bench-201's design (Dong & Yang, "NAS-Bench-201: Extending the Scope
of Reproducible Neural Architecture Search", ICLR 2020), cut down to 4 edges: node j sums
op(edge i->j) over the edges into it; the edges are 0->1, 0->2, 1->2, 2->3 and node 3 is
the output. Each edge is one of none (zeros), skip, conv3x3 (ReLU-conv-BN), avgpool3x3.

Network: a 3x3 conv stem (1 -> C=8 channels, BN) on the 8x8 digit images, the cell, a
stride-2 2x2 average pool, the cell again (own weights), global average pool, linear.

Training, identical for every cell: torch.manual_seed(0) before building the network and
shuffling, 4 epochs of SGD (momentum 0.9, Nesterov, lr 0.05 with cosine decay per step,
no weight decay), batch 64, torch.set_num_threads(1), on scikit-learn's ``load_digits``
(pixels / 16) with a fixed stratified 80/20 train/validation split
(``train_test_split(..., test_size=0.2, random_state=0, stratify=y)``: 1437 / 360 images).
val_accuracy is the fraction of validation images classified right after the 4th epoch;
params counts trainable parameters; flops is FlopCounterMode's total for one 1x1x8x8
input in eval mode (convolutions and the linear layer; pools and sums are not counted).
Both count every op of the cell, also one whose output a ``none`` edge discards.

Recorded on 2026-12-03 with (from the repository root):

    OMP_NUM_THREADS=1 python examples/nas_lookup_example/make_table.py

It took 3 minutes on one CPU core. It prints one line per 16 cells and appends one row
per cell, skipping cells already in the file, so an interrupted run (Ctrl-C) resumes where
it stopped. Needs torch and scikit-learn, not nas.
"""

from __future__ import annotations

import csv
import datetime
import itertools
import sys
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

EDGES = ("0->1", "0->2", "1->2", "2->3")  # as in nas_lookup_example.EDGES
OPS = ("none", "skip", "conv3x3", "avgpool3x3")  # as in nas_lookup_example.OPS
SEED, SPLIT_SEED, CHANNELS, EPOCHS, BATCH, LR = 0, 0, 8, 4, 64, 0.05
TABLE = Path(__file__).parent / "nas_lookup_example" / "toy_cells.csv"
COMMAND = "OMP_NUM_THREADS=1 python examples/nas_lookup_example/make_table.py"


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, channels: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip":
        return nn.Identity()
    if op == "conv3x3":
        return nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class Cell(nn.Module):
    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = [tuple(int(n) for n in edge.split("->")) for edge in EDGES]
        self.ops = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x, 0, 0, 0]
        for (i, j), op in zip(self.edges, self.ops, strict=True):
            nodes[j] = nodes[j] + op(nodes[i])
        return nodes[3]


def make_network(ops: tuple[str, ...]) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, CHANNELS, 3, padding=1, bias=False),
        nn.BatchNorm2d(CHANNELS),
        Cell(ops, CHANNELS),
        nn.AvgPool2d(2, stride=2),
        Cell(ops, CHANNELS),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(CHANNELS, 10),
    )


def load_data() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    index = list(range(len(y)))
    train, val = train_test_split(
        index, test_size=0.2, random_state=SPLIT_SEED, stratify=digits.target
    )
    return x[train], y[train], x[val], y[val]


def train_and_score(ops: tuple[str, ...], data: tuple[torch.Tensor, ...]) -> dict[str, float]:
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(SEED)
    model = make_network(ops)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 8, 8))
    flops = counter.get_total_flops()
    steps = EPOCHS * -(-len(y_train) // BATCH)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(EPOCHS):
        model.train()
        for batch in torch.randperm(len(y_train)).split(BATCH):
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        correct = (model(x_val).argmax(1) == y_val).sum().item()
    return {"val_accuracy": correct / len(y_val), "params": params, "flops": flops}


def recorded(table: Path) -> set[str]:
    if not table.exists():
        return set()
    lines = [line for line in table.read_text().splitlines() if not line.startswith("#")]
    return {row["arch"] for row in csv.DictReader(lines)}


def main(table: Path = TABLE) -> None:
    torch.set_num_threads(1)
    done = recorded(table)
    if not table.exists():
        table.write_text(
            f"# toy_cells lookup table: {len(OPS) ** len(EDGES)} cells on digits, made by\n"
            f"#   {COMMAND}\n"
            f"# started {datetime.date.today().isoformat()}; torch {torch.__version__}; "
            f"edges {' '.join(EDGES)}; seed {SEED}; split seed {SPLIT_SEED} (80/20)\n"
            f"# C={CHANNELS}; {EPOCHS} epochs SGD momentum 0.9 nesterov lr {LR} cosine; "
            f"batch {BATCH}; 1 thread; flops for one 1x1x8x8 input\n"
            "arch,val_accuracy,params,flops\n"
        )
    data = load_data()
    start = time.perf_counter()
    cells = list(itertools.product(OPS, repeat=len(EDGES)))
    with table.open("a") as out:
        for number, ops in enumerate(cells, 1):
            arch = "|".join(ops)
            if arch not in done:
                row = train_and_score(ops, data)
                out.write(f"{arch},{row['val_accuracy']:.6f},{row['params']},{row['flops']}\n")
                out.flush()  # one whole row at a time: Ctrl-C loses at most the current cell
            if number % 16 == 0:
                print(
                    f"{number}/{len(cells)} cells ({len(done)} recorded before), "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else TABLE)
