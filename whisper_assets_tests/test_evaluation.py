import pytest

from whisper_assets.asr.metrics import (
    aggregate,
    breakdown,
    hallucination_flags,
    paired_wer_interval,
    score_utterance,
    view_text,
)
from whisper_assets.audio.espeak import espeak_available
from whisper_assets.curation.manifests import read_manifest
from whisper_assets.evaluation.gate import Regression, champion_gate
from whisper_assets.evaluation.general_set import (
    SELECTION_SENTENCES,
    SENTENCES,
    VOICES,
    general_sets,
    selection_sets,
)


def test_word_and_character_errors_match_hand_counts():
    row = score_utterance("the cat sat on the mat", "the cat sat on mat", "en")
    assert row["normalized_word_errors"] == 1 and row["normalized_ref_words"] == 6  # one deletion
    assert row["wer"] == pytest.approx(1 / 6, abs=1e-4)
    assert row["normalized_char_errors"] == 4 and row["normalized_ref_chars"] == 22  # "the " deleted
    assert row["cer"] == pytest.approx(4 / 22, abs=1e-4)


def test_three_views_differ_as_designed():
    row = score_utterance("Dobar dan, Ana!", "dobar dan ana", "sr")
    assert row["orthographic_word_errors"] == 3  # "Dobar"/"dobar", "dan,"/"dan", "Ana!"/"ana"
    assert row["normalized_word_errors"] == 0
    cyrillic = score_utterance("Добар дан", "Dobar dan", "sr")
    assert cyrillic["normalized_word_errors"] == 2  # different letters
    assert cyrillic["folded_word_errors"] == 0  # the same words in the other script
    assert score_utterance("Добар дан", "Dobar dan", "ru")["folded_word_errors"] == 2  # folding is for sr/bs


def test_diacritics_count_as_errors_in_every_view():
    row = score_utterance("čaša", "casa", "hr")
    assert row["normalized_word_errors"] == 1 and row["folded_char_errors"] == 2
    assert view_text("  Đak,  ŠKOLA! ", "normalized", "hr") == "đak škola"


def test_aggregates_are_corpus_level_and_broken_down():
    rows = [
        {**score_utterance("a b c d", "a b c d", "en"), "language": "en"},
        {**score_utterance("x y", "x z", "sr"), "language": "sr"},
    ]
    overall = aggregate(rows)
    assert overall["wer_normalized"] == pytest.approx(1 / 6, abs=1e-4)  # 1 error in 6 words, not mean(0, 0.5)
    by_language = breakdown(rows, "language")
    assert by_language["en"]["wer_normalized"] == 0.0 and by_language["sr"]["wer_normalized"] == 0.5


def test_hallucination_flags():
    assert hallucination_flags("hello there", "hello there") == []
    assert "repeated_1gram" in hallucination_flags("thank you", "you you you you you you you you")
    assert "repeated_2gram" in hallucination_flags("go", "go home go home go home go home")
    assert "too_long" in hallucination_flags("yes", "yes it is a fine day and then some more words")
    assert score_utterance("", "anything", "en")["normalized_word_errors"] == 1


@pytest.mark.parametrize(
    ("candidate", "base", "target", "champion", "passed", "reason"),
    [
        (0.20, 0.30, None, None, True, "test WER 0.2000"),
        (0.20, 0.30, 0.25, 0.22, True, "test WER 0.2000"),
        (0.35, 0.30, None, None, False, "worse than the base"),
        (0.28, 0.30, 0.25, None, False, "misses the target"),
        (0.24, 0.30, 0.25, 0.21, False, "worse than the champion"),
    ],
)
def test_champion_gate(candidate, base, target, champion, passed, reason):
    decision = champion_gate(candidate, base, target, champion)
    assert decision.passed is passed and reason in decision.reason


def test_forgetting_on_a_regression_set_blocks_the_champion():
    kept = Regression("regression/general", wer=0.175, base_wer=0.16)
    forgot = Regression("regression/speech", wer=0.82, base_wer=0.0)
    passing = champion_gate(0.01, 0.5, None, None, [kept], max_regression_points=2.0)
    assert passing.passed and "regression/general WER 16.0% -> 17.5% (+1.5 points)" in passing.reason
    failing = champion_gate(0.01, 0.5, None, None, [kept, forgot], max_regression_points=2.0)
    assert not failing.passed
    assert failing.reason == (
        "forgetting: regression set regression/speech WER 0.0% -> 82.0% (+82.0 points), more than the 2 allowed"
    )
    exactly_at_the_limit = Regression("regression/general", wer=0.18, base_wer=0.16)
    assert champion_gate(0.01, 0.5, None, None, [exactly_at_the_limit], 2.0).passed
    assert not champion_gate(0.01, 0.5, None, None, [exactly_at_the_limit], 1.0).passed


