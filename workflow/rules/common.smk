# Shared definitions: the grid (analysis/plan.py), paths, and helpers that the stage files use.
import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import shlex
import warnings

from analysis import plan as grid
from analysis.tables import grid_paper_rows, load_paper_numbers
from mgrpo.cli import argument_error
from mgrpo.core.methods import known_methods
from mgrpo.evaluation.benchmarks import known_benchmarks

# Normalised: "results/" would give paths results//runs/... that Snakemake matches inconsistently (a
# MissingInputException in the table rules), and "./results" a warning for every path.
R = os.path.normpath(config.get("results_dir", "results"))
WORK = os.path.normpath(config.get("work_dir", "work"))
BACKEND = config["backend"]
DATA_KIND = config["data"]["kind"]
EVAL = config["evaluation"]
BENCHMARKS = list(EVAL["benchmarks"])
PAPER_NUMBERS = "analysis/paper_numbers.yaml"  # the paper's own numbers, beside ours in the tables (analyse.smk)


def verl_gpu_defaults():
    from mgrpo.verl_backend.trainer import VerlSettings

    return {"n_gpus_per_node": VerlSettings.n_gpus_per_node, "nnodes": VerlSettings.nnodes}


def check_verl_config(run, arguments):
    """Compose and check the verl config of `run` as its train job would, with its paths (none is read)."""
    from mgrpo.core.methods import default_momentum_rollouts, get_method
    from mgrpo.run_spec import RunSpec, parse_assignments
    from mgrpo.verl_backend.trainer import check_run_config

    out = grid.run_dir(R, run)
    N = arguments.get("N", default_momentum_rollouts(get_method(run.method), run.G))
    settings = parse_assignments(grid.settings_flags(arguments["settings"])[1::2])
    spec = RunSpec(
        backend="verl", method=run.method, base_model=Path(base_model_dir(run.model)),
        data=Path(os.path.dirname(DATA_FILES[0])), out=Path(out), work=Path(WORK, out.removeprefix(f"{R}/")),
        G=run.G, temperature=run.T, seed=run.seed, N=N, momentum=arguments["momentum"],
        iqr_k=arguments["iqr_k"], settings=settings)
    # verl's notes on a machine without a GPU and its "checks passed" lines belong in a job's log, not in every
    # snakemake start; its errors come as the ValueError
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_run_config(spec)
    finally:
        logging.disable(logging.NOTSET)


def backend_settings_reader():
    if BACKEND == "verl":
        from mgrpo.verl_backend.trainer import settings_from
    else:
        from mgrpo.cpu.trainer import settings_from
    return settings_from


# Fail before any job: every method and benchmark must be registered, every model defined, results_dir and
# work_dir apart, every temperature and evaluation number finite, every run's G/N and settings valid for its method
# and backend, the data and pretrain options ones their commands take, every job's GPUs used, every resource one
# that reaches sbatch, every run, checkpoint and benchmark a table or figure names one that the grid produces, and
# the paper's numbers that the tables show readable.
try:
    grid.check_references(config, known_methods())
    grid.check_benchmarks(config, known_benchmarks())
    grid.check_folders(config)
    grid.check_hyperparameters(config)
    grid.check_settings(config, backend_settings_reader())
    grid.check_options(config, argument_error)
    grid.check_gpu_counts(config, verl_gpu_defaults() if BACKEND == "verl" else {})
    grid.check_resources(config)
    grid.check_analysis(config)
    if (config.get("analysis") or {}).get("tables"):  # every table job reads the paper's numbers
        _paper = load_paper_numbers(PAPER_NUMBERS)
        for _name, _table in config["analysis"]["tables"].items():  # a grid's paper rows: their cell and keys
            if _table.get("kind") == "grid":
                grid_paper_rows(_paper, _name, _table.get("benchmarks") or [])
except ValueError as err:
    raise WorkflowError(str(err)) from None

# The SLURM profile takes partition and account from the environment; a variable left unset reaches sbatch as
# the literal "$MGRPO_SLURM_...", and every submission would fail on it.
for _name, _value in (workflow.resource_settings.default_resources or {}).items():
    _unset = re.findall(r"\$\{?(MGRPO_SLURM_\w+)", os.path.expandvars(str(getattr(_value, "raw", _value))))
    if _unset:
        raise WorkflowError(
            f"profile default-resources {_name}: {_unset[0]} is not set: export {_unset[0]}=..., or edit the "
            f"profile (slurm/config.v9+.yaml; delete the {_name} line where the cluster needs none)")

RUNS = grid.runs_of(config)
EVALUATIONS = grid.evaluations_of(config)
MODELS = grid.models_of(config)


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    method=r"[A-Za-z][A-Za-z0-9_]*",
    G=r"\d+",
    T=r"\d+\.\d+",
    seed=r"\d+",
    checkpoint=r"best|final",


