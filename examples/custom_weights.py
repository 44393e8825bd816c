"""A user-defined advantage weighting, registered by name so that a YAML recipe can select it.

    hf-dlp train --config examples/custom_weighting_recipe.yaml

The recipe lists this file in `import_modules`, which `ReweightedGRPOConfig` imports before it checks
`reweighting`, so the name below is known by then (`import_modules: [custom_weights]` works too when the module is
importable from the current folder).
"""

from __future__ import annotations

from hf_dlp.training import register_token_weighting  # also `from hf_dlp import ...`


@register_token_weighting("squared_low_prob", formula="Ã_t = [1 + α (1 − π_old(y_t))²] · Â")
def squared_low_prob(old_log_probs, advantages, masks, config):
    """A softer variant of the paper's low-probability reweighting: w_t = 1 + α (1 − p)², which leaves tokens of
    middling probability closer to 1 and concentrates the extra weight on the least likely ones."""
    return 1.0 + config.reweight_alpha * (1.0 - old_log_probs.exp()) ** 2
