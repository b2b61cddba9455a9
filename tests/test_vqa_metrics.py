"""Hand-checked examples for visprior_jax.eval.vqa_metrics (pure Python, fast)."""

import pytest

from visprior_jax.eval import vqa_metrics as vm


# ------------------------------------------------------------------ normalisation

@pytest.mark.parametrize("raw,expected", [
    ("Two dogs.", "2 dogs"),
    ("2 dogs", "2 dogs"),
    ("The Cat", "cat"),
    ("an apple", "apple"),
    ("none", "0"),
    ("Yes!", "yes"),
    ("dont", "don't"),
    ("isnt it", "isn't it"),
    ("man's hat", "man 's hat"),
    ("1,000", "1000"),
    ("2.5", "2.5"),          # period between digits kept
    ("3.", "3"),             # trailing period dropped
    ("black-and-white", "black and white"),   # '-' not touching a space -> space
    ("red - blue", "red blue"),               # '-' touching a space -> removed
    ("what?\nno", "what no"),
])
def test_normalize_vqa_answer(raw, expected):
  assert vm.normalize_vqa_answer(raw) == expected


def test_two_dogs_equivalent():
  assert vm.normalize_vqa_answer("Two dogs.") == vm.normalize_vqa_answer("2 dogs")


# ------------------------------------------------------------------ VQA soft accuracy

def _answers(k, ans="2 dogs"):
  return [ans] * k + [f"other{i}" for i in range(10 - k)]


