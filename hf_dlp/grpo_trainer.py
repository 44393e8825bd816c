"""`ReweightedGRPOTrainer`: TRL's `GRPOTrainer` with each advantage multiplied by a detached weight.

How it hooks into TRL (1.15 and 1.16) without copying its loss:

- Token-level methods (`"low_prob"`, `"dominate"`) need π_old(y_t). When TRL stores `old_per_token_logps` (with
  `num_iterations > 1`, `steps_per_generation` > gradient accumulation, or vLLM importance sampling) that is π_old.
  Otherwise the batch is on-policy and π_old equals the current probability, which only the loss's own forward pass
  computes. So `_compute_loss` works on a shallow copy of the inputs and parks it in a one-shot slot; the override of
  `_get_per_token_logps_and_entropies` sees the slot on the loss's forward pass (never on the no-grad passes for
  old and reference log-probs, which run with the slot empty), computes the weights and replaces the copy's
  `advantages` with the `(B, T)` tensor Ã = w · Â. TRL reads `inputs["advantages"]` after that call and supports
  `(B, T)` advantages, so every `loss_type`, the clipping, the KL term (left unweighted) and the metrics stay TRL's.
- The response-level method (`"ppl"`) needs whole prompt groups, which only exist before TRL shuffles and splits the
  generation batch, so its weights are computed in `_generate_and_score_completions` and carried as an extra
  `(B,)` tensor that TRL splits with the rest.

- DAPO's dynamic sampling (`dynamic_sampling=True`, which TRL lacks) also works on the whole generation batch: groups
  whose advantages are all zero are swapped for groups with signal from extra generation rounds.

`check_trl_compatibility` verifies these assumptions when the trainer is built and fails loudly if TRL changed.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import trl
from packaging import version
from trl import GRPOTrainer
from trl.models.utils import disable_gradient_checkpointing

from .grpo_config import ReweightedGRPOConfig
from .reweighting import (
    TOKEN_LEVEL_METHODS,
    log_perplexity,
    ppl_weights_from_log_perplexity,
    reweight_advantages,
    token_weights,
    weight_statistics,
)

SUPPORTED_TRL_VERSIONS = (">=1.15", "<1.17")
"""The TRL versions whose `_compute_loss` this trainer has been checked against."""

PPL_WEIGHTS_KEY = "reweight_ppl_weights"
"""Key of the per-response weights the `"ppl"` method adds to TRL's batch dict."""

_PAPER_CITATION = """\
@inproceedings{huang2026beyond,
    title     = {{Beyond Magnitude: Leveraging Direction of RLVR Updates for LLM Reasoning}},
    author    = {Huang and others},
    booktitle = {International Conference on Learning Representations},
    year      = 2026,
    eprint    = {arXiv:2603.22117},
}"""


def check_trl_compatibility(trainer_class: type = GRPOTrainer) -> None:
    """Fail loudly if TRL's GRPO loss no longer has the shape `ReweightedGRPOTrainer` relies on.

    Checks the TRL version range, that `_compute_loss` computes the log-probs before it reads
    `inputs["advantages"]` and accepts `(B, T)` advantages, and that no Liger loss path bypasses `_compute_loss`.

    Raises:
        `RuntimeError`: naming what changed and the TRL versions to pin.

    Examples:

    >>> from trl import GRPOTrainer
    >>> check_trl_compatibility(GRPOTrainer)  # passes silently on a supported TRL
    """
    pin = f"pip install 'trl{','.join(SUPPORTED_TRL_VERSIONS)}'"
    trl_version = version.parse(trl.__version__)
    if not (version.parse("1.15") <= trl_version < version.parse("1.17")):
        raise RuntimeError(
            f"ReweightedGRPOTrainer supports trl {','.join(SUPPORTED_TRL_VERSIONS)}, found trl {trl.__version__}. "
            f"Its loss hook depends on TRL internals; install a supported version ({pin})."
        )
    source = inspect.getsource(trainer_class._compute_loss)
    logps_call = source.find("self._get_per_token_logps_and_entropies(")
    advantages_read = source.find('inputs["advantages"]')
    problems = []
    if logps_call < 0 or advantages_read < 0 or logps_call > advantages_read:
        problems.append('`_compute_loss` no longer computes the log-probs before reading `inputs["advantages"]`')
    if "advantages.dim() == 1" not in source:
        problems.append("`_compute_loss` no longer accepts per-token (B, T) advantages")
    if hasattr(trainer_class, "compute_liger_loss"):
        problems.append("a Liger loss path (`compute_liger_loss`) can bypass `_compute_loss`")
    if problems:
        raise RuntimeError(
            f"TRL's GRPOTrainer (trl {trl.__version__}) changed in a way ReweightedGRPOTrainer cannot follow: "
            + "; ".join(problems)
            + f". Pin a supported version ({pin})."
        )