def _scored(pairs: list[tuple[str, str]]) -> list[dict]:
    return [score_utterance(reference, hypothesis, "en") for reference, hypothesis in pairs]


def test_the_paired_interval_of_a_wer_change_says_how_sure_it_is():
    references = [f"sentence number {k} has six words" for k in range(40)]
    base = _scored([(r, r) for r in references])
    assert paired_wer_interval(base, base) == (0.0, 0.0)
    # one word wrong in one sentence of 40 (+0.4 points): the interval holds no change at all
    one = _scored([(r, r.replace("six", "sax") if k == 0 else r) for k, r in enumerate(references)])
    low, high = paired_wer_interval(base, one)
    assert low == 0.0 < high
    # one word wrong in every sentence (+16.7 points): every resample rises by exactly that
    every = _scored([(r, r.replace("six", "sax")) for r in references])
    assert paired_wer_interval(base, every) == pytest.approx((16.67, 16.67), abs=0.01)
    # a third of the sentences lose a word: sure of a rise, unsure of how much
    third = _scored([(r, r.replace("six", "sax") if k % 3 == 0 else r) for k, r in enumerate(references)])
    low, high = paired_wer_interval(base, third)
    assert 0 < low < 100 * aggregate(third)["wer_normalized"] < high
    forgot = Regression("general_en", wer=0.246, base_wer=0.162, built_in=True, interval=(3.1, 13.9))
    assert "(+8.4 points, 95% interval +3.1 to +13.9)" in forgot.describe()


def test_the_built_in_general_set_blocks_a_forgetting_model_and_says_what_it_is():
    forgot = Regression("general_en", wer=0.246, base_wer=0.162, built_in=True)
    decision = champion_gate(0.01, 0.795, None, None, [forgot], max_regression_points=2.0)
    assert not decision.passed
    assert "general_en WER 16.2% -> 24.6% (+8.4 points)" in decision.reason
    assert (
        "built-in espeak-ng general set: a `role: regression` source of real speech is better"
        in decision.reason
    )
    unheard = Regression("general_sr", wer=2.4, base_wer=2.1, built_in=True)  # the base cannot transcribe it
    reported = champion_gate(0.01, 0.795, None, None, [unheard], max_regression_points=2.0)
    assert reported.passed and "general_sr WER 210.0% -> 240.0% (+30.0 points)" in reported.reason
    assert "not gated: the base misses 210% of its words" in reported.reason
    real = Regression("regression/sr", wer=2.4, base_wer=2.1)  # a real regression source always holds
    assert not champion_gate(0.01, 0.795, None, None, [real], max_regression_points=2.0).passed


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng")
def test_general_sets_are_built_once_per_version_for_the_languages_that_have_sentences(tmp_path):
    sets = general_sets({"en", "hr", "de"}, tmp_path)
    assert set(sets) == {"general_en", "general_hr"}  # no sentences for German: not measured, not invented
    rows = read_manifest(sets["general_hr"])
    assert [r["transcript"] for r in rows] == list(SENTENCES["hr"])
    assert {r["speaker"] for r in rows} == set(VOICES["hr"]) and all(r["duration"] > 1.0 for r in rows)
    first = sets["general_en"].stat().st_mtime_ns
    assert general_sets({"en"}, tmp_path)["general_en"].stat().st_mtime_ns == first  # reused, not rebuilt


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng")
def test_the_selection_set_shares_no_sentence_voice_or_id_with_the_gates_set(tmp_path):
    gate = read_manifest(general_sets({"en"}, tmp_path)["general_en"])
    selection = read_manifest(selection_sets({"en", "de"}, tmp_path)["general_en"])
    assert [r["transcript"] for r in selection] == list(SELECTION_SENTENCES["en"])
    for key in ("transcript", "speaker", "id", "audio"):
        assert not {r[key] for r in gate} & {r[key] for r in selection}, key
    assert not set(SENTENCES) ^ set(SELECTION_SENTENCES)  # every gated language has a selection set
