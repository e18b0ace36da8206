"""pedclip.models: spec strings -> Encoders (see `pedclip models list`)."""

from pedclip.models.base import Encoder, PreprocessConfig
from pedclip.models.registry import fingerprint_for, list_specs, load_encoder, register
from pedclip.models.spec import ModelSpec, parse_spec


def save_local(encoder, out_dir, run_id=None, extra=None):
    """Write `encoder` as a `local:` checkpoint (safetensors + pedclip_model.json); returns the folder."""
    from pedclip.models.local import save_local as _save_local

    return _save_local(encoder, out_dir, run_id=run_id, extra=extra)


__all__ = [
    "Encoder",
    "fingerprint_for",
    "ModelSpec",
    "PreprocessConfig",
    "list_specs",
    "load_encoder",
    "parse_spec",
    "register",
    "save_local",
]
