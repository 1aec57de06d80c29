"""The workflow's grid: which runs, evaluations, tables and figures a configuration asks for.

Pure functions of the (validated) config dict, shared by the Snakefile and the analysis so that both agree on
paths. A run is one (model, method, G, T, seed); it is trained once however many experiments name it.
"""
from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any, Callable, Iterable, Mapping

CHECKPOINTS = ("best", "final")


def format_temperature(T: float) -> str:
    """1 -> '1.0', 1.10 -> '1.1', 1e-05 -> '0.00001': one spelling per value, used in paths.

    The shortest repr of the float, in fixed notation: the workflow's T wildcard is digits.digits, so a path
    with repr's '1e-05' would match no rule.
    """
    text = format(Decimal(repr(float(T))), "f")
    return text if "." in text else text + ".0"  # 1e+16 -> '10000000000000000.0'


@dataclass(frozen=True, order=True)
class Run:
    model: str
    method: str
    G: int
    T: float
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.model}/{self.method}/G{self.G}_T{format_temperature(self.T)}_s{self.seed}"

    def to_dict(self) -> dict:
        return {"model": self.model, "method": self.method, "G": self.G, "T": self.T, "seed": self.seed}


# Path templates (Snakemake wildcards); every path below is relative to the results directory.
RUN_PATTERN = "runs/{model}/{method}/G{G}_T{T}_s{seed}"
EVAL_PATTERN = "eval/{model}/{method}/G{G}_T{T}_s{seed}/{checkpoint}"
BASE_EVAL_PATTERN = "eval/{model}/base"


def runs_of_job(job: Mapping[str, Any]) -> list[Run]:
    """The grid's runs as an analysis job carries them (``Run.to_dict`` each)."""
    return [Run(r["model"], r["method"], int(r["G"]), float(r["T"]), int(r["seed"])) for r in job["runs"]]


def run_dir(results: str, run: Run) -> str:
    return str(PurePosixPath(results) / "runs" / run.run_id)


def eval_dir(results: str, run: Run | None, checkpoint: str, model: str | None = None) -> str:
    """Evaluation folder of a run's checkpoint, or of the base model (run None, checkpoint 'base')."""
    if run is None:
        return str(PurePosixPath(results) / "eval" / model / "base")
    return str(PurePosixPath(results) / "eval" / run.run_id / checkpoint)


def runs_of(config: Mapping[str, Any]) -> list[Run]:
    """Every distinct run of every experiment, sorted."""
    runs = set()
    for experiment in config["experiments"]:
        for model in experiment["models"]:
            for method in experiment["methods"]:
                for G in experiment["G"]:
                    for T in experiment["T"]:
                        for seed in experiment["seeds"]:
                            runs.add(Run(model, method, int(G), float(T), int(seed)))
    return sorted(runs)


def evaluations_of(config: Mapping[str, Any]) -> list[tuple[Run, str]]:
    """(run, checkpoint) pairs to evaluate: the union over the experiments that name the run."""
    default = list(config["evaluation"].get("checkpoints", CHECKPOINTS))
    wanted: dict[Run, set[str]] = {}
    for experiment in config["experiments"]:
        checkpoints = experiment.get("checkpoints", default)
        single = {"experiments": [experiment], "evaluation": config["evaluation"]}
        for run in runs_of(single):
            wanted.setdefault(run, set()).update(checkpoints)
    return sorted((run, c) for run, names in wanted.items() for c in names)


def models_of(config: Mapping[str, Any]) -> list[str]:
    return sorted({model for experiment in config["experiments"] for model in experiment["models"]})


def methods_of(config: Mapping[str, Any]) -> list[str]:
    return sorted({method for experiment in config["experiments"] for method in experiment["methods"]})


