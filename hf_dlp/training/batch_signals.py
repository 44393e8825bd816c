"""What `ReweightedGRPOTrainer` computes once per generation batch, before TRL shuffles and splits it into steps.

- response-level weights (the `"ppl"` family and registered `level="response"` weightings), which need whole prompt
  groups in order;
- token masks (`token_mask_by`), whose quantiles run over all processes' response tokens;
- the Δlog p monitor (`delta_logp_monitor`).

They need log π_old and, for Δlog p, log π_ref of the whole batch. TRL stores the first only off-policy
(`num_iterations > 1`, vLLM importance sampling, ...) and the second only with `beta != 0`; otherwise one no-grad
forward pass each computes them, once per batch and only when a feature asks for them. The reference is TRL's own
`ref_model`, which `ReweightedGRPOTrainer` has TRL build when `beta == 0` (`reference_model_for`), or for a PEFT
policy the policy with its adapter disabled (TRL's `use_adapter`): no second copy of the weights.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

from .token_masks import DELTA_LOGP_MASKS, delta_logp_statistics, select_tokens

RESPONSE_WEIGHTS_KEY = "reweight_response_weights"
"""Key of the per-response weights that response-level weightings add to TRL's batch dict."""

TOKEN_MASK_KEY = "reweight_token_mask"
"""Key of the `(B, T)` token selection that `token_mask_mode="loss_mask"`/`"reweight"` adds to TRL's batch dict."""

_REFERENCE_ONLY_BETA = 1.0  # any non-zero beta makes TRL build its reference model; the KL term is switched off after
_MULTIMODAL_KEYS = ("pixel_values", "image_grid_thw", "pixel_attention_mask", "image_sizes", "num_images")


@contextlib.contextmanager
def reference_model_for(args: Any):
    """Have `GRPOTrainer.__init__` build its reference model although `beta == 0`, when the monitor or a Δlog p mask
    needs it: `args.beta` reads non-zero inside the block and is restored after it (the trainer then resets
    `self.beta`, so the loss has no KL term). TRL builds it as for `beta > 0`: a copy from the model's folder, or
    nothing for a PEFT policy, whose adapter is disabled instead. `sync_ref_model` is left to TRL's own check.

    Examples:

    >>> from types import SimpleNamespace
    >>> args = SimpleNamespace(beta=0.0, sync_ref_model=False, needs_reference_model=True)
    >>> with reference_model_for(args):
    ...     args.beta != 0
    True
    >>> args.beta
    0.0
    """
    if not args.needs_reference_model or args.beta != 0.0 or args.sync_ref_model:
        yield
        return
    args.beta = _REFERENCE_ONLY_BETA
    try:
        yield
    finally:
        args.beta = 0.0


