"""Token tables and the position profile against a hand computation on a small fixed set of responses."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hf_dlp.analysis import METRIC_NAMES, AnalysisReport, analyze_responses, position_profile, token_table
from hf_dlp.analysis.report import VALUES_FILE
from hf_dlp.analysis.tokens import token_labels, token_positions

# Four responses, both sources. Ids 10 and 13 both decode to "a": they stay apart, labelled with their ids.
TEXT = {10: "a", 11: "b", 12: " a", 13: "a"}
RESPONSES = [  # (source, ids, Δlog p)
    ("base", [10, 11, 10, 12], [-1.0, 0.5, -0.5, 0.0]),
    ("rl", [11, 11, 13], [1.0, 2.0, -0.2]),
    ("base", [10, 13, 11], [-1.5, -0.4, 0.1]),
    ("rl", [13, 10, 11, 11], [0.6, 0.2, 1.5, -0.5]),
]


def _report() -> AnalysisReport:
    delta = torch.tensor([d for _, _, ds in RESPONSES for d in ds])
    values = {name: torch.zeros_like(delta) for name in METRIC_NAMES}
    values["delta_logp"] = delta
    values["base_entropy"] = torch.arange(delta.numel(), dtype=torch.float32) / 10  # 0.0, 0.1, ...
    values["kl_rl_base"] = delta.abs() / 100
    return AnalysisReport(
        values,
        torch.tensor([r for r, (_, ids, _) in enumerate(RESPONSES) for _ in ids]),
        [source for source, _, _ in RESPONSES],
        token_ids=torch.tensor([i for _, ids, _ in RESPONSES for i in ids]),
        token_text=TEXT,
    )


def _row(rows, token_id):
    (row,) = [r for r in rows if r["token_id"] == token_id]
    return row


def test_token_tables_equal_a_hand_computation():
    tables = token_table(_report(), tau=-0.35, min_count=2)
    assert tables["tau"] == -0.35 and tables["min_count"] == 2
    base, rl = tables["tables"]["base"], tables["tables"]["rl"]
    # base-written: id 10 three times (-1.0, -0.5, -1.5), id 11 twice (0.5, 0.1); 12 and 13 once (left out).
    assert [r["token_id"] for r in base["negative"]] == [10]
    assert [r["token_id"] for r in base["positive"]] == [11]
    ten = base["negative"][0]
    assert ten["token"] == "a #10" and ten["count"] == 3
    assert ten["mean_delta_logp"] == pytest.approx(-1.0)
    assert ten["se_delta_logp"] == pytest.approx(0.5 / math.sqrt(3))  # sample s.d. 0.5
    assert ten["share_selected"] == 1.0
    assert ten["mean_entropy"] == pytest.approx((0.0 + 0.2 + 0.7) / 3, abs=1e-6)  # global token indices 0, 2, 7
    assert ten["mean_kl"] == pytest.approx((0.01 + 0.005 + 0.015) / 3, abs=1e-7)
    eleven = base["positive"][0]
    assert (eleven["token"], eleven["count"]) == ("b", 2)
    assert eleven["mean_delta_logp"] == pytest.approx(0.3)
    assert eleven["se_delta_logp"] == pytest.approx(0.2)
    assert eleven["share_selected"] == 0.0
    # RL-written: 11 four times (1.0, 2.0, 1.5, -0.5), 13 twice (-0.2, 0.6); no token has a negative mean.
    assert rl["negative"] == []
    assert [(r["token_id"], r["token"]) for r in rl["positive"]] == [(11, "b"), (13, "a #13")]
    assert _row(rl["positive"], 11)["mean_delta_logp"] == pytest.approx(1.0)
    assert _row(rl["positive"], 11)["share_selected"] == 0.25
    assert _row(rl["positive"], 13)["mean_delta_logp"] == pytest.approx(0.2)
    assert _row(rl["positive"], 13)["se_delta_logp"] == pytest.approx(0.4)  # s.d. 0.4·√2 over √2


def test_contexts_stay_inside_their_response_and_prefer_distinct_responses():
    ten = token_table(_report(), min_count=2)["tables"]["base"]["negative"][0]
    assert ten["contexts"] == [
        {"response": 0, "before": "", "token": "a", "after": "ba"},
        {"response": 0, "before": "ab", "token": "a", "after": " a"},
        {"response": 2, "before": "", "token": "a", "after": "ab"},
    ]
    one = token_table(_report(), min_count=2, contexts=2)["tables"]["base"]["negative"][0]["contexts"]
    assert [c["response"] for c in one] == [0, 2]  # one per response before a second from the same one


def test_min_count_and_size():
    tables = token_table(_report(), min_count=1, size=1)["tables"]
    assert [r["token_id"] for r in tables["base"]["negative"]] == [10]  # -1.0, before 13 (-0.4) and 12 (0.0)
    assert len(tables["rl"]["positive"]) == 1
    assert token_table(_report(), min_count=10)["tables"]["base"] == {"negative": [], "positive": []}
    with pytest.raises(ValueError, match="`min_count` must be an integer >= 1, got 0"):
        token_table(_report(), min_count=0)


def test_position_profile_equals_a_hand_computation():
    profile = position_profile(_report(), tau=-0.35, relative_bins=2, absolute_bins=4)
    relative = profile["relative"]["base"]
    # base: response 0 (4 tokens) falls in bins 0, 0, 1, 1 and response 2 (3 tokens) in 0, 0, 1.
    assert relative["count"] == [4, 3]
    assert relative["mean_delta_logp"] == pytest.approx([-0.6, -0.4 / 3])
    assert relative["share_selected"] == pytest.approx([0.75, 1 / 3])
    absolute = profile["absolute"]["base"]
    assert absolute["count"] == [2, 2, 2, 1]
    assert absolute["mean_delta_logp"] == pytest.approx([-1.25, 0.05, -0.2, 0.0])
    assert profile["absolute"]["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert profile["relative"]["rl"]["count"] == [4, 3]
    ten_bins = position_profile(_report())["relative"]["base"]
    assert sum(ten_bins["count"]) == 7 and len(ten_bins["count"]) == 10
    assert ten_bins["mean_delta_logp"][1] is None  # an empty bin


def test_token_positions_and_labels():
    positions, lengths = token_positions(torch.tensor([1, 0, 1, 1, 0]))
    assert positions.tolist() == [0, 0, 1, 2, 1] and lengths.tolist() == [3, 2, 3, 3, 2]
    assert token_labels([10, 11, 12, 13], TEXT) == {10: "a #10", 11: "b", 12: "␣a", 13: "a #13"}


def test_tables_in_the_json_and_the_text_table(tmp_path):
    report = _report()
    data = report.to_dict()
    assert data["token_tables"] == report.token_table()  # the defaults: tokens seen at least 5 times
    assert data["token_tables"]["min_count"] == 5 and data["token_tables"]["tables"]["base"]["negative"] == []
    assert data["position_profile"]["relative"]["base"]["count"][0] == 2
    assert [r["num_tokens"] for r in data["responses"]] == [4, 3, 3, 4]
    text = report.format_table()
    assert "[base-written] most negative mean Δlog p (count >= 5" in text and "(none)" in text
    assert "most negative" not in report.format_table(tokens=False)
    folder = report.save(tmp_path / "out")
    saved = json.loads((folder / "analysis.json").read_text())
    assert saved["token_tables"] == json.loads(json.dumps(data["token_tables"]))
    assert (folder / "delta_logp_positions.png").stat().st_size > 0
    loaded = AnalysisReport.load(folder)
    assert torch.equal(loaded.token_ids, report.token_ids) and loaded.token_text == TEXT


def test_old_files_load_without_token_ids_and_newer_ones_are_refused(tmp_path):
    report = _report()
    folder = report.save(tmp_path / "out", plots=False)
    data = torch.load(folder / VALUES_FILE, weights_only=True)
    del data["token_ids"], data["token_text"]  # what hf_dlp wrote before it recorded token ids
    torch.save(data, folder / VALUES_FILE)
    old = AnalysisReport.load(folder)
    assert old.token_ids is None and old.to_dict()["token_tables"] is None
    with pytest.raises(ValueError, match="has no `token_ids`"):
        old.token_table()
    torch.save({**data, "from_the_future": 1}, folder / VALUES_FILE)
    with pytest.raises(ValueError, match=r"fields \['from_the_future'\].*newer version"):
        AnalysisReport.load(folder)


def test_token_ids_must_match_the_tokens():
    values = {name: torch.zeros(3) for name in METRIC_NAMES}
    with pytest.raises(ValueError, match=r"`token_ids` has shape \(2,\), but `token_response` has shape \(3,\)"):
        AnalysisReport(values, torch.tensor([0, 0, 0]), ["rl"], token_ids=torch.tensor([1, 2]))


def test_analyze_responses_records_the_scored_token_ids():
    from datasets import Dataset

    from hf_dlp.toy import build_char_tokenizer, build_tiny_causal_lm

    tok = build_char_tokenizer()
    base, rl = build_tiny_causal_lm(size="nano", seed=0), build_tiny_causal_lm(size="nano", seed=1)
    data = Dataset.from_dict(
        {"prompt": ["Q: 1+1?\nA: ", "Q: 2+5?\nA: "], "response": ["2", "The answer is 7"], "source": ["base", "rl"]}
    )
    report = analyze_responses(base_model=base, rl_model=rl, tokenizer=tok, dataset=data, progress=False)
    expected = [i for text in data["response"] for i in tok(text, add_special_tokens=False).input_ids]
    assert report.token_ids.tolist() == expected
    assert "".join(report.token_text[i] for i in report.token_ids.tolist()) == "2The answer is 7"
    assert report.token_table(min_count=1)["tables"]["rl"]  # both sources get tables


def test_the_default_tau_is_the_extrapolation_default():
    from hf_dlp.analysis.tokens import DEFAULT_TAU
    from hf_dlp.extrapolation import ExtrapolationConfig

    assert ExtrapolationConfig().tau == DEFAULT_TAU