class ReweightedGRPOTrainer(GRPOTrainer):
    r"""
    [`~trl.GRPOTrainer`] whose advantages are reweighted per token (or per response) before TRL's clipped loss.

    With `reweighting="low_prob"` (the paper's method) each token's advantage becomes
    Ã_t = [1 + α (1 − π_old(y_t))] · Â, with π_old the detached probability of the sampled token under the policy that
    produced the rollout; see [`ReweightedGRPOConfig`] for the other methods. Positive and negative advantages are
    scaled alike and the weights are not renormalised. Everything else (loss types, clipping, KL, PEFT, vLLM,
    DeepSpeed/FSDP, logging, checkpoints) is TRL's. The weight statistics are logged as `reweight/weight_mean`,
    `reweight/weight_max`, `reweight/weight_min` and `reweight/high_weight_frac` (share of tokens with
    w > 1 + α/2), averaged over all processes. With `dynamic_sampling=True` prompt groups without learning signal are
    refilled as in DAPO (logged as `dynamic_sampling/rounds` and `dynamic_sampling/frac_groups_without_signal`).
    Checkpoints get a model card rendered by `hf_dlp.model_card`.

    Args:
        model, reward_funcs, ...: as for [`~trl.GRPOTrainer`] (all its keyword arguments are accepted).
        args ([`ReweightedGRPOConfig`], *optional*): the configuration; a default one is built when `None`.

    Examples:

    >>> import tempfile
    >>> from hf_dlp.grpo_config import ReweightedGRPOConfig
    >>> from hf_dlp.rewards import accuracy_reward
    >>> from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm, make_arithmetic_dataset
    >>> tokenizer = build_char_tokenizer()
    >>> args = ReweightedGRPOConfig(
    ...     output_dir=tempfile.mkdtemp(), reweighting="low_prob", reweight_alpha=0.2, max_steps=1,
    ...     per_device_train_batch_size=4, num_generations=4, max_completion_length=8, logging_steps=1,
    ...     use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True)
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed, when installed, prints a line on first use
    ...     trainer = ReweightedGRPOTrainer(
    ...         build_tiny_causal_lm(size="nano"), accuracy_reward, args=args,
    ...         train_dataset=make_arithmetic_dataset(num_examples=4), processing_class=tokenizer)
    ...     _ = trainer.train()
    >>> 1.0 <= trainer.state.log_history[0]["reweight/weight_mean"] <= 1.2
    True
    """

    _tag_names = ["trl", "grpo", "hf_dlp", "reweighted-grpo"]
    _name = "Reweighted GRPO"
    _paper = {
        "title": "Beyond Magnitude: Leveraging Direction of RLVR Updates for LLM Reasoning",
        "id": "2603.22117",
        "citation": _PAPER_CITATION,
    }

    def __init__(self, model, reward_funcs, args: ReweightedGRPOConfig | None = None, **kwargs):
        check_trl_compatibility(GRPOTrainer)
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            args = ReweightedGRPOConfig(f"{(model_name or 'model').split('/')[-1]}-ReweightedGRPO")
        elif not isinstance(args, ReweightedGRPOConfig):
            raise TypeError(
                f"`args` must be a ReweightedGRPOConfig, got {type(args).__name__}. Build one with the same fields "
                "(ReweightedGRPOConfig accepts every GRPOConfig argument) and add `reweighting`/`reweight_alpha`."
            )
        super().__init__(model, reward_funcs, args=args, **kwargs)
        self.reweighting = args.reweighting
        self.reweight_alpha = args.reweight_alpha
        self._reweight_slot: dict[str, Any] | None = None
        self._refill_iterator = None  # dynamic sampling's own pass over the training set

    # ----------------------------------------------------------------------------------------------------------------
    # Loss hook
    # ----------------------------------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if self.reweighting == "none":
            return super()._compute_loss(model, inputs)
        inputs = dict(inputs)  # shallow copy: TRL reuses the buffered dict across `num_iterations`
        if self.reweighting == "ppl":
            weights = inputs.pop(PPL_WEIGHTS_KEY)
            inputs["advantages"] = reweight_advantages(inputs["advantages"], weights)
            self._log_weight_statistics(weights, self._loss_mask(inputs))
            return super()._compute_loss(model, inputs)
        self._reweight_slot = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._reweight_slot = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        outputs = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        inputs, self._reweight_slot = self._reweight_slot, None
        if inputs is not None:  # the loss's own (gradient-carrying) forward pass
            old_logps = inputs.get("old_per_token_logps")
            old_logps = outputs[0].detach() if old_logps is None else old_logps
            weights = self.compute_token_weights(old_logps)
            inputs["advantages"] = reweight_advantages(inputs["advantages"], weights)
            self._log_weight_statistics(weights, self._loss_mask(inputs))
        return outputs

    def compute_token_weights(self, old_logps: torch.Tensor) -> torch.Tensor:
        """Token weights `(B, T)` from the sampled tokens' log-probs under π_old (override to try other forms).

        Examples:

        >>> import math, torch
        >>> from types import SimpleNamespace
        >>> trainer = SimpleNamespace(reweighting="low_prob", reweight_alpha=0.2)  # stands in for a built trainer
        >>> ReweightedGRPOTrainer.compute_token_weights(trainer, torch.tensor([[0.0, math.log(0.5)]]))
        tensor([[1.0000, 1.1000]])
        """
        if self.reweighting not in TOKEN_LEVEL_METHODS:
            raise ValueError(f"`compute_token_weights` is for {TOKEN_LEVEL_METHODS}, not {self.reweighting!r}.")
        return token_weights(self.reweighting, old_logps, self.reweight_alpha)

    @staticmethod
    def _loss_mask(inputs: dict[str, Any]) -> torch.Tensor:
        mask = inputs["completion_mask"]
        return mask if "tool_mask" not in inputs else mask * inputs["tool_mask"]

    def _log_weight_statistics(self, weights: torch.Tensor, mask: torch.Tensor) -> None:
        # One gather, run on every rank at the same point of the loss, so collectives stay in step.
        stats = weight_statistics(weights, mask, self.reweight_alpha).to(self.accelerator.device)
        gathered = self.accelerator.gather(stats.unsqueeze(0)).view(-1, stats.numel())
        total, count, high = gathered[:, :3].sum(0).tolist()
        if count == 0:
            return
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["reweight/weight_mean"].append(total / count)
        self._metrics[mode]["reweight/weight_max"].append(gathered[:, 3].max().item())
        self._metrics[mode]["reweight/weight_min"].append(gathered[:, 4].min().item())
        self._metrics[mode]["reweight/high_weight_frac"].append(high / count)

    # ----------------------------------------------------------------------------------------------------------------
    # Response-level ("ppl") weights, computed on whole prompt groups
    # ----------------------------------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.args.dynamic_sampling and self.model.training:
            output = self._refill_groups_without_signal(output)
        if self.reweighting == "ppl":
            output[PPL_WEIGHTS_KEY] = self._ppl_weights(output)
        return output

    # ----------------------------------------------------------------------------------------------------------------
    # DAPO's dynamic sampling
    # ----------------------------------------------------------------------------------------------------------------

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
            if counts[:, 0].max() == 0 or rounds == self.args.dynamic_sampling_max_rounds:
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

    def _ppl_weights(self, output: dict[str, Any]) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        old_logps = output.get("old_per_token_logps")
        if old_logps is None:  # on-policy batch: π_old is the current model, one extra no-grad pass
            input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
            attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
            batch_size = (
                self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            )
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                old_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, input_ids, attention_mask, output["completion_ids"].size(1), batch_size=batch_size
                )
        # Groups can span processes (as TRL's rewards do), so standardise over the gathered batch and keep our slice.
        local_log_ppl = log_perplexity(old_logps, self._loss_mask(output))
        all_log_ppl = self.accelerator.gather(local_log_ppl)
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        weights = ppl_weights_from_log_perplexity(
            all_log_ppl, num_generations, self.reweight_alpha, self.args.ppl_weight_min, self.args.ppl_weight_max
        )
        start = self.accelerator.process_index * local_log_ppl.numel()
        return weights[start : start + local_log_ppl.numel()]

    # ----------------------------------------------------------------------------------------------------------------
    # Model card
    # ----------------------------------------------------------------------------------------------------------------

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        evaluation: Any = None,
        **kwargs,
    ) -> None:
        """Write `README.md` in `output_dir` from the hf_dlp template (called on checkpoints and by `push_to_hub`).

        Args:
            model_name (`str`, *optional*): the model's name; defaults to the output folder's name.
            dataset_name (`str` or `list[str]`, *optional*): training dataset(s) for the Hub metadata.
            tags (`str` or `list[str]`, *optional*): extra tags.
            evaluation (`EvaluationResult`, `dict[str, EvaluationResult]` or `None`): results from
                `hf_dlp.evaluation.evaluate_model` to report; defaults to `self.model_card_evaluation` when set.
        """
        if not self.is_world_process_zero():
            return
        from .model_card import render_model_card

        evaluation = evaluation if evaluation is not None else getattr(self, "model_card_evaluation", None)
        dataset_name = dataset_name if dataset_name is not None else getattr(self, "model_card_dataset", None)
        card = render_model_card(
            self.args,
            base_model=_base_model_id(self.model),
            model_name=model_name,
            hub_model_id=self.hub_model_id,
            dataset_name=dataset_name,
            evaluation=evaluation,
            tags=[*([tags] if isinstance(tags, str) else tags or []), *self._tag_names],
        )
        card.save(f"{self.args.output_dir}/README.md")


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


def _base_model_id(model) -> str | None:
    """The Hub id the policy was loaded from, or None for a local folder or an in-memory model."""
    import os

    name = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    if name is None or os.path.isdir(name):
        return None
    return name
