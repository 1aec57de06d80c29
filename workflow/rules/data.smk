# Stage 1: training/test data.
if DATA_KIND == "toy":
    DATA_DIR = f"{R}/data/toy"
    DATA_FILES = [f"{DATA_DIR}/{split}.jsonl" for split in ("pretrain", "train", "test", "val")]

    rule toy_data:
        output:
            DATA_FILES,
        params:
            out=lambda wildcards, output: os.path.dirname(output[0]),
            seed=config["data"].get("seed", 0),
            options=shlex.join(grid.option_flags(config["data"].get("options") or {})),
        log:
            f"{LOGS}/toy_data.log",
        shell:
            "mgrpo toy-data --out {params.out:q} --seed {params.seed} {params.options} > {log:q} 2>&1"

else:
    DATA_DIR = f"{R}/data/{DATA_KIND}"
    DATA_FILES = [f"{DATA_DIR}/train.parquet", f"{DATA_DIR}/test.parquet"]
    MATH_SOURCE = config["data"]["source"]
    # Benchmarks drawn from MATH's test split, which is the validation set that picks every run's best/: their
    # problems leave the splits, else SRT_Best's MATH500 cell is selected on the benchmark it is reported on.
    MATH_DERIVED = [b for b in BENCHMARKS if b == "math500"]
    BENCHMARK_DIR = EVAL.get("data_dir", "data/benchmarks")

    localrules:
        prepare_math_source,
        verl_data,  # a few seconds of pandas: not worth a queue wait on the GPU partition

    # Needs hub access; skipped when the source directory is already there.
    rule prepare_math_source:
        output:
            directory(MATH_SOURCE),
        params:
            command=lambda wildcards, output: config["data"]
            .get("prepare_command", "mgrpo prepare-math --out {out}")
            .format(out=shlex.quote(output[0])),
        log:
            f"{LOGS}/prepare_math_source.log",
        shell:
            "{params.command} > {log:q} 2>&1"

    rule verl_data:
        input:
            source=MATH_SOURCE,
            # prepare_benchmarks' record: it must run first, but its time is no reason to rerun; it is rewritten
            # whenever evaluation.benchmarks changes, and new training data would retrain every run afresh
            # (--restart-on-change), though MATH-500, the one benchmark read here, is kept (--keep-present).
            benchmarks=[ancient(f"{BENCHMARK_DIR}.prepared.txt")] if MATH_DERIVED else [],
        output:
            DATA_FILES,
        params:
            out=lambda wildcards, output: os.path.dirname(output[0]),
            test_limit=config["data"].get("test_limit", 0),
            exclude="".join(f" --exclude-problems {shlex.quote(f'{BENCHMARK_DIR}/{b}.jsonl')}" for b in MATH_DERIVED),
        log:
            f"{LOGS}/verl_data.log",
        shell:
            "mgrpo verl-prepare-data --source {input.source:q} --out {params.out:q} --test-limit {params.test_limit}"
            "{params.exclude} > {log:q} 2>&1"
