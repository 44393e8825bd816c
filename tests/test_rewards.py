import numpy as np
import pytest

from hf_dlp.rewards import (
    accuracy_reward,
    check_reward_columns,
    format_reward,
    get_reward_function,
    is_correct,
    last_boxed_content,
    make_accuracy_reward,
    signed_accuracy_reward,
)


@pytest.mark.parametrize(
    "completion, truth, expected",
    [
        ("The answer is \\boxed{19}.", "19", True),
        ("The answer is \\boxed{18}.", "19", False),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\dfrac{2}{4}}", "\\frac{1}{2}", True),
        ("\\boxed{1/2}", "\\frac{1}{2}", True),
        ("\\boxed{\\frac{3}{4}}", "\\frac{1}{2}", False),
        ("So \\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
        ("first \\boxed{3} then corrected: \\boxed{4}", "4", True),
        ("first \\boxed{4} then corrected: \\boxed{3}", "4", False),
        ("The answer is 19.", "19", False),  # missing box
        ("The answer is \\boxed{}.", "19", False),  # empty box
        ("\\boxed{-7}", "-7", True),
        ("\\boxed{7}", "\\boxed{7}", True),  # a boxed ground truth is unboxed first
    ],
)
def test_is_correct_with_math_verify(completion, truth, expected):
    assert is_correct(completion, truth) is expected


def test_last_boxed_content_balances_braces():
    assert last_boxed_content("\\boxed{\\frac{a}{b}} and \\fbox{x^{2}}") == "x^{2}"
    assert last_boxed_content("\\boxed{unclosed") is None


def test_accuracy_rewards_trl_signature():
    completions = ["\\boxed{4}", "\\boxed{5}", "no answer"]
    assert accuracy_reward(completions, answer=["4", "4", "4"]) == [1.0, 0.0, 0.0]
    assert signed_accuracy_reward(completions, answer=["4", "4", "4"]) == [1.0, -1.0, -1.0]
    chat = [[{"role": "assistant", "content": "\\boxed{4}"}]]
    assert accuracy_reward(chat, answer=["4"], prompts=["ignored"]) == [1.0]
    # Without an `answer` column the worked `solution` serves as ground truth (its last box).
    assert accuracy_reward(["\\boxed{14}"], solution=["19 - 5 = 14. The answer is \\boxed{14}."]) == [1.0]
    custom = make_accuracy_reward(answer_column="gold", name="gold_acc")
    assert custom(["\\boxed{2}"], gold=[2]) == [1.0] and custom.__name__ == "gold_acc"


def test_reward_errors_are_clear():
    with pytest.raises(ValueError, match="ground truth"):
        accuracy_reward(["\\boxed{1}"], prompts=["p"])
    with pytest.raises(ValueError, match="2 completions but 1"):
        accuracy_reward(["a", "b"], answer=["1"])
    with pytest.raises(ValueError, match="`correct`"):
        make_accuracy_reward(correct=0.0, incorrect=1.0)
    with pytest.raises(ValueError, match="Unknown reward function 'acc'"):
        get_reward_function("acc")
    with pytest.raises(TypeError, match="completion must be"):
        format_reward([42])


def test_reward_columns_are_checked_up_front():
    assert accuracy_reward.ground_truth_columns == ("answer", "solution")
    check_reward_columns(accuracy_reward, ["prompt", "solution"])
    check_reward_columns(format_reward, ["prompt"])  # declares no ground truth: nothing to check
    custom = make_accuracy_reward(answer_column="gold")
    with pytest.raises(ValueError, match="none of `gold`, `answer`, `solution` was passed"):
        check_reward_columns(custom, ["prompt", "question"])
    assert make_accuracy_reward(correct=np.float64(1.0), incorrect=np.int64(-1))(["\\boxed{2}"], answer=["3"]) == [
        -1.0
    ]


def test_format_reward():
    assert format_reward(["\\boxed{x}", "x", "\\boxed{ }"]) == [1.0, 0.0, 0.0]
    assert get_reward_function("accuracy_pm1") is signed_accuracy_reward
