"""`ReweightedGRPOTrainer`: TRL's `GRPOTrainer` with each advantage multiplied by a detached weight.

How it hooks into TRL (1.15 and 1.16) without copying its loss:

- Token-level weightings (`"low_prob"`, `"dominate"`, `"middle"`, `"normalize"`, registered `level="token"` ones,
  `weight_fn`) need π_old(y_t). When TRL stores `old_per_token_logps` (with `num_iterations > 1`,
  `steps_per_generation` > gradient accumulation, or vLLM importance sampling) that is π_old. Otherwise the batch is
  on-policy and π_old equals the current probability, which only the loss's own forward pass computes. So
  `_compute_loss` works on a shallow copy of the inputs and parks it in a one-shot slot; the override of
  `_get_per_token_logps_and_entropies` sees the slot on the loss's forward pass (never on the no-grad passes for
  old and reference log-probs, which run with the slot empty), computes the weights and replaces the copy's
  `advantages` with the `(B, T)` tensor Ã = w · Â that `AdvantageReweighter.step` returns (only where the sign gate
  and a `"reweight"` token mask allow). The slot is the one piece of state between the two overrides: π_old of an
  on-policy batch exists only inside the loss's forward pass, and computing it in a separate pass would cost a
  forward per micro-batch.
  TRL reads `inputs["advantages"]` after that call and supports `(B, T)` advantages, so every `loss_type`, the
  clipping, the KL term (left unweighted) and the metrics stay TRL's.
- Response-level weightings (the `"ppl"` family) need whole prompt groups, token-mask quantiles need the whole batch
  of every process, and so does the Δlog p monitor: they are computed in `_generate_and_score_completions`, before
  TRL shuffles and splits the generation batch, and carried as extra tensors that TRL splits with the rest
  (`hf_dlp.training.batch_signals`). A `"loss_mask"` token mask becomes TRL's `tool_mask` in the loss (so the
  attention mask is untouched) and `num_items_in_batch` counts the selected tokens.
- DAPO's dynamic sampling (`dynamic_sampling=True`, which TRL lacks) also works on the whole generation batch: groups
  whose advantages are all zero are swapped for groups with signal from extra generation rounds
  (`hf_dlp.training.dynamic_sampling`).

`check_trl_compatibility` verifies these assumptions when the trainer is built and fails loudly if TRL changed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import trl
from accelerate.logging import get_logger
from packaging.specifiers import SpecifierSet
from trl import GRPOTrainer
from trl.trainer.utils import get_config_model_id

from .batch_signals import RESPONSE_WEIGHTS_KEY, TOKEN_MASK_KEY, GenerationBatchMixin, reference_model_for
from .config import ReweightedGRPOConfig, check_enough_prompts
from .dynamic_sampling import DynamicSamplingMixin
from .model_card import render_model_card
from .registry import WeightFunction
from .reweighter import AdvantageReweighter
from .reweighting import weight_statistics

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
    from peft import PeftConfig, PeftModel
    from transformers import (
        BitsAndBytesConfig,
        PreTrainedModel,
        PreTrainedTokenizerBase,
        ProcessorMixin,
        TrainerCallback,
    )
    from trl.trainer.grpo_trainer import EnvironmentFactory, RewardFunc, RolloutFunc

logger = get_logger(__name__)

SUPPORTED_TRL_VERSIONS = (">=1.15", "<1.17")
"""The TRL versions whose `_compute_loss` this trainer has been checked against."""

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
    `inputs["advantages"]`, accepts `(B, T)` advantages and takes its loss mask from `tool_mask`, that `__init__`
    reads `beta` from the config (to build a reference model), and that no Liger loss path bypasses `_compute_loss`.

    Raises:
        `RuntimeError`: naming what changed and the TRL versions to pin.

    Examples:

    >>> from trl import GRPOTrainer
    >>> check_trl_compatibility(GRPOTrainer)  # passes silently on a supported TRL
    """
    pin = f"pip install 'trl{','.join(SUPPORTED_TRL_VERSIONS)}'"
    if not SpecifierSet(",".join(SUPPORTED_TRL_VERSIONS)).contains(trl.__version__, prereleases=True):
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
    if 'completion_mask * inputs["tool_mask"]' not in source:
        problems.append('`_compute_loss` no longer takes its loss mask from `inputs["tool_mask"]`')
    if "self.beta = args.beta" not in inspect.getsource(trainer_class.__init__):
        problems.append("`__init__` no longer sets `self.beta` from `args.beta`")
    if hasattr(trainer_class, "compute_liger_loss"):
        problems.append("a Liger loss path (`compute_liger_loss`) can bypass `_compute_loss`")
    if problems:
        raise RuntimeError(
            f"TRL's GRPOTrainer (trl {trl.__version__}) changed in a way ReweightedGRPOTrainer cannot follow: "
            + "; ".join(problems)
            + f". Pin a supported version ({pin})."
        )


