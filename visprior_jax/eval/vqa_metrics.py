"""VQA scoring rules: pure Python (+ numpy), no model code.

Reference behaviour: Cambrian's ``*_test.py`` scripts and lmms-eval, and the paper's three-tier
multiple-choice parser (arXiv App. D).

Contents
  * ``normalize_vqa_answer`` / ``EVALAI_CONTRACTIONS``: the EvalAI / official VQA answer
    normaliser (as in lmms-eval ``EvalAIAnswerProcessor`` and M4C), quirks included.
  * ``vqa_soft_accuracy``: min(#matching humans / 3, 1) averaged over the leave-one-out subsets
    (10 choose 9 for the usual 10 answers). ``vqa_soft_scores`` is the per-candidate table.
  * ``anls`` (DocVQA, threshold 0.5), ``chartqa_relaxed_correct`` (5 % numeric tolerance),
    ``ocrbench_correct`` (ground truth substring of the prediction).
  * ``mme_parse_yes_no`` and ``mme_scores`` (acc, acc+ per subtask; score = acc + acc+).
  * Multiple choice: ``parse_choice_paper`` (letter; exact option text; longest option
    substring), ``parse_choice_lmms`` (lmms-eval CV-Bench/BLINK start-of-output letter regex)
    and ``parse_choice_cambrian`` (Cambrian ``extract_mcq_answer``). All return an upper-case
    letter or None.

Where ``parse_choice_paper`` and ``parse_choice_lmms`` differ (each is tested):
  1. Position. lmms looks only at the START of the output; the paper's tier 1 also finds
     "answer is X" / "Answer: X" anywhere (last occurrence wins) and "(X)" at the END.
  2. Stand-alone letter. lmms takes the first capital of any word ("There are 2" -> "T",
     "Box A" -> "B"); the paper requires the letter to stand alone (not followed by a word
     character), so "There are 2" gives no tier-1 letter.
  3. Option text. lmms has no text fallback (None); the paper falls back to an exact,
     case-insensitive option text (tier 2) and then the longest option substring (tier 3).
  4. Valid letters. lmms (CV-Bench) accepts any A-Z unless ``valid_letters`` is given (the
     BLINK 0.7.3 behaviour: a letter outside the item's options -> None). The paper parser only
     accepts letters of the given options; an out-of-range letter falls through to tiers 2-3.
  5. Case. Both read upper-case letters only in the letter rules ("(b)" is not a letter for
     either); the paper's text tiers are case-insensitive.
"""

from __future__ import annotations

import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------
# EvalAI / official VQA answer normalisation
# ---------------------------------------------------------------------------------------------

