"""mgrpo-bench: reproduce and extend M-GRPO (momentum-anchored self-supervised RL for LLMs)."""

__version__ = "0.1.0"
