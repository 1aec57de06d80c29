# Stage 5: tables and figures from the local run files only (metrics.jsonl, evaluation JSON).
ANALYSIS = config.get("analysis") or {}
TABLES = ANALYSIS.get("tables") or {}
FIGURES = ANALYSIS.get("figures") or {}
PAPER_NUMBERS = "analysis/paper_numbers.yaml"
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


for table_name, table_spec in TABLES.items():

    rule:
        name:
            f"table_{table_name}"
        localrule: True
        input:
            metrics_files(),
            evaluation_files(),
            paper=PAPER_NUMBERS,
        output:
            md=f"{R}/tables/{table_name}.md",
            tex=f"{R}/tables/{table_name}.tex",
            csv=report(f"{R}/tables/{table_name}.csv", caption=report_caption(table_name), category="Tables"),
        params:
            job=analysis_job("table", table_name, table_spec),
        log:
            f"{LOGS}/analysis/table_{table_name}.log",
        shell:
            "python -m analysis table --job {params.job} --paper {input.paper} --out {R}/tables > {log} 2>&1"


for figure_name, figure_spec in FIGURES.items():

    rule:
        name:
            f"figure_{figure_name}"
        localrule: True
        input:
            metrics_files(),
        output:
            png=report(f"{R}/figures/{figure_name}.png", caption=report_caption(figure_name), category="Figures"),
            pdf=f"{R}/figures/{figure_name}.pdf",
        params:
            job=analysis_job("figure", figure_name, figure_spec),
        log:
            f"{LOGS}/analysis/figure_{figure_name}.log",
        shell:
            "python -m analysis figure --job {params.job} --out {R}/figures > {log} 2>&1"


def table_files():
    return [f"{R}/tables/{name}.{fmt}" for name in TABLES for fmt in TABLE_FORMATS]


def figure_files():
    return [f"{R}/figures/{name}.{fmt}" for name in FIGURES for fmt in FIGURE_FORMATS]
