"""An offline, deterministic summarizer for staff: what the customer wanted, which titles and
volumes came up, what the assistant recommended or did, and what is still open.

Extractive on purpose: every phrase in the summary comes from the chat or a fixed template, so it
cannot invent a title, a volume or a promise the bot never made — the property staff need most
when they take a session over. It reads English and Japanese (NFKC-normalised, so full-width
digits and ``×`` work) and writes in the session's language.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field

from . import SummaryText, Transcript, TranscriptTurn

GENERATOR = "extractive-v1"
MAX_QUOTE = 140
MAX_ACTIONS = 3
MAX_TITLES = 8

# Well-known series: (English display, Japanese display, lower-case aliases). A title outside this
# list is still found when the chat quotes it or names a volume of it ("Blue Period vol. 3").
CATALOG: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("One Piece", "ONE PIECE", ("one piece", "ワンピース")),
    ("Naruto", "NARUTO -ナルト-", ("naruto", "ナルト")),
    ("Attack on Titan", "進撃の巨人", ("attack on titan", "shingeki no kyojin", "進撃の巨人")),
    ("Demon Slayer", "鬼滅の刃", ("demon slayer", "kimetsu no yaiba", "鬼滅の刃")),
    ("Jujutsu Kaisen", "呪術廻戦", ("jujutsu kaisen", "呪術廻戦")),
    ("Chainsaw Man", "チェンソーマン", ("chainsaw man", "チェンソーマン")),
    ("Spy x Family", "SPY×FAMILY", ("spy x family", "spy×family", "spy family", "スパイファミリー")),
    ("My Hero Academia", "僕のヒーローアカデミア", ("my hero academia", "boku no hero", "僕のヒーローアカデミア", "ヒロアカ")),
    ("Frieren", "葬送のフリーレン", ("frieren", "葬送のフリーレン")),
    ("Berserk", "ベルセルク", ("berserk", "ベルセルク")),
    ("Vagabond", "バガボンド", ("vagabond", "バガボンド")),
    ("Blue Lock", "ブルーロック", ("blue lock", "ブルーロック")),
    ("Dandadan", "ダンダダン", ("dandadan", "ダンダダン")),
    ("Kingdom", "キングダム", ("kingdom", "キングダム")),
    ("Dragon Ball", "ドラゴンボール", ("dragon ball", "ドラゴンボール")),
    ("Slam Dunk", "SLAM DUNK", ("slam dunk", "スラムダンク")),
    ("Haikyu!!", "ハイキュー!!", ("haikyu", "haikyuu", "ハイキュー")),
    ("Oshi no Ko", "【推しの子】", ("oshi no ko", "推しの子")),
    ("Kaiju No. 8", "怪獣8号", ("kaiju no. 8", "kaiju no 8", "怪獣8号")),
    ("Vinland Saga", "ヴィンランド・サガ", ("vinland saga", "ヴィンランド・サガ")),
    ("Death Note", "DEATH NOTE", ("death note", "デスノート")),
    ("Fullmetal Alchemist", "鋼の錬金術師", ("fullmetal alchemist", "鋼の錬金術師", "ハガレン")),
    ("Hunter x Hunter", "HUNTER×HUNTER", ("hunter x hunter", "hunter×hunter", "ハンターハンター")),
    ("Sakamoto Days", "SAKAMOTO DAYS", ("sakamoto days", "サカモトデイズ")),
    ("Mob Psycho 100", "モブサイコ100", ("mob psycho 100", "モブサイコ100")),
    ("Tokyo Revengers", "東京卍リベンジャーズ", ("tokyo revengers", "東京卍リベンジャーズ", "東京リベンジャーズ")),
    ("Blue Period", "ブルーピリオド", ("blue period", "ブルーピリオド")),
    ("Solo Leveling", "俺だけレベルアップな件", ("solo leveling", "俺だけレベルアップな件")),
)

_ALIASES = sorted(
    ((alias, en, ja) for en, ja, aliases in CATALOG for alias in aliases), key=lambda a: -len(a[0])
)
# A Japanese alias is matched as a substring; a Latin one on word boundaries.
_ALIAS_RE = re.compile(
    "|".join(
        re.escape(alias) if not alias.isascii() else r"(?<![a-z0-9])" + re.escape(alias) + r"(?![a-z0-9])"
        for alias, _, _ in _ALIASES
    )
)
_ALIAS_MAP = {alias: (en, ja) for alias, en, ja in _ALIASES}

_QUOTED_RE = re.compile(r'"([^"\n]{2,60})"|“([^”\n]{2,60})”|『([^』\n]{1,40})』|「([^」\n。、]{1,30})」')
# "Blue Period vol. 3", "Witch Hat Atelier volume 2": up to six capitalised words before a volume.
_TITLE_BEFORE_VOLUME_RE = re.compile(
    r"((?:[A-Z][\w'!×:.-]*\s+){0,5}[A-Z][\w'!×-]*)\s*,?\s+(?:vol(?:ume)?s?\.?|#)\s*\d"
)
_LEADING_NOISE = {
    "I", "Also", "And", "But", "So", "Do", "Does", "Is", "Are", "Can", "Could", "Please", "Hi", "Hello",
    "Thanks", "Then", "What", "Which", "When", "Where", "How", "Any", "My", "Your", "Get", "Buy", "Order",
    "Want", "Need", "Did", "Has", "Have", "Yes", "No", "Ok", "Okay", "Great", "Sure", "About", "For", "Of",
    "Next", "The Next", "Latest", "New", "Both",
}
_VOLUME_EN_RE = re.compile(
    r"\b(?:vol(?:ume)?s?\.?|#)\s*(\d{1,3})(?:\s*(-|–|to|through|and|&|,)\s*(?:vol(?:ume)?\.?\s*)?(\d{1,3}))?",
    re.IGNORECASE,
)
_VOLUME_JA_RE = re.compile(r"第?\s*(\d{1,3})\s*(?:(〜|~|-|–|から)\s*(\d{1,3}))?\s*巻")
# A sentence ends at 。！？ or at . ! ? before a space — but not after "vol." or "No." (titles).
_SENTENCE_END_RE = re.compile(r"(?<![Vv]ol)(?<![Vv]ols)(?<![Nn]o)[.!?]+(?=\s|$)|[。！？!?]+|\n+")
_AFTER_TITLE_NUMBER_RE = re.compile(r"\s*#?(\d{1,3})(?![\d%,.]|\s*巻)")
_JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")

# (label en, label ja, keywords) — matched case-insensitively against the customer's turns.
_INTENTS = (
    ("a recommendation", "おすすめの紹介", ("recommend", "suggest", "similar to", "something like", "what should i read", "おすすめ", "オススメ", "似た", "紹介")),
    ("to buy or order", "購入・注文", ("buy", "purchase", "order", "add to cart", "checkout", "購入", "注文", "買い", "買う", "カート")),
    ("a pre-order or release date", "予約・発売日の確認", ("pre-order", "preorder", "release", "come out", "coming out", "予約", "発売")),
    ("stock or availability", "在庫の確認", ("in stock", "available", "availability", "out of stock", "在庫", "入荷")),
    ("delivery or order status", "配送状況の確認", ("where is my", "tracking", "delivery", "deliver", "arrive", "shipped", "shipping", "配送", "届", "発送", "追跡")),
    ("a return, refund or replacement", "返品・返金・交換", ("return", "refund", "damaged", "torn", "missing page", "wrong", "replace", "返品", "返金", "破損", "交換", "間違", "汚れ")),
    ("price or discounts", "価格・割引", ("price", "cost", "how much", "discount", "coupon", "sale", "値段", "価格", "いくら", "割引", "クーポン", "セール")),
    ("a format or edition", "版・形式", ("box set", "boxset", "hardcover", "paperback", "digital", "kindle", "ebook", "english edition", "omnibus", "電子", "全巻セット", "完全版", "英語版", "紙の本")),
)
_ACTION_WORDS = (
    "recommend", "suggest", "you might", "you may like", "you'd like", "try ", "added", "cart", "placed", "ordered",
    "refund", "return label", "replacement", "shipped", "tracking", "in stock", "out of stock", "available",
    "pre-order", "preorder", "escalat", "agent", "coupon", "discount", "release", "arrive",
    "おすすめ", "オススメ", "カート", "追加", "注文", "返金", "返品", "交換", "発送", "在庫", "予約", "担当者", "お届け",
    "クーポン", "発売", "入荷", "手配",
)
_OPEN_WORDS = (
    "still", "not yet", "haven't", "hasn't", "never arrived", "not received", "didn't receive", "wrong", "problem",
    "complain", "unacceptable", "まだ", "届いていない", "届かない", "問題", "間違", "困",
)
_FOLLOW_UP_WORDS = (
    "i'll check", "i will check", "get back to you", "follow up", "escalat", "human agent", "specialist",
    "a colleague", "our team will", "unable to", "i can't", "i cannot", "i don't know", "not sure",
    "確認いたします", "確認して", "担当者", "折り返し", "お調べ", "わかりかねます", "できかねます",
)


@dataclass
class _Findings:
    titles: "OrderedDict[str, set[int]]" = field(default_factory=OrderedDict)  # display key → volumes
    loose_volumes: set[int] = field(default_factory=set)
    intents: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return [s for s in (p.strip() for p in out) if s]


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _is_japanese(transcript: Transcript) -> bool:
    if transcript.locale == "ja":
        return True
    text = "".join(t.text for t in transcript.turns if t.role == "user")
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(bool(_JAPANESE_RE.match(c)) for c in letters) / len(letters) > 0.5


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 1].rstrip() + "…"


def _volumes(sentence: str) -> list[tuple[int, list[int]]]:
    """(position, volumes) for each volume mention: "vol. 3", "volumes 1-3", "3巻", "第1〜3巻",
    and a bare number right after a known series ("One Piece 105")."""
    found = []
    for m in _ALIAS_RE.finditer(sentence.lower()):
        after = _AFTER_TITLE_NUMBER_RE.match(sentence, m.end())
        if after:
            found.append((after.start(1), [int(after.group(1))]))
    for regex in (_VOLUME_EN_RE, _VOLUME_JA_RE):
        for m in regex.finditer(sentence):
            first = int(m.group(1))
            second = m.group(3)
            if second is None:
                vols = [first]
            elif m.group(2) in ("and", "&", ","):
                vols = [first, int(second)]
            else:
                low, high = sorted((first, int(second)))
                vols = list(range(low, high + 1)) if high - low <= 30 else [low, high]
            found.append((m.start(), [v for v in vols if v > 0]))
    return found


def _titles(sentence: str, japanese: bool) -> list[tuple[int, str]]:
    """(position, display name) for each title mention in one sentence."""
    found: list[tuple[int, str]] = []
    lower = sentence.lower()
    taken: list[tuple[int, int]] = []
    for m in _ALIAS_RE.finditer(lower):
        en, ja = _ALIAS_MAP[m.group(0)]
        found.append((m.start(), ja if japanese else en))
        taken.append((m.start(), m.end()))

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for m in _QUOTED_RE.finditer(sentence):
        idx = next(i for i in range(1, 5) if m.group(i))
        name = m.group(idx).strip()
        if free(m.start(idx), m.end(idx)) and not _VOLUME_EN_RE.fullmatch(name):
            found.append((m.start(), name))
            taken.append((m.start(), m.end()))
    for m in _TITLE_BEFORE_VOLUME_RE.finditer(sentence):
        words = m.group(1).split()
        while words and (words[0] in _LEADING_NOISE or " ".join(words[:2]) in _LEADING_NOISE):
            words = words[2:] if " ".join(words[:2]) in _LEADING_NOISE else words[1:]
        name = " ".join(words).rstrip(":,.")
        if len(name) >= 3 and free(m.start(1), m.end(1)):
            found.append((m.start(1), name))
            taken.append((m.start(1), m.end(1)))
    return sorted(found)


def _scan(turns: tuple[TranscriptTurn, ...], japanese: bool) -> _Findings:
    out = _Findings()
    keys_by_fold: dict[str, str] = {}
    last_title: str | None = None
    for turn in turns:
        text = _norm(turn.text)
        lowered = text.lower()
        if turn.role == "user":
            for i, (_, _, words) in enumerate(_INTENTS):
                if i not in out.intents and any(w in lowered for w in words):
                    out.intents.append(i)
        for sentence in _sentences(text):
            titles = []
            for pos, name in _titles(sentence, japanese):
                key = keys_by_fold.setdefault(name.casefold(), name)
                out.titles.setdefault(key, set())
                titles.append((pos, key))
            for pos, vols in _volumes(sentence):
                before = [t for p, t in titles if p <= pos]
                after = [t for p, t in titles if p > pos]
                owner = before[-1] if before else after[0] if after else last_title
                (out.titles[owner] if owner else out.loose_volumes).update(vols)
            if titles:
                last_title = titles[-1][1]
            if turn.role == "assistant" and len(out.actions) < MAX_ACTIONS:
                s = sentence.strip()
                if any(w in s.lower() for w in _ACTION_WORDS) and _quote(s) not in out.actions:
                    out.actions.append(_quote(s))
    return out


def _volume_list(vols: set[int], japanese: bool) -> str:
    nums = sorted(vols)
    # Collapse runs: 1, 2, 3, 5 → 1–3, 5
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(f"{start}–{n}" if n - start >= 2 else ", ".join(str(x) for x in range(start, n + 1)))
            start = None
    joined = ", ".join(parts)
    if japanese:
        return f"{joined}巻"
    return f"vol. {joined}" if len(nums) == 1 else f"vols. {joined}"


def _open_issue(turns: tuple[TranscriptTurn, ...], japanese: bool) -> str | None:
    dialogue = [t for t in turns if t.role in ("user", "assistant")]
    if not dialogue:
        return None
    last = dialogue[-1]
    if last.role == "user":
        quote = _quote(_norm(last.text))
        return f"お客様の最後のメッセージに未回答：「{quote}」" if japanese else f"The customer's last message got no reply: \u201c{quote}\u201d"
    last_user = next((t for t in reversed(dialogue) if t.role == "user"), None)
    answer = _norm(last.text).lower()
    if any(w in answer for w in _FOLLOW_UP_WORDS):
        quote = _quote(_norm(last.text))
        return f"フォローアップ待ち：「{quote}」" if japanese else f"Waiting on a follow-up: \u201c{quote}\u201d"
    if last_user is not None and any(w in _norm(last_user.text).lower() for w in _OPEN_WORDS):
        quote = _quote(_norm(last_user.text))
        return f"お客様の懸念が残っている可能性：「{quote}」" if japanese else f"The customer's concern may still be open: \u201c{quote}\u201d"
    return None


class ExtractiveSummarizer:
    """Deterministic: the same transcript always gives the same text (tests rely on it)."""

    generator = GENERATOR

    def summarize(self, transcript: Transcript) -> SummaryText:
        japanese = _is_japanese(transcript)
        turns = tuple(t for t in transcript.turns if t.text and t.text.strip())
        if not turns:
            text = "会話の内容がありません（要約できるターンはありません）。" if japanese else \
                "No conversation content to summarise: the session has no turns yet."
            return SummaryText(text=text, generator=GENERATOR)
        found = _scan(turns, japanese)
        user_turns = [t for t in turns if t.role == "user"]
        lines = []

        first_ask = _quote(_norm(user_turns[0].text)) if user_turns else None
        intents = [(_INTENTS[i][1] if japanese else _INTENTS[i][0]) for i in found.intents]
        if japanese:
            want = "、".join(intents) if intents else "ご用件は特定できませんでした"
            lines.append(f"お客様のご用件：{want}" + (f"（最初のメッセージ：「{first_ask}」）" if first_ask else "") + "。")
        else:
            want = ", ".join(intents) if intents else "no clear request"
            lines.append(f"Customer wanted: {want}" + (f" (first message: \u201c{first_ask}\u201d)" if first_ask else "") + ".")

        titles = list(found.titles.items())[:MAX_TITLES]
        rendered = [f"{name}（{_volume_list(v, True)}）" if japanese and v else
                    f"{name} ({_volume_list(v, False)})" if v else name for name, v in titles]
        if found.loose_volumes:
            rendered.append(_volume_list(found.loose_volumes, japanese) + ("（作品名不明）" if japanese else " (title not named)"))
        if japanese:
            lines.append("話題の作品：" + ("、".join(rendered) if rendered else "作品名の言及なし") + "。")
        else:
            lines.append("Titles mentioned: " + ("; ".join(rendered) if rendered else "none named") + ".")

        if japanese:
            lines.append("アシスタントの対応：" + (" / ".join(found.actions) if found.actions else "具体的な提案・手続きはなし"))
        else:
            lines.append("Assistant: " + (" / ".join(found.actions) if found.actions else "no concrete recommendation or action"))

        issue = _open_issue(turns, japanese)
        if japanese:
            lines.append("未解決：" + (issue or "目立った未解決事項はありません。"))
        else:
            lines.append("Unresolved: " + (issue or "nothing obviously open."))

        n_user = len(user_turns)
        n_bot = sum(1 for t in turns if t.role == "assistant")
        first, last = turns[0].seq, turns[-1].seq
        if japanese:
            lines.append(f"対象：ターン{first}〜{last}（お客様{n_user}件、アシスタント{n_bot}件）。")
        else:
            lines.append(f"Covers turns {first}–{last} ({n_user} from the customer, {n_bot} from the assistant).")
        return SummaryText(text="\n".join(lines), generator=GENERATOR)
