"""`model_cards/`: the cards of the reference runs, rendered from the shipped numbers with the packaged template."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_dlp.demo.model_cards import (
    EXTRAPOLATION_CARDS,
    REFERENCE_CARDS,
    extrapolation_card,
    reference_card,
    write_reference_cards,
)

FOLDER = Path(__file__).resolve().parent.parent / "model_cards"


@pytest.mark.parametrize("file_name", sorted(REFERENCE_CARDS))
def test_the_shipped_model_cards_are_current(file_name):
    """A card in `model_cards/` is what the template, the demo's recipe and the shipped numbers render now: after a
    change to any of them, `make model-cards` rewrites the folder."""
    path = FOLDER / file_name
    assert path.is_file(), f"{path} is missing: run `make model-cards`"
    assert path.read_text() == reference_card(*REFERENCE_CARDS[file_name]), f"{path} is stale: run `make model-cards`"


@pytest.mark.parametrize("file_name", sorted(EXTRAPOLATION_CARDS))
def test_the_shipped_extrapolation_cards_are_current(file_name):
    path = FOLDER / file_name
    assert path.is_file(), f"{path} is missing: run `make model-cards`"
    assert path.read_text() == extrapolation_card(*EXTRAPOLATION_CARDS[file_name]), (
        f"{path} is stale: run `make model-cards`"
    )


def test_the_folder_holds_exactly_the_reference_cards():
    assert sorted(path.name for path in FOLDER.glob("*.md")) == sorted([*REFERENCE_CARDS, *EXTRAPOLATION_CARDS])


def test_the_extrapolation_card_reports_every_shipped_cell_and_its_usage_runs_as_python(tmp_path):
    import ast
    import re

    from huggingface_hub import ModelCard

    from hf_dlp.demo.expected import load_expected

    (path,) = [p for p in write_reference_cards(tmp_path) if p.name == "smollm2-135m-extrapolation.md"]
    card = ModelCard.load(path)
    numbers = load_expected("smollm2-fig4")["numbers"]
    cells = [key for key in numbers if key.startswith("extrapolation (") and key.endswith(" Avg@k")]
    table = [line for line in card.text.splitlines() if re.match(r"\| (rl|base) \| `delta_logp`", line)]
    assert len(table) == len(cells) == 8
    for key in cells:  # every cell's accuracy, in percent with one decimal
        generator = key.split("(")[1].split(" ")[0]
        gamma = key.split("γ=")[1].split(" ")[0]
        row = next(line for line in table if line.startswith(f"| {generator} |") and f"| {gamma} |" in line)
        assert f"| {100 * numbers[key]:.1f} ± " in row
    assert "custom_generate" in card.data.tags and card.data.base_model is None  # a PyPI-shipped base: no Hub link
    for block in re.findall(r"```python\n(.*?)```", card.text, flags=re.S):
        ast.parse(block)
    assert "base_model=base_model" in card.text  # the base model is passed at call time


def test_a_card_reports_the_runs_numbers_and_the_method(tmp_path):
    from huggingface_hub import ModelCard

    from hf_dlp.demo.expected import load_expected

    (path,) = [p for p in write_reference_cards(tmp_path) if p.name == "toy-low_prob.md"]
    card = ModelCard.load(path)
    numbers = load_expected("toy")["numbers"]
    metrics = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert metrics == {"Avg@8": numbers["Avg@k low_prob"], "Pass@1": numbers["Avg@k low_prob"],
                       "Pass@8": numbers["Pass@8 low_prob"]}  # fmt: skip
    assert "Ã_t = [1 + α (1 − π_old(y_t))] · Â" in card.text and "| `reweight_alpha`" not in card.text
    assert "hf_dlp/demo/expected/toy.json" in card.text


def test_render_extrapolation_card_checks_its_inputs():
    from hf_dlp.extrapolation import ExtrapolationConfig, render_extrapolation_card

    config = ExtrapolationConfig(base_model_name_or_path="org/base", generator="base", gamma=0.1, tau=-0.3)
    with pytest.raises(TypeError, match="`config` must be an ExtrapolationConfig, got dict"):
        render_extrapolation_card({"gamma": 0.1}, model_name="m")
    with pytest.raises(ValueError, match=r"`results\[0\]` lacks \['replacement_ratio'\]"):
        render_extrapolation_card(config, model_name="m", results=[dict(generator="base", selection="delta_logp",
                                                                        tau=-0.3, gamma=0.1, avg_at_k=0.5)])  # fmt: skip
    card = render_extrapolation_card(config, model_name="m")
    assert "## Evaluation" not in card.text and "rl_model=rl_model" not in card.text  # the card names the RL model
    assert "RL model it needs is [org/base](https://huggingface.co/org/base)" in card.text.replace("\n", " ")