@dataclass
class _LossSlot:
    """What the loss's forward pass needs to reweight: the copied inputs, stored response weights, token mask."""

    inputs: dict[str, Any]
    response_weights: torch.Tensor | None
    token_mask: torch.Tensor | None


class ReweightedGRPOTrainer(DynamicSamplingMixin, GenerationBatchMixin, GRPOTrainer):
    r"""
    [`~trl.GRPOTrainer`] whose advantages are reweighted per token (or per response) before TRL's clipped loss.

    With `reweighting="low_prob"` (the paper's method) each token's advantage becomes
    Ã_t = [1 + α (1 − π_old(y_t))] · Â, with π_old the detached probability of the sampled token under the policy that
    produced the rollout; see [`ReweightedGRPOConfig`] for the other forms, the sign gate
    (`reweight_advantage_sign`), the token masks (`token_mask_*`) and the Δlog p monitor (`delta_logp_monitor`).
    The weights are not renormalised. The arithmetic from π_old to Ã is `trainer.reweighter`, an
    [`AdvantageReweighter`] built once from `args` (the registry is looked up then, not per step); the trainer only
    feeds it TRL's tensors. Everything else (loss types, clipping, KL, PEFT, vLLM, DeepSpeed/FSDP, logging,
    checkpoints) is TRL's. The weight statistics are logged as `reweight/weight_mean`, `reweight/weight_max`,
    `reweight/weight_min` and `reweight/high_weight_frac` (share of tokens with w > 1 + α/2; tokens the gate or mask
    leaves alone count with w = 1), averaged over all processes. With `dynamic_sampling=True` prompt groups without
    learning signal are refilled as in DAPO (logged as `dynamic_sampling/rounds` and
    `dynamic_sampling/frac_groups_without_signal`). Checkpoints get a model card rendered by
    `hf_dlp.training.render_model_card`. Runtime notes go through accelerate's rank-aware logger.

    Args:
        model, reward_funcs, ...: exactly [`~trl.GRPOTrainer`]'s parameters, in its order and with its defaults
            (`reward_funcs` may be left out when an `environment_factory` supplies the reward), so the class is a
            drop-in replacement.
        args ([`ReweightedGRPOConfig`], *optional*): the configuration; a default one named after the model is built
            when `None`. A plain `GRPOConfig` is refused (it lacks the reweighting fields).
        weight_fn (`Callable`, *optional*, keyword-only): a token-level weighting
            `(old_log_probs, advantages, masks, config) -> (B, T) weights` used instead of `args.reweighting` (see
            `hf_dlp.training.registry`; register it with `register_token_weighting` to name it from a recipe).

    Examples:

    >>> import tempfile
    >>> from hf_dlp.training import ReweightedGRPOConfig
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

    def __init__(
        self,
        model: str | PreTrainedModel | PeftModel,
        reward_funcs: RewardFunc | list[RewardFunc] | None = None,
        args: ReweightedGRPOConfig | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset
        | IterableDataset
        | DatasetDict
        | IterableDatasetDict
        | dict[str, Dataset | IterableDataset]
        | None = None,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin | None = None,
        reward_processing_classes: PreTrainedTokenizerBase | list[PreTrainedTokenizerBase] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        quantization_config: BitsAndBytesConfig | None = None,
        peft_config: PeftConfig | None = None,
        tools: list[Callable] | None = None,
        rollout_func: RolloutFunc | None = None,
        environment_factory: EnvironmentFactory | dict[str, EnvironmentFactory] | None = None,
        *,
        weight_fn: WeightFunction | None = None,
    ):
        check_trl_compatibility(GRPOTrainer)
        args = _reweighted_config(model, args)
        reweighter = AdvantageReweighter(args, weight_fn)  # validates `weight_fn` before anything loads
        if isinstance(train_dataset, Sized):  # an IterableDataset has no length to check
            check_enough_prompts(train_dataset, args)  # before any model is loaded: TRL would train 0 steps quietly
        with reference_model_for(args):  # the Δlog p monitor / masks need one even with beta = 0
            super().__init__(
                model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                reward_processing_classes=reward_processing_classes,
                callbacks=callbacks,
                optimizers=optimizers,
                quantization_config=quantization_config,
                peft_config=peft_config,
                tools=tools,
                rollout_func=rollout_func,
                environment_factory=environment_factory,
            )
        self.beta = self.args.beta  # 0 again if only the monitor asked for a reference model: no KL term
        reweighter.num_generations_eval = self.num_generations_eval
        self.reweighter = reweighter
        self._weight_fn = reweighter.weighting if weight_fn is not None else None
        if weight_fn is not None:
            logger.info(f"`weight_fn` {self._weight_fn.name!r} replaces reweighting={self.args.reweighting!r}.")
        self._reweight_slot: _LossSlot | None = None
        if reweighter.weighting is not None and self.args.reweight_alpha == 0 and weight_fn is None:
            logger.info(
                f"reweighting={self.args.reweighting!r} with reweight_alpha=0: the weights may not depend on p."
            )

    # ----------------------------------------------------------------------------------------------------------------
    # Loss hook
    # ----------------------------------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if self.reweighter.weighting is None and TOKEN_MASK_KEY not in inputs:
            return super()._compute_loss(model, inputs)
        inputs = dict(inputs)  # shallow copy: TRL reuses the buffered dict across `num_iterations`
        token_mask = inputs.pop(TOKEN_MASK_KEY, None)
        response_weights = inputs.pop(RESPONSE_WEIGHTS_KEY, None)
        if token_mask is not None and self.args.token_mask_mode == "loss_mask":
            tool_mask = inputs.get("tool_mask")
            selected = token_mask.to(inputs["completion_mask"].dtype)
            inputs["tool_mask"] = selected if tool_mask is None else tool_mask * selected
            token_mask = None  # the weights apply wherever the loss does
        if self.reweighter.weighting is None:
            return super()._compute_loss(model, inputs)
        if self.reweighter.level == "response" and response_weights is None:
            raise ValueError(
                f"reweighting={self.reweighter.weighting.name!r} weighs whole responses, so its weights come from "
                f"`_generate_and_score_completions` (key {RESPONSE_WEIGHTS_KEY!r}); this batch has none."
            )
        self._reweight_slot = _LossSlot(inputs, response_weights, token_mask)
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._reweight_slot = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        outputs = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        slot, self._reweight_slot = self._reweight_slot, None
        if slot is not None:  # the loss's own (gradient-carrying) forward pass
            self._reweight(slot, outputs[0])
        return outputs

    def _reweight(self, slot: _LossSlot, logps: torch.Tensor) -> None:
        """Replace `slot.inputs["advantages"]` by the reweighter's Ã = w · Â and log the weights the tokens get."""
        inputs = slot.inputs
        mask = self._loss_mask(inputs)
        old_logps = inputs.get("old_per_token_logps")
        old_logps = logps.detach() if old_logps is None else old_logps  # on-policy: π_old is this forward's π
        inputs["advantages"], weights = self.reweighter.step(
            old_logps, inputs["advantages"], mask, response_weights=slot.response_weights,
            token_mask=slot.token_mask, evaluation=not self.model.training,
        )  # fmt: skip
        self._log_weight_statistics(weights, mask)

    def compute_token_weights(
        self, old_logps: torch.Tensor, advantages: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token weights `(B, T)` of the token-level weighting from the sampled tokens' log-probs under π_old
        (`self.reweighter.weights`).

        Args:
            old_logps (`torch.Tensor` of shape `(B, T)`): log π_old of the sampled tokens.
            advantages (`torch.Tensor` of shape `(B,)` or `(B, T)`, *optional*): Â (ones when not given).
            mask (`torch.Tensor` of shape `(B, T)`, *optional*): the loss tokens (all when not given).

        Examples:

        >>> import math, torch
        >>> from types import SimpleNamespace
        >>> from hf_dlp.training.reweighter import AdvantageReweighter
        >>> trainer = SimpleNamespace(  # stands in for a built trainer
        ...     reweighter=AdvantageReweighter(SimpleNamespace(reweighting="low_prob", reweight_alpha=0.2)),
        ...     model=SimpleNamespace(training=True))
        >>> ReweightedGRPOTrainer.compute_token_weights(trainer, torch.tensor([[0.0, math.log(0.5)]]))
        tensor([[1.0000, 1.1000]])
        """
        if self.reweighter.level != "token":
            name = "none" if self.reweighter.weighting is None else self.reweighter.weighting.name
            raise ValueError(f"`compute_token_weights` needs a token-level weighting, not {name!r}.")
        return self.reweighter.weights(old_logps, advantages, mask, evaluation=not self.model.training)

    @staticmethod
    def _loss_mask(inputs: dict[str, Any]) -> torch.Tensor:
        mask = inputs["completion_mask"]
        return mask if "tool_mask" not in inputs else mask * inputs["tool_mask"]

    def _log_weight_statistics(self, weights: torch.Tensor, mask: torch.Tensor) -> None:
        # One gather, run on every rank at the same point of the loss, so collectives stay in step.
        stats = weight_statistics(weights, mask, self.args.reweight_alpha).to(self.accelerator.device)
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
    # The generation batch: dynamic sampling, response weights, token masks, the Δlog p monitor
    # ----------------------------------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.args.dynamic_sampling and self.model.training:
            output = self._refill_groups_without_signal(output)
        return self._add_batch_signals(output)

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
            weighting=self._weight_fn,
        )
        card.save(f"{self.args.output_dir}/README.md")


def _reweighted_config(model: str | PreTrainedModel | PeftModel, args: Any) -> ReweightedGRPOConfig:
    """`args`, or the default config named after the model as TRL names its own; refuses a plain `GRPOConfig`."""
    if args is None:
        model_name = model if isinstance(model, str) else get_config_model_id(model.config)
        return ReweightedGRPOConfig(f"{(model_name or 'model').split('/')[-1]}-ReweightedGRPO")
    if not isinstance(args, ReweightedGRPOConfig):
        raise TypeError(
            f"`args` must be a ReweightedGRPOConfig, got {type(args).__name__}. Build one with the same fields "
            "(ReweightedGRPOConfig accepts every GRPOConfig argument) and add `reweighting`/`reweight_alpha`."
        )
    return args


def _base_model_id(model: PreTrainedModel | None) -> str | None:
    """The Hub id the policy was loaded from, or None for a local folder or an in-memory model."""
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    if name is None or os.path.isdir(name):
        return None
    return name


__all__ = [
    "RESPONSE_WEIGHTS_KEY",
    "SUPPORTED_TRL_VERSIONS",
    "TOKEN_MASK_KEY",
    "ReweightedGRPOTrainer",
    "check_trl_compatibility",
]
