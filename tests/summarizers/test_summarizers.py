"""Summarizer quality on fixed transcripts, and the Bedrock adapter through botocore's Stubber."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sessions_app.summarizers import (
    SummarizerError,
    SummarizerUnavailable,
    Transcript,
    TranscriptTurn,
    summarizer_get,
)
from sessions_app.summarizers.bedrock import MAX_TRANSCRIPT_CHARS, BedrockSummarizer, transcript_text
from sessions_app.summarizers.extractive import ExtractiveSummarizer
from tests.fixtures.celery_workers import GATED_SUMMARIZER

EN_CHAT = Transcript("s-en", "en", (
    TranscriptTurn(1, "user", "Hi! I just finished Chainsaw Man volume 11. Can you recommend something similar?"),
    TranscriptTurn(2, "assistant", "If you liked Chainsaw Man, I recommend Jujutsu Kaisen and Dandadan. Dandadan vol. 1 is in stock."),
    TranscriptTurn(3, "user", 'Add Dandadan volumes 1-3 to my cart. Is "Witch Hat Atelier" out in English? Do you have Blue Period vol. 5?'),
    TranscriptTurn(4, "assistant", "I've added Dandadan vols 1 to 3 to your cart. Witch Hat Atelier volume 12 releases next month; you can pre-order it."),
    TranscriptTurn(5, "user", "Thanks. Also my One Piece 105 order still hasn't arrived."),
))

JA_CHAT = Transcript("s-ja", "ja", (
    TranscriptTurn(1, "user", "こんにちは。呪術廻戦の最新刊（２６巻）はいつ発売ですか？"),
    TranscriptTurn(2, "assistant", "呪術廻戦 第26巻は発売済みで、在庫がございます。カートに追加しますか？"),
    TranscriptTurn(3, "user", "はい、お願いします。あと『葬送のフリーレン』の１〜３巻も欲しいです。"),
    TranscriptTurn(4, "assistant", "呪術廻戦26巻と葬送のフリーレン1〜3巻をカートに追加しました。"),
    TranscriptTurn(5, "user", "先週注文したワンピース107巻がまだ届いていません。"),
    TranscriptTurn(6, "assistant", "ご不便をおかけして申し訳ありません。配送状況を確認して折り返しご連絡いたします。"),
))


def _japanese_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("\u3040" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff" for c in letters) / len(letters)


def test_extractive_summary_names_every_title_with_its_volumes():
    text = ExtractiveSummarizer().summarize(EN_CHAT).text
    assert "Chainsaw Man (vol. 11)" in text
    assert "Dandadan (vols. 1–3)" in text
    assert "Witch Hat Atelier (vol. 12)" in text
    assert "Blue Period (vol. 5)" in text
    assert "One Piece (vol. 105)" in text
    assert "Jujutsu Kaisen" in text


def test_extractive_summary_says_what_the_customer_wanted_and_what_the_bot_did():
    text = ExtractiveSummarizer().summarize(EN_CHAT).text
    wanted = text.splitlines()[0]
    assert wanted.startswith("Customer wanted:")
    assert "a recommendation" in wanted and "delivery or order status" in wanted
    assistant = next(line for line in text.splitlines() if line.startswith("Assistant:"))
    assert "I recommend Jujutsu Kaisen and Dandadan" in assistant
    assert "added Dandadan vols 1 to 3 to your cart" in assistant


def test_extractive_summary_flags_the_unanswered_last_message_as_unresolved():
    text = ExtractiveSummarizer().summarize(EN_CHAT).text
    unresolved = next(line for line in text.splitlines() if line.startswith("Unresolved:"))
    assert "One Piece 105 order still hasn't arrived" in unresolved
    assert "Covers turns 1–5 (3 from the customer, 2 from the assistant)." in text


def test_extractive_summary_reports_nothing_open_when_the_bot_answered():
    chat = Transcript("s", "en", EN_CHAT.turns[:4])
    assert "Unresolved: nothing obviously open." in ExtractiveSummarizer().summarize(chat).text


def test_japanese_transcript_gives_a_japanese_summary_with_titles_and_volumes():
    text = ExtractiveSummarizer().summarize(JA_CHAT).text
    assert _japanese_share(text) > 0.6
    assert "呪術廻戦（26巻）" in text
    assert "葬送のフリーレン（1–3巻）" in text
    assert "ONE PIECE（107巻）" in text
    assert text.splitlines()[0].startswith("お客様のご用件：")
    assert "フォローアップ待ち" in text  # the bot promised to check the delivery and call back
    assert "Customer" not in text and "Titles" not in text


def test_japanese_chat_in_an_english_locale_session_is_still_summarised_in_japanese():
    chat = Transcript("s", "en", JA_CHAT.turns)
    assert _japanese_share(ExtractiveSummarizer().summarize(chat).text) > 0.6


@pytest.mark.parametrize("locale,expected", [("en", "No conversation content"), ("ja", "会話の内容がありません")])
def test_empty_session_gives_a_clear_no_content_summary(locale, expected):
    result = ExtractiveSummarizer().summarize(Transcript("s", locale, ()))
    assert result.text.startswith(expected)
    assert result.generator == "extractive-v1"


def test_extractive_summarizer_is_deterministic():
    assert ExtractiveSummarizer().summarize(EN_CHAT) == ExtractiveSummarizer().summarize(EN_CHAT)


def test_summarizer_is_chosen_by_setting(settings):
    settings.SUMMARIZER = "extractive"
    assert isinstance(summarizer_get(), ExtractiveSummarizer)
    settings.SUMMARIZER = GATED_SUMMARIZER
    assert type(summarizer_get()).__name__ == "GatedSummarizer"


# --- Bedrock (Converse API), stubbed at the botocore boundary ---------------------------------------

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def bedrock():
    client = boto3.session.Session().client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _converse_response(text: str) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 120, "outputTokens": 40, "totalTokens": 160},
        "metrics": {"latencyMs": 420},
    }


def test_bedrock_summarizer_sends_the_transcript_with_a_language_instruction(bedrock, settings):
    client, stubber = bedrock
    settings.BEDROCK_MAX_TOKENS = 300
    expected = {
        "modelId": MODEL,
        "system": [{"text": ANY}],
        "messages": [{"role": "user", "content": [{"text": transcript_text(JA_CHAT)}]}],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2},
    }
    stubber.add_response("converse", _converse_response("お客様は呪術廻戦26巻を購入。"), expected)
    result = BedrockSummarizer(client=client, model_id=MODEL).summarize(JA_CHAT)
    assert result.text == "お客様は呪術廻戦26巻を購入。"
    assert result.generator == f"bedrock:{MODEL}"
    assert "[5] customer: 先週注文したワンピース107巻がまだ届いていません。" in transcript_text(JA_CHAT)


def test_bedrock_system_prompt_follows_the_session_language(bedrock):
    client, stubber = bedrock
    seen = []
    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", lambda params, **kw: seen.append(params))
    stubber.add_response("converse", _converse_response("summary"))
    stubber.add_response("converse", _converse_response("要約"))
    BedrockSummarizer(client=client, model_id=MODEL).summarize(EN_CHAT)
    BedrockSummarizer(client=client, model_id=MODEL).summarize(JA_CHAT)
    assert "in English" in seen[0]["system"][0]["text"]
    assert "日本語" in seen[1]["system"][0]["text"]


def test_bedrock_throttling_is_transient_and_access_denied_is_not(bedrock):
    client, stubber = bedrock
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    stubber.add_client_error("converse", service_error_code="AccessDeniedException", http_status_code=403)
    summarizer = BedrockSummarizer(client=client, model_id=MODEL)
    with pytest.raises(SummarizerUnavailable):
        summarizer.summarize(EN_CHAT)
    with pytest.raises(SummarizerError) as denied:
        summarizer.summarize(EN_CHAT)
    assert not isinstance(denied.value, SummarizerUnavailable)


def test_bedrock_empty_answer_is_an_error_not_an_empty_summary(bedrock):
    client, stubber = bedrock
    stubber.add_response("converse", {**_converse_response(""), "output": {"message": {"role": "assistant", "content": []}}})
    with pytest.raises(SummarizerError):
        BedrockSummarizer(client=client, model_id=MODEL).summarize(EN_CHAT)


def test_bedrock_is_not_called_for_an_empty_session(bedrock):
    client, _ = bedrock  # no stubbed response: a call would fail the Stubber
    result = BedrockSummarizer(client=client, model_id=MODEL).summarize(Transcript("s", "en", ()))
    assert result.text.startswith("No conversation content")


def test_long_transcript_keeps_the_opening_and_the_latest_turns_within_budget():
    turns = tuple(TranscriptTurn(i, "user" if i % 2 else "assistant", f"message {i} " + "x" * 400) for i in range(1, 501))
    text = transcript_text(Transcript("s", "en", turns))
    assert len(text) <= MAX_TRANSCRIPT_CHARS + 100
    assert text.startswith("[1] customer: message 1 ")
    assert "[500] assistant: message 500 " in text
    assert "turns omitted" in text
