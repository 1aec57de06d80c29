from mgrpo.core import majority_vote


def test_plain_majority():
    assert majority_vote(["3", "5", "3", "7", "3"]) == ("3", 3)


def test_none_never_votes():
    assert majority_vote([None, None, "4", None]) == ("4", 1)


def test_all_none_and_empty_give_no_label():
    assert majority_vote([None, None]) == (None, 0)
    assert majority_vote([]) == (None, 0)


def test_tie_goes_to_first_appearing_answer():
    assert majority_vote(["b", "a", "a", "b"]) == ("b", 2)
    assert majority_vote([None, "a", "b"]) == ("a", 1)


def test_default_equivalence_ignores_white_space():
    label, votes = majority_vote([" 12", "7", "12 ", "7", "1 2"])
    assert votes == 3 and label.strip() == "12"


def test_custom_equivalence():
    as_number = lambda a, b: float(a) == float(b)  # noqa: E731
    assert majority_vote(["0.5", "1", ".50", "1.0", "0.500"], same=as_number) == ("0.5", 3)