RUN = f"{R}/{grid.RUN_PATTERN}"
EVAL_RUN = f"{R}/{grid.EVAL_PATTERN}"
EVAL_BASE = f"{R}/{grid.BASE_EVAL_PATTERN}"
LOGS = f"{R}/logs"


def rule_resources(stage):
    """Per-rule cluster resources from config `resources.<stage>` (gpu, cpus_per_task, mem_mb, runtime, ...)."""
    return dict((config.get("resources") or {}).get(stage) or {})


def backend_guard(module, what):
    """Shell prefix that stops a job with a clear message when its GPU backend is not installed on the node."""
    return (f"python -c 'import {module}' 2>/dev/null || {{ echo \"mgrpo-bench: {what} is not installed on "
            f"$(hostname): create the GPU environment there (conda env create -f environment.yml)\" >&2; exit 3; }}; ")


def benchmark_dir(data_file):
    """The evaluation data folder that an evaluate job's first data input stands for: the toy data's folder, or the
    benchmark folder beside its record (data/benchmarks.prepared.txt, prepare_benchmarks' declared output)."""
    if data_file.endswith(".prepared.txt"):
        return data_file.removesuffix(".prepared.txt")
    return os.path.dirname(data_file)


def base_model_dir(model):
    source = config["base_models"][model]
    if "pretrain" in source:
        return f"{R}/base_models/{model}"
    if "hub" in source:
        return f"models/{model}"
    return source["path"]


def run_of(wildcards):
    return grid.Run(wildcards.model, wildcards.method, int(wildcards.G), float(wildcards.T), int(wildcards.seed))


def metrics_files():
    return [f"{grid.run_dir(R, run)}/metrics.jsonl" for run in RUNS]


def evaluation_files():
    files = [f"{grid.eval_dir(R, run, checkpoint)}/{b}.json" for run, checkpoint in EVALUATIONS for b in BENCHMARKS]
    if EVAL.get("base_model", True):  # "Original": each base model that has an evaluated run
        models = sorted({run.model for run, _ in EVALUATIONS})
        files += [f"{grid.eval_dir(R, None, 'base', model)}/{b}.json" for model in models for b in BENCHMARKS]
    return files


for model in MODELS:
    source = config["base_models"][model]
    if "path" in source and not Path(source["path"], "config.json").is_file():
        raise WorkflowError(f"config base_models.{model}.path: no HF model (config.json) in {source['path']}")


# Tables and figures (analyse.smk): what analysis names, and the files it writes.
ANALYSIS = config.get("analysis") or {}
TABLES = ANALYSIS.get("tables") or {}
FIGURES = ANALYSIS.get("figures") or {}
TABLE_FORMATS = ("md", "tex", "csv")
FIGURE_FORMATS = ("png", "pdf")


def analysis_job(kind, name, spec):
    """The JSON the analysis command reads: what to draw, over which runs, with which collapse rule."""
    job = {
        "kind": kind,
        "name": name,
        "spec": spec,
        "results": R,
        "runs": [run.to_dict() for run in RUNS],
        "evaluations": [[run.run_id, checkpoint] for run, checkpoint in EVALUATIONS],
        "benchmarks": BENCHMARKS,
        "collapse": ANALYSIS.get("collapse") or {},
    }
    return shlex.quote(json.dumps(job, sort_keys=True))


def report_caption(name):
    caption = Path(workflow.basedir, "workflow", "report", f"{name}.rst")
    return f"../report/{name}.rst" if caption.is_file() else "../report/generic.rst"


def table_files():
    return [f"{R}/tables/{name}.{fmt}" for name in TABLES for fmt in TABLE_FORMATS]


def figure_files():
    return [f"{R}/figures/{name}.{fmt}" for name in FIGURES for fmt in FIGURE_FORMATS]


# Training (train.smk): each job's arguments and threads.
def train_extra_args(wildcards):
    """Only what this run's method uses: editing one method's entry changes only its jobs' params."""
    args = grid.train_arguments(config, run_of(wildcards))
    flags = ["--momentum", str(args["momentum"]), "--iqr-k", str(args["iqr_k"])]
    if "N" in args:
        flags += ["--N", str(args["N"])]
    return shlex.join(flags + grid.settings_flags(args["settings"]))


def train_threads():
    """The CPU trainer's torch threads (training.settings.threads). Under the SLURM profile they become the job's
    --cpus-per-task unless resources.train sets cpus_per_task or cpus_per_gpu, which the plugin takes first."""
    settings = (config.get("training") or {}).get("settings") or {}
    return int(settings.get("threads", 1)) if BACKEND == "cpu" else int(rule_resources("train").get("cpus_per_task", 1))


# The `all` target (Snakefile).
def all_targets():
    return metrics_files() + evaluation_files() + table_files() + figure_files() + [f"{R}/report.md"]
