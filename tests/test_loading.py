import pytest
from datasets import Dataset, DatasetDict

from hf_dlp.loading import load_causal_lm, load_dataset_spec, load_tokenizer


def test_dataset_spec_forms(tmp_path):
    rows = Dataset.from_dict({"prompt": ["a", "b", "c"], "answer": ["1", "2", "3"]})
    rows.to_json(tmp_path / "rows.jsonl")
    DatasetDict({"test": rows}).save_to_disk(tmp_path / "saved")
    assert load_dataset_spec(str(tmp_path / "rows.jsonl"), limit=2)["prompt"] == ["a", "b"]
    assert load_dataset_spec(str(tmp_path / "saved"), split="test")["answer"] == ["1", "2", "3"]
    assert set(load_dataset_spec("toy:medium", num_examples=4)["level"]) == {"medium"}
    assert load_dataset_spec("toy", num_examples=5).num_rows == 5


def test_dataset_spec_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Dataset file .*missing.csv' does not exist"):
        load_dataset_spec(str(tmp_path / "missing.csv"))
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(ValueError, match="Unsupported dataset file"):
        load_dataset_spec(str(tmp_path / "rows.txt"))
    with pytest.raises(ValueError, match="`limit` must be an integer >= 1, got 0"):
        load_dataset_spec("toy", limit=0)


def test_model_and_tokenizer_loading(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir, padding_side="right")
    assert tokenizer.padding_side == "right" and tokenizer.decode(tokenizer("a  b").input_ids) == "a  b"
    model = load_causal_lm(tiny_model_dir, dtype="bfloat16", device="cpu")
    assert str(model.dtype) == "torch.bfloat16" and not model.training
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        load_causal_lm(tiny_model_dir, dtype="int4")
