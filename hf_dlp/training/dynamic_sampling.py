"""DAPO's dynamic sampling on TRL's generation batch: find prompt groups without learning signal and swap them.

A prompt group (consecutive rows of `num_generations` completions of one prompt, TRL's layout before it shuffles the
generation batch) has no learning signal when all its advantages are zero: every completion got the same reward, so
GRPO's gradient vanishes for it. `ReweightedGRPOTrainer` (with `dynamic_sampling=True`) generates more groups and
merges those with signal in with `replace_groups` (`DynamicSamplingMixin`).
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate.logging import get_logger

logger = get_logger(__name__)


def groups_with_signal(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    """Which prompt groups (consecutive rows of `group_size`) have a non-zero advantage somewhere, shape `(groups,)`.

    Examples:

    >>> import torch
    >>> groups_with_signal(torch.tensor([0.0, 0.0, 0.7, -0.7, 0.0, 0.0]), group_size=2)
    tensor([False,  True, False])
    """
    advantages = advantages if advantages.dim() == 1 else advantages.abs().amax(dim=1)
    return advantages.view(-1, group_size).abs().amax(dim=1) > 0


_LEFT_PADDED = ("prompt_ids", "prompt_mask")


def _pad_to(tensor: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
    if tensor.shape[1] == width:
        return tensor
    pad = tensor.new_full((tensor.shape[0], width - tensor.shape[1]), value)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def replace_groups(
    output: dict[str, Any], extra: dict[str, Any], missing: torch.Tensor, group_size: int, pad_token_id: int
) -> dict[str, Any]:
    """A new batch dict where the groups flagged in `missing` are replaced, in order, by the groups of `extra` that
    have signal (as many as there are). Prompts stay left-padded and completions right-padded; neither input changes.

    Examples:

    >>> import torch
    >>> batch = {"prompt_ids": torch.tensor([[7], [7], [8], [8]]), "prompt_mask": torch.ones(4, 1, dtype=torch.long),
    ...          "completion_ids": torch.tensor([[1], [2], [3], [3]]), "advantages": torch.tensor([1.0, -1.0, 0.0, 0.0])}
    >>> extra = {"prompt_ids": torch.tensor([[4, 9], [4, 9]]), "prompt_mask": torch.ones(2, 2, dtype=torch.long),
    ...          "completion_ids": torch.tensor([[5, 6], [5, 0]]), "advantages": torch.tensor([0.5, -0.5])}
    >>> merged = replace_groups(batch, extra, torch.tensor([False, True]), group_size=2, pad_token_id=0)
    >>> merged["prompt_ids"].tolist(), merged["completion_ids"].tolist(), merged["advantages"].tolist()
    ([[0, 7], [0, 7], [4, 9], [4, 9]], [[1, 0], [2, 0], [5, 6], [5, 0]], [1.0, -1.0, 0.5, -0.5])
    """
    if set(output) != set(extra):
        raise ValueError(f"Cannot merge batches with different keys: {sorted(output)} vs {sorted(extra)}.")
    donors = groups_with_signal(extra["advantages"], group_size).nonzero().flatten()
    targets = missing.nonzero().flatten()[: donors.numel()]
    donors = donors[: targets.numel()]
    if targets.numel() == 0:
        return output
    offsets = torch.arange(group_size, device=targets.device)
    target_rows = (targets[:, None] * group_size + offsets).flatten()
    donor_rows = (donors[:, None] * group_size + offsets.to(donors.device)).flatten()
    merged = {}
    for key, value in output.items():
        other = extra[key]
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            if isinstance(value, torch.Tensor) or value is None:
                merged[key] = value
                continue
            raise ValueError(
                f"`dynamic_sampling=True` handles text-only batches, but the batch has a {key!r} field of type "
                f"{type(value).__name__} it cannot merge. Set `dynamic_sampling=False` for this data."
            )
        if value.dim() == 2 and value.shape[1] != other.shape[1]:
            width, left = max(value.shape[1], other.shape[1]), key in _LEFT_PADDED
            pad = pad_token_id if key in ("prompt_ids", "completion_ids") else 0
            value, other = _pad_to(value, width, pad, left), _pad_to(other, width, pad, left)
        value = value.clone()
        value[target_rows] = other[donor_rows].to(value.dtype)
        merged[key] = value
    return merged


class DynamicSamplingMixin:
    """The refill loop of `ReweightedGRPOTrainer` (a `GRPOTrainer` subclass; this mixin goes before it in the bases).

    Examples:

    >>> from hf_dlp.training import ReweightedGRPOTrainer
    >>> issubclass(ReweightedGRPOTrainer, DynamicSamplingMixin)
    True
    """

    _refill_iterator = None  # dynamic sampling's own pass over the training set

    def _refill_groups_without_signal(self, output: dict[str, Any]) -> dict[str, Any]:
        """Swap prompt groups whose advantages are all zero for groups with signal from extra generation rounds.

        Every rank runs the same number of rounds (TRL's generation holds collectives), until no rank has a group
        left to replace or `dynamic_sampling_max_rounds` is reached.
        """
        group_size, rounds = self.num_generations, 0
        while True:
            missing = ~groups_with_signal(output["advantages"], group_size)
            counts = self.accelerator.gather(
                torch.stack([missing.sum(), torch.tensor(missing.numel())]).to(self.accelerator.device).view(1, 2)
            )
            counts = counts.view(-1, 2)
            if counts[:, 0].max() == 0:
                break
            if rounds == self.args.dynamic_sampling_max_rounds:
                logger.info(
                    f"Dynamic sampling: {int(counts[:, 0].sum())} prompt groups still without signal after "
                    f"{rounds} extra rounds (`dynamic_sampling_max_rounds`); they stay in the batch."
                )
                break
            extra = super()._generate_and_score_completions(self._next_refill_batch())
            output = replace_groups(output, extra, missing, group_size, self._tokenizer.pad_token_id)
            rounds += 1
        output["num_items_in_batch"] = self.accelerator.gather(self._loss_mask(output).sum()).sum()
        self._metrics["train"]["dynamic_sampling/rounds"].append(float(rounds))
        self._metrics["train"]["dynamic_sampling/frac_groups_without_signal"].append(
            (counts[:, 0].sum() / counts[:, 1].sum()).item()
        )
        return output

    def _next_refill_batch(self) -> list[dict[str, Any]]:
        """The next local generation batch of prompts from a second pass over the training set."""
        if self._refill_iterator is None:
            self._refill_iterator = iter(self.get_train_dataloader())
        batch = next(self._refill_iterator, None)
        if batch is None:  # the second pass is exhausted: start another
            self._refill_iterator = iter(self.get_train_dataloader())
            batch = next(self._refill_iterator)
        # TRL's sampler repeats each generation batch once per step that consumes it; skip the repeats.
        for _ in range(self.num_iterations * self.args.steps_per_generation - 1):
            next(self._refill_iterator, None)
        return batch


__all__ = ["DynamicSamplingMixin", "groups_with_signal", "replace_groups"]