def check_references(config: Mapping[str, Any], known_methods: Iterable[str]) -> None:
    """Names the config uses must exist: methods in the registry, models in base_models; and each experiment's
    name, which every message about it uses, must be its own."""
    known = sorted(known_methods)
    names = [experiment["name"] for experiment in config["experiments"]]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"config experiments: name(s) {', '.join(twice)} used by more than one experiment")
    for experiment in config["experiments"]:
        where = f"experiments[{experiment['name']}]"
        unknown = [m for m in experiment["methods"] if m not in known]
        if unknown:
            raise ValueError(f"config {where}.methods: unknown method(s) {', '.join(unknown)}; "
                             f"registered methods: {', '.join(known)}")
        missing = [m for m in experiment["models"] if m not in config["base_models"]]
        if missing:
            raise ValueError(f"config {where}.models: {', '.join(missing)} not defined under base_models "
                             f"(defined: {', '.join(sorted(config['base_models']))})")
    unknown = [m for m in config.get("methods") or {} if m not in known]
    if unknown:
        raise ValueError(f"config methods: unknown method(s) {', '.join(unknown)}; "
                         f"registered methods: {', '.join(known)}")


def check_benchmarks(config: Mapping[str, Any], known_benchmarks: Iterable[str]) -> None:
    """evaluation.benchmarks must be registered (`mgrpo benchmarks`): a misspelt one would pass the DAG and fail
    only when the first evaluation job starts, after the data, the base models and, on a cluster, a queue wait."""
    known = list(known_benchmarks)
    unknown = [b for b in config["evaluation"]["benchmarks"] if b not in known]
    if unknown:
        raise ValueError(f"config evaluation.benchmarks: unknown benchmark(s) {', '.join(unknown)}; "
                         f"registered benchmarks: {', '.join(known)}")
    # Every evaluate job reads one data folder: the toy splits with data.kind toy, else evaluation.data_dir. A
    # benchmark of the other kind passed the DAG and failed in every evaluate job, after all the training.
    kind = (config.get("data") or {}).get("kind")
    benchmarks = config["evaluation"]["benchmarks"]
    if kind == "toy" and any(b != "toy" for b in benchmarks):
        others = ", ".join(b for b in benchmarks if b != "toy")
        raise ValueError(f"config evaluation.benchmarks: {others} cannot be evaluated with data.kind: toy (every "
                         "evaluate job reads the toy data folder, which holds the toy task only); use data.kind: "
                         "math, whose evaluate jobs read evaluation.data_dir")
    if kind is not None and kind != "toy" and "toy" in benchmarks:
        raise ValueError(f"config evaluation.benchmarks: toy is the toy task's test split, written only with "
                         f"data.kind: toy (here data.kind: {kind})")


def check_hyperparameters(config: Mapping[str, Any]) -> None:
    """Every run's G, N, m and k must suit its method (mgrpo.core's own check), before any job starts: G = 2 with a
    momentum method passes the schema but leaves one policy rollout, which `mgrpo train` refuses."""
    from mgrpo.core.methods import default_momentum_rollouts, get_method, validate_hyperparameters
    from mgrpo.run_spec import momentum_in_loss

    # NaN and infinity pass the schema (exclusiveMinimum compares False): a T of NaN became the run folder
    # G8_TNaN.0_s0, which no rule matches, and a NaN evaluation temperature reached every evaluate job.
    for experiment in config["experiments"]:
        for T in experiment["T"]:
            if not math.isfinite(T):
                raise ValueError(f"config experiments[{experiment['name']}].T: {T} is not a finite temperature")
    check_finite(config["evaluation"], "evaluation")

    for run in runs_of(config):
        args = train_arguments(config, run)
        method = get_method(run.method)
        N = args.get("N", default_momentum_rollouts(method, run.G))
        try:
            validate_hyperparameters(method, run.G, N, args["momentum"], args["iqr_k"],
                                     momentum_in_loss(args["settings"]))
        except ValueError as err:
            raise ValueError(f"config: run {run.run_id}: {err}") from None