class GenerationBatchMixin:
    """The per-generation-batch computations of `ReweightedGRPOTrainer` (a mixin placed before `GRPOTrainer`).

    Examples:

    >>> from hf_dlp.training import ReweightedGRPOTrainer
    >>> issubclass(ReweightedGRPOTrainer, GenerationBatchMixin)
    True
    """

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="sum")

    def _add_batch_signals(self, output: dict[str, Any]) -> dict[str, Any]:
        """Response weights (training and evaluation), then the monitor and the token mask (training only)."""
        cache: dict[str, torch.Tensor] = {}
        if self.reweighter.level == "response":
            output[RESPONSE_WEIGHTS_KEY] = self._response_weights(output, cache)
        if not self.model.training:
            return output
        if self.args.delta_logp_monitor:
            self._log_delta_logp(output, cache)
        if self.args.token_mask_by != "none" and self.state.global_step + 1 >= self.args.token_mask_start_step:
            self._add_token_mask(output, cache)
        return output

    # ----------------------------------------------------------------------------------------------------------------
    # Log-probs of the whole batch
    # ----------------------------------------------------------------------------------------------------------------

    def _batch_logps(self, model: Any, output: dict[str, Any]) -> torch.Tensor:
        """log π(y_t) of the batch's completion tokens under `model`, in one no-grad pass (TRL's fused head)."""
        present = [key for key in _MULTIMODAL_KEYS if output.get(key) is not None]
        if present:
            raise ValueError(
                f"The Δlog p monitor, token masks and response-level weightings work on text-only batches, but this "
                f"one has {present}. Turn them off (`delta_logp_monitor`, `token_mask_by`, `reweighting`) for it."
            )
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        training = self.model.training
        batch_size = self.args.per_device_train_batch_size if training else self.args.per_device_eval_batch_size
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, output["completion_ids"].size(1), batch_size=batch_size
            )
        return logps

    def _old_logps(self, output: dict[str, Any], cache: dict[str, torch.Tensor]) -> torch.Tensor:
        if "old" not in cache:
            stored = output.get("old_per_token_logps")
            cache["old"] = stored if stored is not None else self._batch_logps(self.model, output)
        return cache["old"]

    def _reference_logps(self, output: dict[str, Any], cache: dict[str, torch.Tensor]) -> torch.Tensor:
        if "ref" in cache:
            return cache["ref"]
        stored = output.get("ref_per_token_logps")
        if stored is not None:  # beta != 0: TRL computed them
            cache["ref"] = stored
        elif self.ref_model is not None:
            cache["ref"] = self._batch_logps(self.ref_model, output)
        else:
            model = self.accelerator.unwrap_model(self.model)
            if not hasattr(model, "peft_config"):
                raise RuntimeError(
                    "The Δlog p monitor / mask needs a reference model, but the trainer has none (TRL builds one "
                    "unless `sync_ref_model` is set with `beta=0`). Set `beta` > 0 or `sync_ref_model=False`."
                )
            with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
                cache["ref"] = self._batch_logps(self.model, output)
        return cache["ref"]

    # ----------------------------------------------------------------------------------------------------------------
    # Response-level weights, the monitor and the token masks
    # ----------------------------------------------------------------------------------------------------------------

    def _response_weights(self, output: dict[str, Any], cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighting on whole prompt groups: locally when each process holds whole groups, else on the batch
        gathered from all processes (as TRL gathers rewards), keeping this process's rows."""
        old_logps, mask, advantages = self._old_logps(output, cache), self._loss_mask(output), output["advantages"]
        evaluation = not self.model.training
        group = self.reweighter.weighting_config(evaluation=evaluation).num_generations
        local, width = advantages.shape[0], old_logps.shape[1]
        if local % group == 0:
            return self.reweighter.weights(old_logps, advantages, mask, evaluation=evaluation)
        gathered = [
            self.accelerator.gather(self.accelerator.pad_across_processes(tensor, dim=1))
            for tensor in (old_logps, advantages, mask)  # the weighting's argument order
        ]
        weights = self.reweighter.weights(*gathered, evaluation=evaluation)
        start = self.accelerator.process_index * local
        weights = weights[start : start + local]
        return weights[:, :width] if weights.dim() == 2 and weights.shape[1] > 1 else weights

    def _log_delta_logp(self, output: dict[str, Any], cache: dict[str, torch.Tensor]) -> None:
        delta = self._old_logps(output, cache) - self._reference_logps(output, cache)
        stats = delta_logp_statistics(
            delta, self._loss_mask(output), self.args.delta_logp_quantiles, self.args.delta_logp_thresholds,
            self._reduce_sum,
        )  # fmt: skip
        for key, value in stats.items():
            self._metrics["train"][f"delta_logp/{key}"].append(value)

    def _add_token_mask(self, output: dict[str, Any], cache: dict[str, torch.Tensor]) -> None:
        by, mode = self.args.token_mask_by, self.args.token_mask_mode
        values = self._old_logps(output, cache)
        if by in DELTA_LOGP_MASKS:
            values = values - self._reference_logps(output, cache)
        mask = self._loss_mask(output).bool()
        selected, thresholds = select_tokens(by, values, mask, self.args.token_mask_quantile, self._reduce_sum)
        counts = self._reduce_sum(torch.stack([selected.sum(), mask.sum()]).to(torch.int64))
        metrics = self._metrics["train"]
        metrics["token_mask/frac_selected"].append((counts[0] / counts[1].clamp(min=1)).item())
        for key, value in thresholds.items():
            metrics[f"token_mask/{key}"].append(value)
        if mode == "none":  # the authors' method='none': statistics only
            return
        output[TOKEN_MASK_KEY] = selected
        if mode == "loss_mask":  # TRL's token-summed losses divide by the global count of loss tokens
            output["num_items_in_batch"] = counts[0]


__all__ = ["RESPONSE_WEIGHTS_KEY", "TOKEN_MASK_KEY", "GenerationBatchMixin", "reference_model_for"]
