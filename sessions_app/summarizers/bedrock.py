"""AWS Bedrock summarizer through the Converse API (boto3 ``bedrock-runtime``).

https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html

The model id comes from ``settings.BEDROCK_MODEL_ID``; credentials and region from the usual AWS
chain (``BEDROCK_REGION`` overrides the region). Errors are translated at this boundary:
throttling, timeouts and 5xx become ``SummarizerUnavailable`` (the task retries with backoff);
anything else — access denied, a bad model id, a validation error — is ``SummarizerError`` and
fails the task without retrying.
"""

from __future__ import annotations

import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, ReadTimeoutError
from django.conf import settings

from . import SummarizerError, SummarizerUnavailable, SummaryText, Transcript

# Keep the prompt well inside the smallest context window we would configure; for longer
# sessions keep the opening (what the customer came for) and the most recent turns.
MAX_TRANSCRIPT_CHARS = 60_000
HEAD_TURNS = 4

_TRANSIENT_CODES = frozenset({
    "ThrottlingException", "ServiceUnavailableException", "ModelTimeoutException", "InternalServerException",
    "ModelNotReadyException", "TooManyRequestsException",
})

_SYSTEM = {
    "en": (
        "You summarise a customer-service chat from an online manga shop for the staff who may take "
        "it over. Write 3-6 short lines in English: what the customer wanted; every manga title and "
        "volume number mentioned; what the assistant recommended or did (cart, orders, refunds); "
        "what is still unresolved. Use only facts from the chat. No greeting, no preamble."
    ),
    "ja": (
        "あなたはオンラインの漫画ショップのチャットを、引き継ぐスタッフのために要約します。日本語で3〜6行："
        "お客様のご用件、言及されたすべての作品名と巻数、アシスタントの提案や対応（カート・注文・返金など）、"
        "未解決の事項。チャットにある事実だけを書き、挨拶や前置きは不要です。"
    ),
}

_local = threading.local()


def _client():
    # boto3 clients are thread-safe, but the Session that builds them is not; one per thread.
    client = getattr(_local, "client", None)
    if client is None:
        client = boto3.session.Session().client(
            "bedrock-runtime",
            region_name=settings.BEDROCK_REGION,
            config=Config(connect_timeout=3, read_timeout=settings.BEDROCK_READ_TIMEOUT,
                          retries={"mode": "standard", "max_attempts": 2}),
        )
        _local.client = client
    return client


def transcript_text(transcript: Transcript) -> str:
    """The chat as plain lines (``[seq] role: text``), trimmed in the middle to fit the budget."""
    lines = [f"[{t.seq}] {'customer' if t.role == 'user' else t.role}: {t.text.strip()}" for t in transcript.turns]
    total = sum(len(line) + 1 for line in lines)
    if total <= MAX_TRANSCRIPT_CHARS:
        return "\n".join(lines)
    head, tail, size = lines[:HEAD_TURNS], [], sum(len(line) + 1 for line in lines[:HEAD_TURNS])
    for line in reversed(lines[HEAD_TURNS:]):
        if size + len(line) + 1 > MAX_TRANSCRIPT_CHARS:
            break
        tail.append(line)
        size += len(line) + 1
    skipped = len(lines) - len(head) - len(tail)
    return "\n".join(head + [f"[... {skipped} turns omitted ...]"] + list(reversed(tail)))


class BedrockSummarizer:
    def __init__(self, client=None, model_id: str | None = None) -> None:
        self.client = client or _client()
        self.model_id = model_id or settings.BEDROCK_MODEL_ID
        self.generator = f"bedrock:{self.model_id}"

    def summarize(self, transcript: Transcript) -> SummaryText:
        lang = "ja" if transcript.locale == "ja" else "en"
        if not transcript.turns:
            # No tokens spent on an empty chat; same wording as the extractive summarizer.
            from .extractive import ExtractiveSummarizer

            return SummaryText(text=ExtractiveSummarizer().summarize(transcript).text, generator=self.generator)
        try:
            response = self.client.converse(
                modelId=self.model_id,
                system=[{"text": _SYSTEM[lang]}],
                messages=[{"role": "user", "content": [{"text": transcript_text(transcript)}]}],
                inferenceConfig={"maxTokens": settings.BEDROCK_MAX_TOKENS, "temperature": 0.2},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or status >= 500:
                raise SummarizerUnavailable(f"Bedrock {code or status}: {exc}") from exc
            raise SummarizerError(f"Bedrock refused the request ({code}): {exc}") from exc
        except (ReadTimeoutError, BotoConnectionError) as exc:
            raise SummarizerUnavailable(f"Bedrock unreachable: {exc}") from exc
        except BotoCoreError as exc:
            raise SummarizerError(f"Bedrock call failed: {exc}") from exc
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "\n".join(block["text"] for block in content if "text" in block).strip()
        if not text:
            raise SummarizerError(f"Bedrock returned no text (stopReason={response.get('stopReason')})")
        return SummaryText(text=text, generator=self.generator)
