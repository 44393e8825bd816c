"""`model_cards/`: the cards of the reference runs, rendered from the shipped numbers with the packaged template."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_dlp.demo.model_cards import REFERENCE_CARDS, reference_card, write_reference_cards

FOLDER = Path(__file__).resolve().parent.parent / "model_cards"


@pytest.mark.parametrize("file_name", sorted(REFERENCE_CARDS))
def test_the_shipped_model_cards_are_current(file_name):
    """A card in `model_cards/` is what the template, the demo's recipe and the shipped numbers render now: after a
    change to any of them, `make model-cards` rewrites the folder."""
    path = FOLDER / file_name
    assert path.is_file(), f"{path} is missing: run `make model-cards`"
    assert path.read_text() == reference_card(*REFERENCE_CARDS[file_name]), f"{path} is stale: run `make model-cards`"


def test_the_folder_holds_exactly_the_reference_cards():
    assert sorted(path.name for path in FOLDER.glob("*.md")) == sorted(REFERENCE_CARDS)


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