@pytest.mark.parametrize("k,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_soft_accuracy_subset_average(k, expected):
  # k matches among 10: dropping a matching human leaves k-1, otherwise k;
  # mean_i min(1, .../3) = (k*min(1,(k-1)/3) + (10-k)*min(1,k/3)) / 10.
  # NB: 3 matches give 0.9, not 1.0 (only the "min(#/3,1)" shortcut gives 1.0); 4 give 1.0.
  assert vm.vqa_soft_accuracy("Two dogs.", _answers(k)) == pytest.approx(expected)


def test_vqa_soft_accuracy_normalises_gt_too():
  gts = ["Two dogs."] * 2 + ["2 dogs"] * 2 + ["cat"] * 6
  assert vm.vqa_soft_accuracy("2 DOGS", gts) == pytest.approx(1.0)
  assert vm.vqa_soft_accuracy("2 DOGS", gts, normalize=False) == 0.0


def test_vqa_soft_scores_table():
  table = vm.vqa_soft_scores(["yes"] * 8 + ["no"] * 2)
  assert table == {"yes": pytest.approx(1.0), "no": pytest.approx(0.6)}


# ------------------------------------------------------------------ ANLS

def test_levenshtein():
  assert vm.levenshtein_distance("kitten", "sitting") == 3
  assert vm.levenshtein_distance("", "abc") == 3
  assert vm.levenshtein_distance("abc", "abc") == 0


def test_anls_exact_and_case_whitespace():
  assert vm.anls("  Hello   World ", ["hello world"]) == 1.0
  assert vm.anls("hello world", ["Hello World"]) == 1.0


def test_anls_near_miss():
  # 1 substitution in 10 chars -> 0.9
  assert vm.anls("abcdefghiX", ["abcdefghij"]) == pytest.approx(0.9)
  # best over ground truths
  assert vm.anls("colour", ["xyz", "color"]) == pytest.approx(1 - 1 / 6)
  # 6 edits / 10 -> 0.4 < 0.5 -> 0
  assert vm.anls("abcdXXXXXX", ["abcdefghij"]) == 0.0
  # exactly at threshold is kept: 5 edits / 10 -> 0.5
  assert vm.anls("abcdeXXXXX", ["abcdefghij"]) == pytest.approx(0.5)


def test_anls_raw_length_quirk():
  # normalised strings identical except one char; raw prediction has extra spaces.
  pred, gt = "ab   cd", "ab ce"   # normalised "ab cd" vs "ab ce": 1 edit
  assert vm.anls(pred, [gt]) == pytest.approx(1 - 1 / 7)             # raw lengths (lmms-eval)
  assert vm.anls(pred, [gt], raw_lengths=False) == pytest.approx(1 - 1 / 5)


# ------------------------------------------------------------------ ChartQA

@pytest.mark.parametrize("style", ["lmms", "cambrian"])
def test_relaxed_numeric(style):
  assert vm.chartqa_relaxed_correct("104.9", "100", style=style)      # 4.9 %
  assert not vm.chartqa_relaxed_correct("105.1", "100", style=style)  # 5.1 %
  assert vm.chartqa_relaxed_correct("95.1", "100", style=style)
  assert not vm.chartqa_relaxed_correct("94.9", "100", style=style)
  assert vm.chartqa_relaxed_correct("12.", "12", style=style)


@pytest.mark.parametrize("style", ["lmms", "cambrian"])
def test_relaxed_strings(style):
  assert vm.chartqa_relaxed_correct("Yes", "yes", style=style)
  assert not vm.chartqa_relaxed_correct("yes.", "yes", style=style)   # no '.' strip
  assert not vm.chartqa_relaxed_correct("Brazil", "Brazi", style=style)


def test_relaxed_percent_and_zero():
  assert not vm.chartqa_relaxed_correct("12%", "12", style="lmms")  # 0.12 vs 12
  assert vm.chartqa_relaxed_correct("12%", "0.12", style="lmms")
  assert not vm.chartqa_relaxed_correct("12%", "12", style="cambrian")  # string compare
  # zero target: lmms falls back to string equality, cambrian to |p - 0| <= 0
  assert not vm.chartqa_relaxed_correct("0.0", "0", style="lmms")
  assert vm.chartqa_relaxed_correct("0.0", "0", style="cambrian")
  with pytest.raises(ValueError):
    vm.chartqa_relaxed_correct("1", "1", style="nope")


# ------------------------------------------------------------------ OCRBench

def test_ocrbench_substring():
  assert vm.ocrbench_correct("The sign says STOP here", ["stop"])
  assert vm.ocrbench_correct("stop", "STOP")
  assert not vm.ocrbench_correct("sto", ["stop"])
  assert vm.ocrbench_correct("line one line two", ["line one\nline two"])
  assert vm.ocrbench_correct("ＳＴＯＰ", ["stop"])                 # full-width folded
  assert not vm.ocrbench_correct("ＳＴＯＰ", ["stop"], fold_fullwidth=False)


def test_ocrbench_hme():
  assert vm.ocrbench_correct("x ^ { 2 } + 1", ["x^{2}+1"], handwritten_math=True)
  assert not vm.ocrbench_correct("X^{2}+1", ["x^{2}+1"], handwritten_math=True)  # case kept


# ------------------------------------------------------------------ MME

@pytest.mark.parametrize("pred,label", [
    ("Yes", "yes"), ("no.", "no"), ("Y", "yes"), ("n", "no"), ("x", "other"),
    ("Yes, there is a dog.", "yes"), ("No, it is not.", "no"),
    ("There is no dog", "other"),     # yes/no only looked for in the first 4 characters
])
def test_mme_parse(pred, label):
  assert vm.mme_parse_yes_no(pred) == label


def test_mme_acc_and_acc_plus():
  recs = [
      # existence: img1 both right, img2 one right -> acc 75, acc+ 50
      dict(category="existence", question_id="1.jpg", correct=True),
      dict(category="existence", question_id="1.jpg", correct=True),
      dict(category="existence", question_id="2.jpg", correct=True),
      dict(category="existence", question_id="2.jpg", correct=False),
      # count: both right -> 100 + 100
      dict(category="count", question_id="3.jpg", correct=True),
      dict(category="count", question_id="3.jpg", correct=True),
      # cognition subtask, not in perception
      dict(category="code_reasoning", question_id="4.jpg", correct=False),
      dict(category="code_reasoning", question_id="4.jpg", correct=True),
  ]
  s = vm.mme_scores(recs)
  assert s["existence"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0}
  assert s["count"]["score"] == 200.0
  assert s["code_reasoning"] == {"acc": 50.0, "acc_plus": 0.0, "score": 50.0}
  assert vm.mme_total(s) == 325.0
  assert vm.mme_total(s, vm.MME_COGNITION) == 50.0


# ------------------------------------------------------------------ multiple choice

OPTS = ["dog", "cat", "race car", "car"]   # A B C D


@pytest.mark.parametrize("resp,expected", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), (" C ", "C"),
    ("(B) cat", "B"),
    ("B. cat", "B"),
    ("The answer is C.", "C"),
    ("Answer: D", "D"),
    ("The correct answer is (B)", "B"),
    ("I think it is A, no wait, the answer is B", "B"),   # last "answer is" phrase
    ("Looking at the picture, the best match is (A)", "A"),  # ends with (X)
    ("cat", "B"),                 # tier 2: exact option text
    ("Race Car.", "C"),           # tier 2: case-insensitive, trailing '.'
    ("It looks like a race car to me", "C"),   # tier 3: longest substring beats "car"
    ("a big dog", "A"),
    ("There are 2 horses", None),
    ("", None),
    ("The answer is E", None),    # out-of-range letter, no option text
])
def test_parse_choice_paper(resp, expected):
  assert vm.parse_choice_paper(resp, OPTS) == expected


