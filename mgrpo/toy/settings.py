"""The toy model's size and its pre-training settings: plain dataclasses, so that building the command line
(whose defaults come from them) does not import torch or transformers (they made `mgrpo --help` take 10.9 s instead
of 1.9 s on a 2-core AVX2 VM, paid by every `mgrpo` call before it could reject a bad argument)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelSize:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 64

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"model size {name} must be >= 1, got {value}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")


@dataclass(frozen=True)
class PretrainSettings:
    # Pre-training stops at the first check where sampled accuracy on ``select_rows`` rows held out of
    # pretrain.jsonl reaches ``target_acc``, not after a fixed step count: the same seed trains another model
    # on another CPU (torch's kernels differ by instruction set) and accuracy rises steeply with steps, so a
    # fixed count gave a 0.34 base model on one machine and 0.55 on another. ``target_acc=None`` trains
    # exactly ``max_steps``. Test rows never take part in choosing the model.
    max_steps: int = 1500
    target_acc: float | None = 0.55
    check_every: int = 25
    select_rows: int = 200
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    threads: int = 1
    eval_temperature: float = 1.0
    eval_samples: int = 4
    max_new_tokens: int = 16
    # Share of targets written as the bare answer ``#d`` (no scratchpad): the base model then knows
    # the short cut that self-reward can collapse onto, as real models know how to answer tersely.
    direct_fraction: float = 0.25
    size: ModelSize = field(default_factory=ModelSize)

    def validate(self) -> None:
        for name in ("max_steps", "check_every", "select_rows", "batch_size", "threads", "eval_samples",
                     "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"pretrain {name} must be >= 1, got {getattr(self, name)}")
        # inf or nan would only show as a non-finite loss after torch has loaded and training has started
        for name in ("lr", "eval_temperature"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"pretrain {name} must be a finite number > 0, got {getattr(self, name)}")
        if self.target_acc is not None and not 0.0 < self.target_acc <= 1.0:
            raise ValueError(f"pretrain target_acc must be in (0, 1] or none, got {self.target_acc}")
        if not 0.0 <= self.direct_fraction <= 1.0:
            raise ValueError(f"pretrain direct_fraction must be in [0, 1], got {self.direct_fraction}")
        if self.warmup_steps < 0:
            raise ValueError(f"pretrain warmup_steps must be >= 0, got {self.warmup_steps}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"pretrain weight_decay must be a finite number >= 0, got {self.weight_decay}")
        self.size.validate()
