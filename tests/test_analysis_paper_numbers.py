"""The paper's transcribed cells against what its evaluation protocol can produce.

A benchmark with n problems scored with k samples each gives accuracies that are multiples of 100/(n*k) percent.
Every transcribed cell that fits no such multiple must be listed under its table's `suspect`, and no other cell.
"""
from pathlib import Path

import yaml

PAPER = yaml.safe_load((Path(__file__).resolve().parents[1] / "analysis" / "paper_numbers.yaml").read_text())

# Problem counts of the public test sets; samples per problem from the protocol in docs/evaluation.md.
PROBLEMS = {"math500": 500, "aime24": 30, "aime25": 30, "gpqa_diamond": 198, "gpqa": 448, "mmlu_pro": 12032,
            "mbpp": 500, "mbpp_plus": 378}
SAMPLES = {"aime24": 8, "aime25": 8, "gpqa_diamond": 8}


def attainable(percent: float, problems: int, samples: int) -> bool:
    total = problems * samples
    return any(round(100 * correct / total, 2) == round(percent, 2) for correct in range(total + 1))


def test_attainable_by_hand():
    assert attainable(79.20, 500, 1)  # 396 / 500
    assert not attainable(79.75, 500, 1) and attainable(79.75, 500, 4)  # 1595 / 2000
    assert attainable(14.58, 30, 8) and not attainable(14.43, 30, 8)  # 35 / 240 = 14.583


def test_exactly_the_unattainable_cells_are_marked_suspect():
    for name in ("table2", "table3"):
        table = PAPER["tables"][name]
        unattainable = {f"{row['label']}/{bench}" for row in table["rows"] for bench, value in row["values"].items()
                        if bench in PROBLEMS and not attainable(value, PROBLEMS[bench], SAMPLES.get(bench, 1))}
        listed = {entry.split(":")[0] for entry in table.get("suspect", [])}
        assert listed == unattainable, name


def test_the_papers_mbpp_column_is_not_our_mbpp_plus():
    # 68.60, 70.40, 70.60 are 343, 352, 353 of MBPP's 500 test problems; no k <= 8 samples of MBPP+'s 378 fit
    values = [row["values"]["mbpp"] for row in PAPER["tables"]["table3"]["rows"]]
    assert all(attainable(v, 500, 1) for v in values)
    assert not any(all(attainable(v, 378, k) for v in values) for k in range(1, 9))
    assert "mbpp_plus" not in PAPER["tables"]["table3"]["columns"]
