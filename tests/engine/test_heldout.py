"""The card's held-out block and its plain-words rendering (what the card view shows a technician)."""

from engine.heldout import case_level, held_out_block, plain_words

PER_SUBJECT = {
    "1": {"n": 100, "class": "ALL", "accuracy": 0.95},
    "2": {"n": 50, "class": "ALL", "accuracy": 0.40},  # most cells called HEM: case called wrong
    "H1": {"n": 80, "class": "HEM", "accuracy": 0.80},
    "H2": {"n": 20, "class": "HEM", "accuracy": 0.35},  # most cells called ALL: case called wrong
}
PER_CLASS = {"ALL": {"recall": 0.7667}, "HEM": {"recall": 0.71}}


def test_block_counts_donors_cells_and_share_called_all():
    b = held_out_block(PER_SUBJECT, PER_CLASS, "fold 1")
    assert (b["n_donors"], b["n_all_patients"], b["n_healthy_donors"], b["n_cells"]) == (4, 2, 2, 250)
    assert b["per_donor"]["H2"]["share_called_all"] == 0.65
    assert b["per_donor"]["1"]["share_called_all"] == 0.95
    assert b["healthy_donor_accuracy_worst"] == 0.35 and b["healthy_donors_below_0_7"] == 1
    assert b["donors_called_right"] == 2


def test_case_level_uses_the_majority_of_cells():
    assert case_level({"H": {"class": "HEM", "share_called_all": 0.49}}) == (1, 1)
    assert case_level({"H": {"class": "HEM", "share_called_all": 0.51}}) == (0, 1)
    assert case_level({"A": {"class": "ALL", "share_called_all": 0.5}}) == (0, 1)


def test_plain_words_say_it_in_tenths():
    text = " ".join(plain_words(held_out_block(PER_SUBJECT, PER_CLASS, "")))
    assert "4 donors the model never saw" in text
    assert "7 of 10 normal cells called normal" in text
    assert "8 of 10 leukemic cells called ALL" in text
    assert "the worst donor 4 of 10" in text  # 0.35 rounds to 4 tenths
    assert "2 of 4 donors right" in text
    assert "Healthy donors called healthy as a whole case: 1 of 2." in text
    assert "can be wrong as a whole" in text  # the one warning that matters


def test_older_cards_without_a_block_say_nothing():
    assert plain_words(None) == [] and plain_words({}) == []


def test_large_celled_healthy_donors_are_marked_and_summarised_apart():
    from engine.heldout import held_out_block, plain_words

    per_subject = {
        "H6": {"class": "HEM", "n": 18, "accuracy": 0.25},
        "H14": {"class": "HEM", "n": 300, "accuracy": 0.95},
        "5": {"class": "ALL", "n": 100, "accuracy": 0.9},
    }
    per_class = {"HEM": {"recall": 0.9}, "ALL": {"recall": 0.9}}
    h = held_out_block(per_subject, per_class, "cross-validated", large_celled=("H6", "H10"))
    assert h["per_donor"]["H6"]["large_celled"] is True and "large_celled" not in h["per_donor"]["H14"]
    assert h["large_celled_healthy_donors"] == 1
    assert h["large_celled_healthy_accuracy_mean"] == 0.25
    words = " ".join(plain_words(h))
    assert "large normal cells" in words and "3 of 10" in words
    assert "3.0" in words  # the warning says that a panel's numbers did not hold outside
