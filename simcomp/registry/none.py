"""``none``: plain joint training (the baseline every method is compared with)."""

from .spec import MethodSpec

SPEC = MethodSpec(
    name="none",
    summary="plain joint training of the late-fusion network",
    source="Huang et al., ICML 2022 (the model itself)",
    published_default="--",
)
