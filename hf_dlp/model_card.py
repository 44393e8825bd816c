"""Deprecated alias of `hf_dlp.training.model_card` (render_model_card); it goes away in hf_dlp 0.3.0.

Import from `hf_dlp.training` instead; every name still resolves here, with a `FutureWarning`.
"""

from .arguments import moved_module

__getattr__ = moved_module(__name__, "hf_dlp.training.model_card")