def check_finite(values: Mapping[str, Any], where: str) -> None:
    """Every number in a config section (and its subsections) is finite, named by its key otherwise."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            check_finite(value, f"{where}.{key}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"config {where}.{key}: {value} is not a finite number")


def check_folders(config: Mapping[str, Any]) -> None:
    """results_dir and work_dir must differ: a train job replaces its run folder (results_dir/runs/...) whole and
    keeps its resumable state in the same path under work_dir, so with one folder for both every train job would
    refuse to start ("output folder ... would replace the work folder"). One inside the other is fine: the runs'
    paths still differ."""
    results, work = config.get("results_dir", "results"), config.get("work_dir", "work")
    for key, folder in (("results_dir", results), ("work_dir", work)):
        # a file there (or in its path) was a NotADirectoryError traceback from Snakemake, or failed every job
        existing = os.path.abspath(folder)
        while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise ValueError(f"config {key} ({folder!r}): {existing} is a file, not a folder")
    if os.path.abspath(results) == os.path.abspath(work):
        raise ValueError(f"config work_dir ({work!r}) is the same folder as results_dir ({results!r}): keep the "
                         "two folders apart (e.g. results_dir: results, work_dir: work)")


def check_settings(config: Mapping[str, Any], settings_from: Callable[[Mapping[str, str]], Any]) -> None:
    """Every method's backend settings must be ones its backend knows, with values it accepts, before any job: a
    misspelt key would otherwise fail only when its train job starts (on a cluster, after the queue wait).
    ``settings_from`` is the backend's own reader (``mgrpo.cpu.trainer`` or ``mgrpo.verl_backend.trainer``), given
    the settings as the job's ``--set KEY=VALUE`` flags carry them. verl (Hydra) keys, with a dot, are checked
    where verl's config is composed (``check_composed_settings``)."""
    from mgrpo.run_spec import parse_assignments

    for method in methods_of(config):
        flags = settings_flags(method_settings(config, method))
        try:
            settings_from(parse_assignments(flags[1::2]))
        except ValueError as err:
            raise ValueError(f"config training.settings (with methods.{method}.settings): {err}") from None


def check_composed_settings(config: Mapping[str, Any], check_run: Callable[[Run, Mapping[str, Any]], None]) -> None:
    """A backend that composes its config from the settings (verl: Hydra) checks the composition before any job,
    once per method and distinct set of settings, with the first run that uses them: ``check_run(run,
    train_arguments)`` raises ValueError. (What depends on another run's G or T is checked in its own job.)"""
    seen = set()
    for run in runs_of(config):
        arguments = train_arguments(config, run)
        key = (run.method, *settings_flags(arguments["settings"]))
        if key in seen:
            continue
        seen.add(key)
        try:
            check_run(run, arguments)
        except ValueError as err:
            raise ValueError(f"config training.settings (with methods.{run.method}.settings), composed for run "
                             f"{run.run_id}: {err}") from None


def check_options(config: Mapping[str, Any], argument_error: Callable[[list[str]], str | None]) -> None:
    """data.options and each base model's pretrain.options must be flags of the command they are passed to, with
    values it accepts: a misspelt one would fail only when that job runs. ``argument_error`` is
    ``mgrpo.cli.argument_error``; the placeholder paths are never read."""
    data = config["data"]
    if data.get("options") and data["kind"] != "toy":
        raise ValueError(f"config data.options: only the toy data takes options (kind is {data['kind']!r}); "
                         f"remove them")
    commands = {}
    if data["kind"] == "toy":
        commands["data"] = ["toy-data", "--out", "DIR", "--seed", str(data.get("seed", 0)),
                            *option_flags(data.get("options") or {})]
    for model, source in config["base_models"].items():
        if "pretrain" in source:
            pretrain = source["pretrain"]
            commands[f"base_models.{model}.pretrain"] = [
                "pretrain", "--data", "DIR", "--out", "DIR", "--seed", str(pretrain.get("seed", 0)),
                *option_flags(pretrain.get("options") or {})]
    for where, argv in commands.items():
        error = argument_error(argv)
        if error:
            raise ValueError(f"config {where}.options (run as `mgrpo {shlex.join(argv)}`): {error}")


