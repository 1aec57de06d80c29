# Stage 5: tables and figures from the local run files only (metrics.jsonl, evaluation JSON).

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
            out=lambda wildcards, output: os.path.dirname(output.md),
        log:
            f"{LOGS}/analysis/table_{table_name}.log",
        shell:
            "python -m analysis table --job {params.job} --paper {input.paper:q} --out {params.out:q} > {log:q} 2>&1"


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
            out=lambda wildcards, output: os.path.dirname(output.png),
        log:
            f"{LOGS}/analysis/figure_{figure_name}.log",
        shell:
            "python -m analysis figure --job {params.job} --out {params.out:q} > {log:q} 2>&1"
