# Stage 3: one job per (model, method, G, T, seed). Training state lives in WORK (outside the declared
# outputs, which Snakemake deletes before a job starts), so an interrupted job resumes from its newest
# complete checkpoint; `mgrpo train` writes the run directory at the end. A job Snakemake reruns because its
# arguments or inputs changed must not resume the old run: --restart-on-change moves that work aside.


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


rule train:
    input:
        base_model=lambda wc: base_model_dir(wc.model),
        data=DATA_FILES,
    output:
        run_json=f"{RUN}/run.json",
        metrics=f"{RUN}/metrics.jsonl",
        final=directory(f"{RUN}/final"),
        best=directory(f"{RUN}/best"),
    params:
        backend=BACKEND,
        data=DATA_DIR,
        out=RUN,
        work=f"{WORK}/{RUN.removeprefix(R + '/')}",
        extra=train_extra_args,
        guard=backend_guard("verl", "the verl backend") if BACKEND == "verl" else "",
    threads: train_threads()
    resources:
        **rule_resources("train"),
    log:
        f"{LOGS}/train/{{model}}/{{method}}/G{{G}}_T{{T}}_s{{seed}}.log",
    shell:
        "{params.guard}mgrpo train --backend {params.backend} --method {wildcards.method}"
        " --base-model {input.base_model} --data {params.data} --out {params.out} --work {params.work}"
        " --G {wildcards.G} --T {wildcards.T} --seed {wildcards.seed} {params.extra} --restart-on-change"
        " > {log} 2>&1"