def method_settings(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """training.settings with the method's own settings on top."""
    training = config.get("training") or {}
    override = (config.get("methods") or {}).get(method) or {}
    return {**(training.get("settings") or {}), **(override.get("settings") or {})}


def check_gpu_counts(config: Mapping[str, Any], verl_defaults: Mapping[str, int]) -> None:
    """The GPUs a job asks the cluster for (resources.<stage>.gpu) must be the GPUs it uses.

    Too few and the job fails only once the cluster has started it (verl: "Total available GPUs 4 is less than
    total desired GPUs 8"), after its queue wait, and again on each retry; too many and they idle. Checked here,
    before any job, for the verl training runs
    (trainer.n_gpus_per_node x trainer.nnodes, from the backend's settings or their verl keys; verl_defaults
    holds the backend's defaults) and for vLLM evaluation (tensor_parallel_size x data_parallel_size). Neither
    may leave its gpu unset: its jobs would get no GPU at all.
    """
    resources = config.get("resources") or {}
    train_gpus = (resources.get("train") or {}).get("gpu")
    if config.get("backend") == "verl" and train_gpus is None:
        raise ValueError("config resources.train.gpu: missing, but the verl backend trains on GPUs; set it to the "
                         "GPUs of one node (trainer.n_gpus_per_node, default "
                         f"{verl_defaults['n_gpus_per_node']}), e.g. `resources: {{train: {{gpu: 8}}}}`")
    if config.get("backend") == "verl":
        for method in methods_of(config):
            settings = method_settings(config, method)
            where = f"training.settings (with methods.{method}.settings)"
            per_node = settings.get("trainer.n_gpus_per_node", settings.get("n_gpus_per_node",
                                                                            verl_defaults["n_gpus_per_node"]))
            nodes = settings.get("trainer.nnodes", settings.get("nnodes", verl_defaults["nnodes"]))
            if nodes != 1:
                raise ValueError(f"config {where}: nnodes = {nodes}, but a train job runs one process on one node "
                                 "(a multi-node verl run needs a Ray cluster across its nodes, which this "
                                 "workflow does not start); use nnodes = 1")
            if per_node != train_gpus:
                raise ValueError(f"config resources.train.gpu = {train_gpus}, but method {method}'s verl run uses "
                                 f"n_gpus_per_node = {per_node} ({where}): set both to the same number")
    evaluation = config.get("evaluation") or {}
    eval_gpus = (resources.get("evaluate") or {}).get("gpu")
    if evaluation.get("backend") == "vllm" and eval_gpus is None:
        raise ValueError("config resources.evaluate.gpu: missing, but evaluation.backend vllm runs on GPUs; set it "
                         "to evaluation.tensor_parallel_size x data_parallel_size (1 x 1 by default), e.g. "
                         "`resources: {evaluate: {gpu: 1}}`")
    if evaluation.get("backend") == "vllm":
        tp, dp = evaluation.get("tensor_parallel_size", 1), evaluation.get("data_parallel_size", 1)
        if tp * dp != eval_gpus:
            raise ValueError(f"config resources.evaluate.gpu = {eval_gpus}, but evaluation.tensor_parallel_size x "
                             f"data_parallel_size = {tp} x {dp} = {tp * dp}: set them to match")


def check_resources(config: Mapping[str, Any]) -> None:
    """What snakemake-executor-plugin-slurm would silently drop or SLURM split: checked before any job.

    The plugin asks for --cpus-per-task when cpus_per_task is set, else --cpus-per-gpu for a GPU job, else the
    rule's threads: a cpus_per_gpu beside cpus_per_task, or without a GPU, never reaches sbatch. And every
    job here runs one process on one node (verl's Ray cluster included: trainer.nnodes must be 1), so a
    job over several nodes gets GPUs that it cannot use, and a GPU job's `tasks` (sent as --ntasks-per-gpu)
    or a CPU job's tasks > 1 asks for CPUs that no process uses.
    """
    for stage, values in sorted((config.get("resources") or {}).items()):
        values = values or {}
        where = f"config resources.{stage}"
        if values.get("nodes", 1) != 1:
            raise ValueError(f"{where}.nodes = {values['nodes']}, but each job of this workflow runs one process "
                             "on one node (a verl train job starts its Ray cluster on its own node): use nodes = 1 "
                             "and give the node's GPUs as gpu")
        if "cpus_per_gpu" in values and "cpus_per_task" in values:
            raise ValueError(f"{where}: both cpus_per_task ({values['cpus_per_task']}) and cpus_per_gpu "
                             f"({values['cpus_per_gpu']}) are set; the SLURM plugin would use cpus_per_task and "
                             "drop cpus_per_gpu: keep one")
        gpu_job = bool(values.get("gpu") or "gpu" in str(values.get("gres", "")))
        for key in ("tasks", "tasks_per_gpu"):
            if gpu_job and key in values:
                raise ValueError(f"{where}.{key} = {values[key]}, but for a GPU job the SLURM plugin sends it as "
                                 f"--ntasks-per-gpu, i.e. {key} x GPUs tasks each with its CPUs, while the job runs "
                                 "one process: leave it unset")
        if not gpu_job and values.get("tasks", 1) != 1:
            raise ValueError(f"{where}.tasks = {values['tasks']}, but each job of this workflow runs one process "
                             "(the other tasks' CPUs would idle): leave it unset and give cpus_per_task")
        if "cpus_per_gpu" in values and not gpu_job:
            raise ValueError(f"{where}.cpus_per_gpu = {values['cpus_per_gpu']}, but the stage asks for no GPU "
                             f"(gpu or gres), so the SLURM plugin would drop it: use cpus_per_task")


def train_arguments(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """The per-run values that `mgrpo train` receives besides paths: only what this run's method uses.

    Keeping this minimal is what makes an edit to one method's entry re-run only that method's jobs
    (Snakemake's `params` rerun trigger). A method without a momentum model (or without the IQR filter) always gets
    the trainer's default m (k), whatever the config says: it does not use it, and a new training.momentum would
    otherwise re-run, and retrain afresh, every SRT and Intuitor run.
    """
    from mgrpo.core.methods import get_method
    from mgrpo.run_spec import RunSpec

    training = config.get("training") or {}
    override = (config.get("methods") or {}).get(run.method) or {}
    method = get_method(run.method)
    args: dict[str, Any] = {
        "momentum": override.get("momentum", training.get("momentum", RunSpec.momentum))
        if method.momentum else RunSpec.momentum,
        "iqr_k": override.get("iqr_k", training.get("iqr_k", RunSpec.iqr_k))
        if method.entropy_filter else RunSpec.iqr_k,
        "settings": dict(sorted(method_settings(config, run.method).items())),
    }
    if override.get("N") is not None:
        args["N"] = override["N"]
    return args


def settings_flags(settings: Mapping[str, Any]) -> list[str]:
    """{'steps': 60} -> ['--set', 'steps=60'] (booleans as true/false, None as null: what both the settings and
    Hydra, for a verl key, read as None)."""
    flags = []
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = "null"
        flags += ["--set", f"{key}={value}"]
    return flags


def option_flags(options: Mapping[str, Any]) -> list[str]:
    """{'steps': 300, 'hidden_size': 64} -> ['--steps', '300', '--hidden-size', '64']."""
    flags = []
    for key, value in options.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def select_runs(runs: Iterable[Run], select: Mapping[str, Any]) -> list[Run]:
    """Runs whose fields are in the selector's lists ({'method': ['srt'], 'G': [16, 32]}); {} selects all."""
    fields = {"model", "method", "G", "T", "seed"}
    unknown = set(select) - fields
    if unknown:
        raise ValueError(f"select: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}")

    def matches(run: Run) -> bool:
        for key, allowed in select.items():
            allowed = allowed if isinstance(allowed, list) else [allowed]
            value = getattr(run, key)
            if key == "T":
                if not any(abs(value - float(a)) < 1e-9 for a in allowed):
                    return False
            elif value not in allowed:
                return False
        return True

    return [run for run in runs if matches(run)]


def check_analysis(config: Mapping[str, Any]) -> None:
    """Every run, checkpoint and benchmark a table or figure names must be one the workflow produces.

    Otherwise a misspelt value passes the schema and shows only at the end of the workflow: a figure's
    selector value that matches no run draws the figure without those runs (or empty), without a word, and a
    table cell that no job fills stays "missing" however often the workflow runs.
    """
    runs = runs_of(config)
    evaluated = set(evaluations_of(config))
    evaluation = config["evaluation"]
    benchmarks = list(evaluation["benchmarks"])
    base_models = {run.model for run, _ in evaluated} if evaluation.get("base_model", True) else set()
    analysis = config.get("analysis") or {}
    check_finite(analysis.get("collapse") or {}, "analysis.collapse")  # min_drop: .inf would never see a collapse
    min_drop = (analysis.get("collapse") or {}).get("min_drop", 0.10)
    if not min_drop < 1:  # 10 meant as points: accuracies are fractions, and no drop exceeds 1
        raise ValueError(f"config analysis.collapse.min_drop: {min_drop} is not below 1; it is a fraction of accuracy "
                         "(0.10 = 10 points, or 10% of the peak with relative), and no run could ever collapse")

    def same(key: str, a, b) -> bool:
        return abs(float(a) - float(b)) < 1e-9 if key == "T" else a == b

    from mgrpo.run_metrics import EVAL_KEYS, METRIC_KEYS

    logged = [key for key in METRIC_KEYS + EVAL_KEYS if key != "step"]
    for name, spec in sorted((analysis.get("figures") or {}).items()):
        unknown = [metric for metric in spec["metrics"] if metric not in logged]
        if unknown:
            raise ValueError(f"config analysis.figures.{name}.metrics: {', '.join(unknown)} is not a metric of "
                             f"metrics.jsonl (its metrics: {', '.join(logged)})")
        where = f"config analysis.figures.{name}.select"
        select = spec.get("select") or {}
        for key, values in sorted(select.items()):
            present = sorted({getattr(run, key) for run in runs}, key=str)
            for value in values if isinstance(values, list) else [values]:
                if not any(same(key, getattr(run, key), value) for run in runs):
                    shown = ", ".join(format_temperature(v) if key == "T" else str(v) for v in present)
                    raise ValueError(f"{where}.{key}: {value} matches no run of the grid (in the grid: {shown})")
        if not select_runs(runs, select):
            raise ValueError(f"{where}: selects no run of the grid ({select})")

    for name, spec in sorted((analysis.get("tables") or {}).items()):
        where = f"config analysis.tables.{name}"
        for benchmark in spec.get("benchmarks") or []:
            if benchmark not in benchmarks:
                raise ValueError(f"{where}.benchmarks: {benchmark} is not in evaluation.benchmarks "
                                 f"({', '.join(benchmarks)})")
        reads_evaluations = bool(spec.get("benchmarks"))

        def check_cell(at: str, method: str, G, T, checkpoints) -> None:
            model = spec["model"]
            cell = select_runs(runs, {"model": [model], "method": [method], "G": [int(G)], "T": [float(T)]})
            if not cell:
                raise ValueError(f"{where}.{at}: no run {model}/{method}/G{int(G)}_T{format_temperature(float(T))} "
                                 "in the grid (experiments)")
            for run in cell:
                for checkpoint in checkpoints if reads_evaluations else ():
                    if (run, checkpoint) not in evaluated:
                        raise ValueError(f"{where}.{at}: checkpoint {checkpoint} of {run.run_id} is not evaluated "
                                         "(evaluation.checkpoints, or the experiment's checkpoints)")

        kind = spec["kind"]
        if kind == "grid":
            for G, T in spec["cells"]:
                check_cell(f"cells: [{int(G)}, {float(T)}]", spec["method"], G, T, CHECKPOINTS)
        elif kind == "rollouts":
            for G in spec["G"]:
                check_cell(f"G: {G}", spec["method"], G, spec["T"], [spec.get("checkpoint", "final")])
        elif kind == "checkpoints":
            for index, row in enumerate(spec["rows"]):
                at = f"rows[{index}] ({row['label']})"
                if row["checkpoint"] == "base":
                    if spec["model"] not in base_models:
                        raise ValueError(f"{where}.{at}: the base model {spec['model']} is not evaluated "
                                         "(evaluation.base_model, and an evaluated run of that model)")
                    continue
                missing = [key for key in ("method", "G", "T") if key not in row]
                if missing:
                    raise ValueError(f"{where}.{at}: checkpoint {row['checkpoint']} needs {', '.join(missing)}")
                check_cell(at, row["method"], row["G"], row["T"], [row["checkpoint"]])
