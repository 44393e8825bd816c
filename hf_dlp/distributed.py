"""Data parallel work for analysis, evaluation and sweeps: split fixed work items between processes, gather in order.

hf_dlp's functions detect a launched environment themselves, through accelerate's `PartialState`: under
`accelerate launch` or `torchrun` every process takes its share of the work items, and the results are gathered on
every process in the original order, so a user's script gets the same objects on every rank; in a plain
`python script.py` there is one process and nothing changes. A work item is a fixed unit (one batch of consecutive
sequences, seeded by its index), so the results do not depend on the number of processes.

Shares are strided: process `r` of `n` takes items `r, r + n, r + 2n, ...`, which balances neighbouring (similar)
items. Only the main process writes files and shows progress bars; a bar counts the items of all processes (it
advances by the number of processes per item the main process finishes, an estimate of the global count).

Examples:

>>> from hf_dlp.distributed import distributed_map, is_main_process, num_processes
>>> num_processes(), is_main_process()          # a plain Python process
(1, True)
>>> distributed_map(lambda index: index * index, 4, progress=False)
[0, 1, 4, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState

T = TypeVar("T")


def distributed_state() -> PartialState:
    """accelerate's `PartialState` of this process (one process unless launched with `accelerate launch`/`torchrun`).

    Creating it joins the process group when the launcher set one up (gloo on CPU, nccl on GPUs).

    Examples:

    >>> distributed_state().num_processes
    1
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _launched() -> bool:
    """Whether a launcher started several processes (read from the environment, without creating a state)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def num_processes() -> int:
    """The number of processes sharing the work (1 in a plain Python process)."""
    return distributed_state().num_processes if _launched() else 1


def process_index() -> int:
    """This process's index, from 0 to `num_processes() - 1`."""
    return distributed_state().process_index if _launched() else 0


def is_main_process() -> bool:
    """Whether this process writes files and shows progress bars (process 0)."""
    return process_index() == 0


def default_device() -> torch.device:
    """The device of this process: its own GPU under a launcher (`cuda:LOCAL_RANK`), else CUDA when available, else
    the CPU.

    Examples:

    >>> import torch
    >>> default_device().type in ("cpu", "cuda")
    True
    """
    import torch

    if _launched():
        device = distributed_state().device
        return torch.device("cpu") if device.type == "cpu" else device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def process_gpus(device_count: int | None = None) -> list[int]:
    """The GPUs of this process when several processes share a machine: an equal, contiguous slice of the visible
    GPUs per local process (all of them in one process). `device_map="auto"` places a pair too big for one GPU
    within this slice, so 4 processes on 8 GPUs each spread their pair over 2 GPUs.

    Examples:

    >>> process_gpus(device_count=8)   # one process: every GPU
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    import os

    if device_count is None:
        import torch

        device_count = torch.cuda.device_count()
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if _launched() else 0
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if _launched() else 1
    if device_count < local_size:
        return [local_rank % device_count] if device_count else []
    share = device_count // local_size
    return list(range(local_rank * share, (local_rank + 1) * share))


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    if _launched():
        distributed_state().wait_for_everyone()


def shard_indices(num_items: int) -> range:
    """The work items of this process: `range(process_index(), num_items, num_processes())`.

    Examples:

    >>> list(shard_indices(5))
    [0, 1, 2, 3, 4]
    """
    return range(process_index(), num_items, num_processes())


def gather_in_order(local: Sequence[T], num_items: int) -> list[T]:
    """All processes' results in the global item order, on every process, from each process's `shard_indices` results.

    Results are pickled to travel (`torch.distributed.all_gather_object` through `accelerate.utils.gather_object`), so
    keep tensors in them on the CPU.

    Examples:

    >>> gather_in_order(["a", "b"], 2)
    ['a', 'b']
    """
    indices = shard_indices(num_items)
    if len(local) != len(indices):
        raise ValueError(f"`local` holds {len(local)} results, but this process has {len(indices)} work items.")
    if num_processes() == 1:
        return list(local)
    from accelerate.utils import gather_object

    pairs = gather_object(list(zip(indices, local, strict=True)))
    ordered = [value for _, value in sorted(pairs, key=lambda pair: pair[0])]
    if len(ordered) != num_items:
        raise RuntimeError(f"Gathered {len(ordered)} results for {num_items} work items; a process lost some.")
    return ordered


def distributed_map(
    function: Callable[[int], T],
    num_items: int,
    *,
    progress: bool = True,
    description: str = "",
    unit: str = "batch",
) -> list[T]:
    """`[function(index) for index in range(num_items)]`, the items shared between the processes, gathered in order.

    `function` must give the same result for an item whatever process runs it (seed it from the index). The progress
    bar shows on the main process only, over all `num_items` items.

    Examples:

    >>> distributed_map(str, 3, progress=False)
    ['0', '1', '2']
    """
    from tqdm.auto import tqdm

    count = num_processes()
    with tqdm(total=num_items, desc=description, unit=unit, disable=not progress or not is_main_process()) as bar:
        local = []
        for index in shard_indices(num_items):
            local.append(function(index))
            bar.update(min(count, num_items - bar.n))
    return gather_in_order(local, num_items)


def sum_over_processes(value: int | float) -> int | float:
    """The sum of a number over all processes (exact for integers), known to every process.

    Examples:

    >>> sum_over_processes(3)
    3
    """
    if num_processes() == 1:
        return value
    from accelerate.utils import gather_object

    return sum(gather_object([value]))


def broadcast_from_main(value: T) -> T:
    """The main process's `value`, on every process (e.g. which finished cells a rerun may reuse).

    Examples:

    >>> broadcast_from_main({"reused": 2})
    {'reused': 2}
    """
    if num_processes() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


__all__ = [
    "barrier",
    "broadcast_from_main",
    "default_device",
    "distributed_map",
    "distributed_state",
    "gather_in_order",
    "is_main_process",
    "num_processes",
    "process_gpus",
    "process_index",
    "shard_indices",
    "sum_over_processes",
]
