"""`evaluate` metric: accuracy of the last `\\boxed{}` answer, checked with math_verify (hf_dlp)."""

import datasets
import evaluate

from hf_dlp.rewards import completion_text, is_correct

_DESCRIPTION = """Share of predictions whose last \\boxed{} answer equals the reference for math_verify
(so equivalent forms such as \\frac{1}{2} and 0.5 match)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): model completions.
    references (`list[str]`): ground-truth answers (bare, or inside \\boxed{}).
Returns:
    accuracy (`float`): share of correct predictions, in [0, 1].
"""


class MathAccuracy(evaluate.Metric):
    """Accuracy of the last `\\boxed{}` answer of each prediction, checked with math_verify.

    Examples:

    >>> import evaluate
    >>> from hf_dlp.evaluation import MATH_ACCURACY_METRIC_PATH
    >>> metric = evaluate.load(MATH_ACCURACY_METRIC_PATH)
    >>> metric.compute(predictions=["\\\\boxed{\\\\frac{1}{2}}", "\\\\boxed{3}"], references=["0.5", "4"])
    {'accuracy': 0.5}
    """

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        if len(predictions) == 0:
            raise ValueError("`predictions` is empty: nothing to score.")
        scores = [is_correct(completion_text(p), r) for p, r in zip(predictions, references, strict=True)]
        return {"accuracy": sum(scores) / len(scores)}
