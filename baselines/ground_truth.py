"""Reference, not a self-supervised method: GRPO with the verifiable gold reward (the labels the others never see)."""
from mgrpo.core import Method, register_method

register_method(
    Method("ground_truth", reward="ground_truth", description="reference: GRPO with the gold-answer reward"),
    origin=__file__,
)
