"""Named prediction tasks: which benchmark file, which target, which family.

A *task* is one (family, variant, target) whose values rank architectures. Training
and evaluation name tasks; leave-family-out training drops every task of a family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasassist_plugins.errors import DataError
from nasassist_plugins.predictor.training.pipeline import LabelledSet


@dataclass(frozen=True)
class Task:
    name: str
    family: str
    variant: str
    target: str
    description: str


_TNB_TASKS = ("class_scene", "class_object", "jigsaw", "segmentsemantic", "autoencoder", "normal", "room_layout")

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("nb101", "nb101", "30k", "val_acc_108", "NB101 CIFAR-10 validation accuracy, 108 epochs"),
        Task("nb201-c10", "nb201", "zc-cifar10", "cifar10_val", "NB201 CIFAR-10 validation accuracy, 200 epochs (9,445)"),
        Task("nb201-in16", "nb201", "zc-imagenet16-120", "imagenet16-120_val", "NB201 ImageNet16-120 val, 200 epochs (9,445)"),
        Task("nb201-c100-12ep", "nb201", "12epoch", "cifar100_val", "NB201 CIFAR-100 validation accuracy, 12 epochs"),
        Task("nb201-c10-12ep", "nb201", "12epoch", "cifar10_val", "NB201 CIFAR-10 validation accuracy, 12 epochs"),
        Task("nb301", "nb301", "zc", "val_accuracy", "NB301 surrogate CIFAR-10 validation accuracy (725)"),
        *[Task(f"tnb101-{k}", "tnb101", "micro", k, f"TransNAS-Bench-101 micro, {k}") for k in _TNB_TASKS],
    ]
}

#: Tasks used when a whole family is asked for (one per distinct benchmark file/target).
FAMILY_TASKS: dict[str, tuple[str, ...]] = {
    "nb101": ("nb101",),
    "nb201": ("nb201-c10", "nb201-in16", "nb201-c100-12ep"),
    "nb301": ("nb301",),
    "tnb101": tuple(f"tnb101-{k}" for k in _TNB_TASKS),
}


def resolve_tasks(names: str | list[str], leave_out: str | None = None) -> list[Task]:
    """Task names or family names (comma-separated) -> tasks, minus a left-out family."""
    items = names.split(",") if isinstance(names, str) else list(names)
    tasks: list[Task] = []
    for item in (i.strip() for i in items if i.strip()):
        if item == "all":
            tasks += [TASKS[t] for fam in FAMILY_TASKS.values() for t in fam]
        elif item in FAMILY_TASKS:
            tasks += [TASKS[t] for t in FAMILY_TASKS[item]]
        elif item in TASKS:
            tasks.append(TASKS[item])
        else:
            raise DataError(f"unknown family or task {item!r}; choose from {sorted(set(FAMILY_TASKS) | set(TASKS))}")
    if leave_out:
        if leave_out not in FAMILY_TASKS:
            raise DataError(f"--leave-out takes a family ({', '.join(FAMILY_TASKS)}), got {leave_out!r}")
        tasks = [t for t in tasks if t.family != leave_out]
    seen: set[str] = set()
    return [t for t in tasks if not (t.name in seen or seen.add(t.name))]


def load_task(
    task: Task,
    data_dir: str | Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
) -> tuple[LabelledSet, dict[str, np.ndarray]]:
    """The task's labelled set (``limit`` random rows when given) and its stored proxies.

    Only the selected rows are traced (graphs come from, and go into, the family's cache).
    """
    from nasassist_plugins.families import graph_store_for, read_table

    definition, _, _, table = read_table(task.family, data_dir, variant=task.variant)
    if task.target not in table.targets:
        raise DataError(f"{task.name}: target {task.target!r} not in {sorted(table.targets)}")
    values = np.asarray(table.targets[task.target], dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(values))
    if limit is not None and limit < len(keep):
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=limit, replace=False))
    keys = [table.keys[i] for i in keep]
    store, _ = graph_store_for(definition, keys, progress=progress, n_jobs=n_jobs)
    graphs = [store.graph(store.index[k]) for k in keys]
    proxies = {name: np.asarray(v, dtype=np.float64)[keep] for name, v in (table.proxies or {}).items()}
    return LabelledSet(task.family, task.name, graphs, values[keep]), proxies
