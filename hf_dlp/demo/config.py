"""`DemoConfig`: settings of `hf-dlp demo`, the paper in miniature (budgets, seeds, and which models and data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..arguments import check_choice, check_number, check_sequence
from ..extrapolation.config import GENERATOR_ROLES
from ..training.registry import canonical_weighting_name

RUN_LOCAL_FIELDS: tuple[str, ...] = ("output_dir", "workers")
"""`DemoConfig` fields that say where a run goes and how its work is shared, not what it computes: they are left out
of the run's fingerprint and of the comparison with the README's numbers."""


@dataclass
class DemoConfig:
    """Settings of `run_demo`. The defaults fit 2 CPU cores in under 15 minutes; `quick_version()` shrinks every budget.

    Args:
        output_dir (`str`, defaults to `"demo_output"`): where the report, figures, JSON and models go.
        seed (`int`, defaults to `0`): seed of training, sampling and the evaluation problems.
        base_model (`str`, *optional*): a base model path or Hub id; `None` makes (or reuses) the toy base model.
        train_dataset (`str`, defaults to `"toy"`): `"toy"`, a local data file or a Hub dataset id (needs `prompt` and
            `answer` columns, or `--prompt_column`/`--answer_column` style renames done beforehand).
        eval_dataset (`str`, defaults to `"toy"`): same forms as `train_dataset`.
        methods (`tuple[str, ...]`, defaults to `("none", "low_prob", "dominate")`): reweightings to train; `"none"` is the DAPO
            baseline and must come first (the analysis and sweeps use it as "the RLVR model").
        reweight_alpha (`float`, defaults to `0.2`): α of the reweighted runs (the paper's value for Qwen2.5-Math-7B).
        train_steps (`int`, defaults to `150`): GRPO steps per run.
        prompts_per_step (`int`, defaults to `16`) and num_generations (`int`, defaults to `8`): the GRPO batch.
        learning_rate (`float`, defaults to `1e-4`): GRPO learning rate (measured on the toy task: 1e-4
            with 16 × 8 rollouts a step raised accuracy; 5e-4 collapsed it).
        max_completion_length (`int`, defaults to `40`): longest rollout / evaluation completion.
        eval_problems (`int`, defaults to `128`) and eval_samples (`int`, defaults to `8`): Avg@k and Pass@k budget.
        analysis_prompts (`int`, defaults to `48`) and analysis_samples (`int`, defaults to `4`): responses per model
            scored by the analysis.
        sweep_problems (`int`, defaults to `64`) and sweep_samples (`int`, defaults to `4`): budget of every sweep point.
        replacement_taus (`dict[str, list[float]]`): τ grid per selection rule of the replacement sweep.
        extrapolation_gammas (`list[float]`) and extrapolation_taus (`list[float]` or `dict[str, list[float]]`): the
            γ × τ grid, with one τ list for both generators or one per generator (`{"rl": [...], "base": [...]}`:
            the RL model's own tokens rarely fall as far below the base as the base's do, so its useful τ is
            closer to 0).
        top_p (`float`, defaults to `0.7`): nucleus of evaluation and sweeps (the paper's evaluation setting).
        block_size (`int` or `str`, *optional*, defaults to `"auto"`): block-verified decoding in the sweeps (the same
            tokens and distribution as one token at a time, fewer forwards of the other model); `None` steps the two
            models one token at a time.
        seeds (`int`, defaults to `1`): train every method with the seeds `seed, seed + 1, …, seed + seeds - 1`
            (the paper's Fig. 9 repeats training with 4 seeds); training claims are then judged on the across-seed
            mean and its standard error. The analysis and sweeps use the `none` model of the first seed.
        preset (`str`, defaults to `"toy"`): the name of the preset these settings came from (`hf_dlp.demo.presets`).
        rl_model (`str`, *optional*): an RLVR model to analyse instead of training one (a folder, Hub id or model
            spec); then `methods` must be `("none",)` and no training runs (the paper's extrapolation pairs).
        lora_rank (`int`, *optional*): train LoRA adapters of this rank (merged into the saved model) instead of
            every weight; lora_alpha (`float`, defaults to `32`) is their scale.
        dtype (`str`, defaults to `"float32"`): the dtype models are loaded and trained in (`"bfloat16"` on GPUs).
        question_column (`str`, *optional*): for data sets without a `prompt` column, the column holding the problem
            text (`"problem"` in AIME 2024); prompts are then built as the paper's (`hf_dlp.demo.data`), and
            answer_column (`str`, defaults to `"answer"`) is the ground truth. dataset_config (`str`, *optional*) is a
            Hub data set's configuration, eval_split (`str`, defaults to `"train"`) the split evaluated.
        eval_batch_size (`int`, defaults to `64`): sequences per `generate` call in evaluation, analysis and sweeps.
        workers (`int`, defaults to `1`): processes that run the independent training runs, and then the
            evaluations, at once, each on its share of torch's threads (CPU only; not part of the run's settings).
        quick (`bool`, defaults to `False`): set by `quick_version()`; recorded in the report.

    Examples:

    >>> config = DemoConfig(seed=3).quick_version()
    >>> config.quick, config.methods, config.train_steps
    (True, ('none', 'low_prob'), 6)
    >>> DemoConfig(methods=("low_prob",))
    Traceback (most recent call last):
    ...
    ValueError: `methods` must start with 'none' (the DAPO baseline the analysis uses), got ('low_prob',).
    """

    output_dir: str = "demo_output"
    seed: int = 0
    base_model: str | None = None
    train_dataset: str = "toy"
    eval_dataset: str = "toy"
    methods: tuple[str, ...] = ("none", "low_prob", "dominate")
    reweight_alpha: float = 0.2
    train_steps: int = 150
    prompts_per_step: int = 16
    num_generations: int = 8
    learning_rate: float = 1e-4
    max_completion_length: int = 40
    eval_problems: int = 128
    eval_samples: int = 8
    analysis_prompts: int = 48
    analysis_samples: int = 4
    sweep_problems: int = 64
    sweep_samples: int = 4
    replacement_taus: dict[str, list[float]] = field(
        default_factory=lambda: {
            "delta_logp": [-2.0, -1.0, -0.5, -0.2],
            "kl": [0.5, 0.2, 0.1, 0.05],
            "entropy": [1.0, 0.5, 0.2, 0.1],
            "random": [0.02, 0.05, 0.1, 0.2],
        }
    )
    extrapolation_gammas: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.5, 1.0])
    extrapolation_taus: list[float] | dict[str, list[float]] = field(default_factory=lambda: [-1.0, -0.3, -0.1])
    top_p: float = 0.7
    block_size: int | str | None = "auto"
    seeds: int = 1
    preset: str = "toy"
    rl_model: str | None = None
    lora_rank: int | None = None
    lora_alpha: float = 32.0
    dtype: str = "float32"
    eval_batch_size: int = 64
    question_column: str | None = None
    answer_column: str = "answer"
    dataset_config: str | None = None
    eval_split: str = "train"
    workers: int = 1
    quick: bool = False

    def __post_init__(self):
        self.methods = tuple(check_sequence("methods", self.methods, items="reweighting methods"))
        # Any weighting `ReweightedGRPOConfig.reweighting` accepts: the built-in ones, registered ones, aliases.
        self.methods = tuple(_weighting_name(method) for method in self.methods)
        if self.methods[0] != "none":
            raise ValueError(
                f"`methods` must start with 'none' (the DAPO baseline the analysis uses), got {self.methods}."
            )
        counts = (
            "train_steps",
            "prompts_per_step",
            "eval_problems",
            "eval_samples",
            "analysis_prompts",
            "analysis_samples",
            "sweep_problems",
            "sweep_samples",
            "max_completion_length",
            "seeds",
            "eval_batch_size",
            "workers",
        )
        for name in counts:
            setattr(self, name, check_number(name, getattr(self, name), integer=True, minimum=1))
        self.num_generations = check_number(
            "num_generations", self.num_generations, integer=True, minimum=2, hint="GRPO compares samples."
        )
        self.seed = check_number("seed", self.seed, integer=True)
        self.reweight_alpha = check_number("reweight_alpha", self.reweight_alpha, minimum=0)
        self.learning_rate = check_number("learning_rate", self.learning_rate, minimum=0, exclusive_minimum=True)
        self.top_p = check_number("top_p", self.top_p, minimum=0, maximum=1, exclusive_minimum=True)
        self.lora_rank = check_number("lora_rank", self.lora_rank, integer=True, minimum=1, allow_none=True)
        self.lora_alpha = check_number("lora_alpha", self.lora_alpha, minimum=0, exclusive_minimum=True)
        self.dtype = check_choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        if self.rl_model is not None and self.methods != ("none",):
            raise ValueError(
                f"`rl_model` ({self.rl_model!r}) replaces training, so `methods` must be ('none',), got "
                f"{self.methods}. Drop `rl_model` to train the methods."
            )
        if isinstance(self.extrapolation_taus, dict) and set(self.extrapolation_taus) != set(GENERATOR_ROLES):
            raise ValueError(
                f"`extrapolation_taus` given per generator must have the keys {GENERATOR_ROLES}, got "
                f"{sorted(self.extrapolation_taus)}; or give one list for both generators."
            )
        if isinstance(self.extrapolation_taus, dict):
            for generator in GENERATOR_ROLES:
                check_sequence(
                    f"extrapolation_taus[{generator!r}]", self.extrapolation_taus[generator], items="thresholds"
                )
        else:
            check_sequence("extrapolation_taus", self.extrapolation_taus, items="thresholds")
        from ..extrapolation import ExtrapolationConfig  # validates the block size the sweeps will use

        self.block_size = ExtrapolationConfig(block_size=self.block_size).block_size

    def taus_for(self, generator: str) -> list[float]:
        """The τ grid of the extrapolation sweep in which `generator` (`"rl"` or `"base"`) generates."""
        taus = self.extrapolation_taus
        return list(taus[generator] if isinstance(taus, dict) else taus)

    @property
    def training_seeds(self) -> list[int]:
        """The seeds every method is trained with."""
        return [self.seed + offset for offset in range(self.seeds)]

    def quick_version(self) -> DemoConfig:
        """The same pipeline on a budget small enough for a test (toy: under 3 minutes on 2 cores; SmolLM2: under
        10)."""
        return replace(
            self,
            seeds=min(self.seeds, 2),
            quick=True,
            train_steps=6,
            prompts_per_step=2,
            num_generations=4,
            eval_problems=12,
            eval_samples=2,
            analysis_prompts=6,
            analysis_samples=2,
            sweep_problems=6,
            sweep_samples=1,
            replacement_taus={name: values[1:3] or values[:1] for name, values in self.replacement_taus.items()},
            methods=self.methods[:2],
            extrapolation_gammas=[0.0, 0.5],
            extrapolation_taus=[-0.3],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _weighting_name(method: str) -> str:
    try:
        return canonical_weighting_name(method)
    except ValueError as error:
        raise ValueError(f"`methods`: {method!r} is not a weighting. {error}") from None
