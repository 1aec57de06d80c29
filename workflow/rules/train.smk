# Stage 3: one job per (model, method, G, T, seed). Training state lives in WORK (outside the declared
# outputs, which Snakemake deletes before a job starts), so an interrupted job resumes from its newest
# complete checkpoint; `mgrpo train` writes the run directory at the end. A job Snakemake reruns because its
# arguments or inputs changed must not resume the old run: --restart-on-change moves that work aside.


# verl composes its config from the settings: a misspelt or mistyped verl (Hydra) key fails here, before any job,
# not in a train job after the queue wait. Where verl is not installed (a plan made on a laptop) the job checks it.
if BACKEND == "verl" and importlib.util.find_spec("verl") is not None:
    try:
        grid.check_composed_settings(config, check_verl_config)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


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
        data=lambda wildcards, input: os.path.dirname(input.data[0]),
        out=RUN,
        work=f"{WORK}/{RUN.removeprefix(f'{R}/')}",
        extra=train_extra_args,
        guard=backend_guard("verl", "the verl backend") if BACKEND == "verl" else "",
    threads: train_threads()
    resources:
        **rule_resources("train"),
    log:
        f"{LOGS}/train/{{model}}/{{method}}/G{{G}}_T{{T}}_s{{seed}}.log",
    shell:
        "{params.guard}mgrpo train --backend {params.backend} --method {wildcards.method}"
        " --base-model {input.base_model:q} --data {params.data:q} --out {params.out:q} --work {params.work:q}"
        " --G {wildcards.G} --T {wildcards.T} --seed {wildcards.seed} {params.extra} --restart-on-change"
        " > {log:q} 2>&1"
