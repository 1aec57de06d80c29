"""What one training run is, independent of the backend that executes it."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mgrpo.atomic import check_folder, check_out_apart, check_replaceable
from mgrpo.core.methods import UnknownMethodError, default_momentum_rollouts, get_method, validate_hyperparameters

BACKENDS = ("cpu", "verl")
RUN_DIR_MARKERS = ("run.json",)  # what marks a folder as a run folder the trainers wrote (and may replace)
MAX_SEED = 2**31 - 1  # what every seeded library here takes (numpy, torch, vLLM, Python's random)


def check_seed(seed: int, what: str = "seed") -> None:
    """A seed is an integer in [0, MAX_SEED]: Python's random would take -1 as 1, numpy refuses it, vLLM and torch
    overflow on very large ones (the trainers derive per-step seeds from it)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{what} must be an integer in [0, {MAX_SEED}] (got {seed!r})")


@dataclass(frozen=True)
class RunSpec:
    backend: str
    method: str
    base_model: Path
    data: Path
    out: Path  # final run directory (run.json, metrics.jsonl, final/, best/), written at the end
    work: Path  # resumable state; survives Snakemake's deletion of declared outputs
    G: int
    temperature: float
    seed: int
    N: int  # momentum rollouts (0 for methods without a momentum model)
    momentum: float = 0.99
    iqr_k: float = 0.75
    settings: Mapping[str, Any] = field(default_factory=dict)  # backend-specific overrides (--set KEY=VALUE)

    @classmethod
    def create(cls, *, backend: str, method: str, G: int, N: int | None = None, **kwargs) -> "RunSpec":
        """Resolve defaults (N = G/4 for momentum methods) and validate before anything heavy starts."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; known backends: {', '.join(BACKENDS)}")
        resolved = get_method(method)
        if N is None:
            N = default_momentum_rollouts(resolved, G)
        spec = cls(backend=backend, method=method, G=G, N=N, **kwargs)
        check_seed(spec.seed)
        validate_hyperparameters(resolved, spec.G, spec.N, spec.momentum, spec.iqr_k,
                                 momentum_in_loss(spec.settings))
        if not Path(spec.base_model).exists():
            raise FileNotFoundError(f"base model not found: {spec.base_model}")
        check_out_apart(spec.out, **{"base model": spec.base_model, "data folder": spec.data,
                                     "work folder": spec.work})
        check_replaceable(spec.out, RUN_DIR_MARKERS)
        check_folder(spec.work, "work folder")
        return spec

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def unused_at_default(arguments: Mapping[str, Any]) -> dict:
    """A run's arguments (``RunSpec.to_json()``, or a checkpoint's fingerprint of them) with the momentum m and the
    IQR k at their defaults where its method does not use them. They change nothing in such a run, and the workflow
    passed the config's values to every method until it passed them only to the methods that use them: a run
    recorded with another value is the same run, to resume, not to restart from step 0."""
    try:
        method = get_method(str(arguments.get("method")))
    except UnknownMethodError:  # a record of a method no longer registered: compared as it is
        return dict(arguments)
    unused = {"momentum": RunSpec.momentum} if not method.momentum else {}
    unused |= {"iqr_k": RunSpec.iqr_k} if not method.entropy_filter else {}
    return dict(arguments) | {k: v for k, v in unused.items() if k in arguments}


def momentum_in_loss(settings: Mapping[str, Any]) -> bool:
    """The verl backend's ``momentum_in_loss`` setting, which changes how many rollouts N may be (default false)."""
    return bool(_coerce("momentum_in_loss", settings.get("momentum_in_loss", False), bool))


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["lr=3e-4", "steps=100"]`` -> ``{"lr": "3e-4", "steps": "100"}`` (typed later by apply_settings)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (got {pair!r})")
        out[key.strip()] = value
    return out


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    target = annotation
    if origin is typing.Union or str(origin) == "types.UnionType":
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value.lower() in ("none", "null"):
            return None
        target = options[0] if len(options) == 1 else str
    try:
        if target is bool:
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if target in (int, float, str):
            return target(value)
        return yaml.safe_load(value)
    except ValueError:
        raise ValueError(f"setting {name!r}: cannot read {value!r} as {getattr(target, '__name__', target)}") from None


def apply_settings(settings_cls, overrides: Mapping[str, Any]):
    """Build ``settings_cls`` (a dataclass) from its defaults and ``overrides``; unknown keys are an error."""
    hints = typing.get_type_hints(settings_cls)
    names = [f.name for f in dataclasses.fields(settings_cls)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} for {settings_cls.__name__}; "
            f"known settings: {', '.join(names)}"
        )
    return settings_cls(**{k: _coerce(k, v, hints[k]) for k, v in overrides.items()})