def test_parse_choice_paper_mapping_and_ties():
  assert vm.parse_choice_paper("yes", {"A": "Yes", "B": "No"}) == "A"
  assert vm.parse_choice_paper("a dog and a cat", ["dog", "cat"]) is None   # equal-length tie
  assert vm.parse_choice_paper("b", ["dog", "cat"]) is None                 # lower-case letter
  # "A car" is option text (tier 2): 'A' followed by a word is not a letter
  assert vm.parse_choice_paper("A car", ["A truck", "A car"]) == "B"


@pytest.mark.parametrize("resp,expected", [
    ("B", "B"), ("(B) cat", "B"), ("  (C).", "C"), ("B. cat", "B"),
    ("The answer is C.", "T"),      # differs: start-only, capital initial
    ("There are 2", "T"),           # documented quirk
    ("cat", None),                  # differs: no option-text fallback
    ("b", None),
])
def test_parse_choice_lmms(resp, expected):
  assert vm.parse_choice_lmms(resp) == expected


def test_parse_choice_lmms_valid_letters():
  assert vm.parse_choice_lmms("There are 2", valid_letters="ABCD") is None
  assert vm.parse_choice_lmms("Box A", valid_letters="ABCD") == "B"   # word initial still counts
  assert vm.parse_choice_lmms("(A)", valid_letters=["a", "b"]) == "A"


def test_paper_vs_lmms_differences():
  opts = ["dog", "cat", "bird", "fish"]
  # 1/2: phrase anywhere vs start only
  assert vm.parse_choice_paper("The answer is C.", opts) == "C"
  assert vm.parse_choice_lmms("The answer is C.", "ABCD") is None
  # 3: option text
  assert vm.parse_choice_paper("cat", opts) == "B"
  assert vm.parse_choice_lmms("cat", "ABCD") is None
  # 4: "Box A" (no option match) -> paper None, lmms B
  assert vm.parse_choice_paper("Box A", opts) is None
  assert vm.parse_choice_lmms("Box A", "ABCD") == "B"


@pytest.mark.parametrize("resp,expected", [
    ("B", "B"), ("(b)", "B"), ("The answer is: c.", "C"), ("Answer: (D)", "D"),
    ("b. cat", "B"), ("There are 2", "T"), ("", None), ("2", None),
])
def test_parse_choice_cambrian(resp, expected):
  assert vm.parse_choice_cambrian(resp) == expected