EVALAI_CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",  # sic: the official table maps this one backwards
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}
EVALAI_NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
EVALAI_ARTICLES = ("a", "an", "the")
EVALAI_PUNCTUATION = (";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                      ">", "<", "@", "`", ",", "?", "!")
# Both regexes are verbatim from the official evaluator. ``(?!<=\d)`` is a (buggy) negative
# LOOKAHEAD for the literal "<=digit", not a lookbehind, so a period is removed whenever it is
# not followed by a digit ("2." -> "2", but "2.5" stays).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def _process_punctuation(text: str) -> str:
  out = text
  for p in EVALAI_PUNCTUATION:
    if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
      out = out.replace(p, "")
    else:
      out = out.replace(p, " ")
  # Official quirk: ``sub("", out, re.UNICODE)`` passes re.UNICODE (32) as ``count``.
  return _PERIOD_STRIP.sub("", out, count=int(re.UNICODE))


def _process_digit_article(text: str) -> str:
  words = []
  for word in text.lower().split():
    word = EVALAI_NUMBER_MAP.get(word, word)
    if word not in EVALAI_ARTICLES:
      words.append(word)
  return " ".join(EVALAI_CONTRACTIONS.get(w, w) for w in words)


def normalize_vqa_answer(answer: str) -> str:
  """EvalAI answer normalisation (lmms-eval ``EvalAIAnswerProcessor.__call__``, M4C).

  Lowercase; drop "," and "?"; "'s" -> " 's"; newlines/tabs -> spaces; punctuation removed or
  turned into a space (removed when it touches a space or the text has a digit,digit comma);
  a period not followed by a digit is removed; number words zero..ten (and "none") -> digits;
  articles a/an/the dropped; contractions table applied per word.
  E.g. "Two dogs." -> "2 dogs".
  """
  s = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
  s = s.replace("\n", " ").replace("\t", " ").strip()
  return _process_digit_article(_process_punctuation(s))


def vqa_soft_scores(gt_answers: Sequence[str], normalize: bool = True) -> dict[str, float]:
  """Soft score of every distinct (normalised) human answer, as M4C ``_compute_answer_scores``.

  For each leave-one-out subset (drop human i), acc = min(1, #matches among the rest / 3);
  the score is the mean over the len(gt_answers) subsets (10 choose 9 for VQA/TextVQA).
  """
  gts = [normalize_vqa_answer(a) if normalize else a for a in gt_answers]
  return {u: _soft_score(u, gts) for u in set(gts)}


def _soft_score(pred: str, gts: Sequence[str]) -> float:
  n = len(gts)
  if n == 0:
    raise ValueError("need at least one ground-truth answer")
  matches = np.array([g == pred for g in gts], dtype=np.int64)
  total = int(matches.sum())
  # Leaving out human i removes one match iff human i matched.
  per_subset = np.minimum(1.0, (total - matches) / 3.0) if n > 1 else np.minimum(1.0, matches / 3.0)
  return float(per_subset.mean())


def vqa_soft_accuracy(prediction: str, gt_answers: Sequence[str], normalize: bool = True) -> float:
  """VQA / TextVQA accuracy of one prediction against (usually 10) human answers.

  Both sides go through ``normalize_vqa_answer`` (M4C / lmms-eval always normalise; the
  original VQA API skips it when all 10 answers agree, which only matters for odd inputs).
  10 answers with k matches: k=0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, >=4 -> 1.0.
  """
  pred = normalize_vqa_answer(prediction) if normalize else prediction
  gts = [normalize_vqa_answer(a) if normalize else a for a in gt_answers]
  return _soft_score(pred, gts)


# ---------------------------------------------------------------------------------------------
# ANLS, ChartQA, OCRBench
# ---------------------------------------------------------------------------------------------


def levenshtein_distance(a: str, b: str) -> int:
  """Edit distance (insert / delete / substitute, unit costs)."""
  if len(a) < len(b):
    a, b = b, a
  prev = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    cur = [i]
    for j, cb in enumerate(b, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
    prev = cur
  return prev[-1]


def anls(prediction: str, gt_answers: Sequence[str], threshold: float = 0.5,
         raw_lengths: bool = True) -> float:
  """Average Normalised Levenshtein Similarity of one prediction (DocVQA), lmms-eval ``anls``.

  Strings are lowercased with whitespace stripped and collapsed; the score is
  1 - min_gt Lev(gt', pred') / max(len(gt), len(pred)); below ``threshold`` it becomes 0.
  ``raw_lengths=True`` reproduces the lmms-eval quirk of taking lengths of the RAW strings;
  False uses the normalised lengths (the DocVQA definition).
  """
  if not gt_answers:
    raise ValueError("need at least one ground-truth answer")
  det = " ".join(prediction.strip().lower().split())
  values = []
  for gt in gt_answers:
    g = " ".join(gt.strip().lower().split())
    length = max(len(gt), len(prediction)) if raw_lengths else max(len(g), len(det))
    values.append(0.0 if length == 0 else levenshtein_distance(g, det) / length)
  score = 1.0 - min(values)
  return 0.0 if score < threshold else score


def _to_float(text: str, percent: bool) -> float | None:
  try:
    if percent and text.endswith("%"):
      return float(text[:-1]) / 100.0
    return float(text)
  except ValueError:
    return None


def chartqa_relaxed_correct(prediction: str, target: str, tolerance: float = 0.05,
                            style: str = "lmms") -> bool:
  """ChartQA relaxed accuracy: numbers within ``tolerance`` relative error, else exact string.

  Both strings are whitespace-stripped first. ``style="lmms"`` (lmms-eval
  ``relaxed_correctness``): a trailing "%" divides by 100; numeric test only when the target
  is non-zero; otherwise case-insensitive equality. ``style="cambrian"``: no "%" handling;
  numeric test |p - t| <= tol * |t| whenever both parse (so a zero target needs p == 0);
  otherwise equality after lowercasing. Python ``float`` parsing: "12." and "1.05e3" count.
  """
  p, t = prediction.strip(), target.strip()
  if style == "lmms":
    pf, tf = _to_float(p, True), _to_float(t, True)
    if pf is not None and tf:
      return abs(pf - tf) / abs(tf) <= tolerance
    return p.lower() == t.lower()
  if style == "cambrian":
    pf, tf = _to_float(p.lower(), False), _to_float(t.lower(), False)
    if pf is not None and tf is not None:
      return abs(pf - tf) <= tolerance * abs(tf)
    return p.lower() == t.lower()
  raise ValueError(f"unknown style {style!r}")


def _fold_fullwidth(s: str) -> str:
  return "".join(" " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c
                 for c in s)


def ocrbench_correct(prediction: str, gt_answers: str | Sequence[str],
                     handwritten_math: bool = False, fold_fullwidth: bool = True) -> bool:
  """OCRBench: any ground truth is a SUBSTRING of the prediction (Cambrian default, lmms-eval).

  Newlines become spaces and both sides are stripped. Normally both are lowercased (and, with
  ``fold_fullwidth``, full-width ASCII folded to ASCII as newer lmms-eval does). For
  "Handwritten Mathematical Expression Recognition" (HME100k) all spaces are removed and the
  case is kept. Benchmark score = #correct (out of 1000).
  """
  gts = [gt_answers] if isinstance(gt_answers, str) else list(gt_answers)

  def norm(s: str) -> str:
    s = s.strip().replace("\n", " ")
    if fold_fullwidth:
      s = _fold_fullwidth(s)
    return s.replace(" ", "") if handwritten_math else s.lower().strip()

  pred = norm(prediction)
  return any(norm(g) in pred for g in gts)


# ---------------------------------------------------------------------------------------------
# MME
# ---------------------------------------------------------------------------------------------

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
                  "landmark", "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation",
                 "code_reasoning")


def mme_parse_yes_no(prediction: str) -> str:
  """lmms-eval ``parse_pred_ans``: -> "yes", "no" or "other".

  Lowercase, strip, delete every "."; exact yes/no; single character y/n; otherwise "yes"
  (checked first) or "no" inside the first 4 characters.
  """
  p = prediction.lower().strip().replace(".", "")
  if p in ("yes", "no"):
    return p
  if len(p) == 1:
    return {"y": "yes", "n": "no"}.get(p, "other")
  head = p[:4]
  if "yes" in head:
    return "yes"
  if "no" in head:
    return "no"
  return "other"


def mme_scores(records: Iterable[Mapping]) -> dict[str, dict[str, float]]:
  """Per-subtask MME scores from records with keys category, question_id (image), correct.

  Returns {category: {"acc", "acc_plus", "score"}} with acc = % of questions right,
  acc_plus = % of images whose questions are ALL right (2 per image in MME), score =
  acc + acc_plus (max 200). Images are grouped by ``question_id`` (lmms-eval), not by file
  order (Cambrian's parity hack). Use ``mme_total`` for Perception / Cognition sums.
  """
  by_cat: dict[str, dict[str, list[bool]]] = {}
  for r in records:
    by_cat.setdefault(r["category"], {}).setdefault(r["question_id"], []).append(bool(r["correct"]))
  out = {}
  for cat, images in by_cat.items():
    flat = [c for cs in images.values() for c in cs]
    acc = 100.0 * sum(flat) / len(flat)
    acc_plus = 100.0 * sum(all(cs) for cs in images.values()) / len(images)
    out[cat] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}
  return out


def mme_total(scores: Mapping[str, Mapping[str, float]],
              categories: Sequence[str] = MME_PERCEPTION) -> float:
  """Sum of per-subtask scores over ``categories`` present (Perception max 2000)."""
  return float(sum(scores[c]["score"] for c in categories if c in scores))


# ---------------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------------


def _options_map(options: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
  if isinstance(options, Mapping):
    return {str(k).upper(): str(v) for k, v in options.items()}
  return {string.ascii_uppercase[i]: str(v) for i, v in enumerate(options)}


def _norm_text(s: str) -> str:
  return " ".join(s.lower().split()).rstrip(".").strip()


# Tier 1 patterns (upper-case letter, not followed by a word character).
_ONLY_LETTER = re.compile(r"^\(?([A-Z])\)?[.:)]?$")
_ANSWER_PHRASE = re.compile(
    r"(?i:answer|option|choice)(?:\s+(?i:is))?\s*:?\s*\(?([A-Z])\)?(?!\w)")
_START_LETTER = re.compile(r"^\(([A-Z])\)(?!\w)|^([A-Z])[.:)](?!\w)")
_END_LETTER = re.compile(r"\(([A-Z])\)[.!]?$")


def parse_choice_paper(response: str, options: Sequence[str] | Mapping[str, str]) -> str | None:
  """The paper's three-tier parser (arXiv App. D); first tier that hits wins.

  ``options``: option texts in letter order (A, B, ...) or a {letter: text} mapping.
  Tier 1, explicit letter (must be one of the option letters):
    a. the whole output is a letter: "B", "B.", "(B)", "B)", "B:";
    b. "answer is X" / "Answer: X" / "option X" / "correct choice is (X)" (last occurrence);
    c. output starting with "(B)" or "B." / "B)" / "B:" followed by a non-word character;
    d. output ending with "(B)" (optionally followed by "." or "!").
  Tier 2: the whole output equals an option text (case-insensitive, whitespace collapsed,
    trailing "." ignored).
  Tier 3: option texts contained in the lowercased output; the LONGEST wins ("race car" beats
    "car"); a tie between different options of the same maximal length -> None.
  No hit -> None.
  """
  opts = _options_map(options)
  text = response.strip()
  valid = set(opts)

  m = _ONLY_LETTER.match(text)
  if m and m.group(1) in valid:
    return m.group(1)
  for m in reversed(list(_ANSWER_PHRASE.finditer(text))):
    if m.group(1) in valid:
      return m.group(1)
  m = _START_LETTER.match(text)
  if m:
    letter = m.group(1) or m.group(2)
    if letter in valid:
      return letter
  m = _END_LETTER.search(text)
  if m and m.group(1) in valid:
    return m.group(1)

  norm = _norm_text(text)
  for letter, opt in opts.items():
    if _norm_text(opt) and _norm_text(opt) == norm:
      return letter

  low = " ".join(text.lower().split())
  hits = [(len(_norm_text(o)), k) for k, o in opts.items() if _norm_text(o) and _norm_text(o) in low]
  if not hits:
    return None
  best = max(h[0] for h in hits)
  winners = [k for n, k in hits if n == best]
  return winners[0] if len(winners) == 1 else None


_LMMS_LETTER = re.compile(r"^[\(\s]*([A-Z])[\)\.\s]*")


def parse_choice_lmms(response: str, valid_letters: Iterable[str] | None = None) -> str | None:
  """lmms-eval CV-Bench / BLINK ``_extract_answer_letter``: regex ``[\\(\\s]*([A-Z])[\\)\\.\\s]*``
  matched at the START of the output.

  Any output starting with a capital yields it ("There are 2" -> "T"). With ``valid_letters``
  (BLINK 0.7.3) a letter outside them gives None; word initials that are valid still count
  ("Box A" -> "B"). No option-text fallback.
  """
  m = _LMMS_LETTER.match(response)
  if not m:
    return None
  letter = m.group(1)
  if valid_letters is not None and letter not in {v.upper() for v in valid_letters}:
    return None
  return letter


_CAMBRIAN_PHRASES = ("answer is:", "answer is", "answer:")


def parse_choice_cambrian(response: str, rstrip_chars: str = ".:,") -> str | None:
  """Cambrian ``extract_mcq_answer`` (MMBench, SEED, MMMU-MC, AI2D, CV-Bench).

  Lowercase and strip; keep the text after the LAST "answer is" / "answer is:" / "answer:";
  strip, rstrip ``rstrip_chars`` (SEED/COCO/ADE use "."), lstrip "(", rstrip ")"; keep the
  first character. Cambrian compares that character with the lowercased gold letter; here it is
  returned upper-cased when it is a letter a-z, else None (so "There are 2" -> "T" here too).
  """
  s = response.lower().strip()
  cut = -1
  for phrase in _CAMBRIAN_PHRASES:
    i = s.rfind(phrase)
    if i >= 0 and i + len(phrase) > cut:
      cut = i + len(phrase)
  if cut >= 0:
    s = s[cut:]
  s = s.strip().rstrip(rstrip_chars).lstrip("(").rstrip(")")
  if not s:
    return None
  c = s[0]
  return c.upper() if "a" <= c <= "z" else None
