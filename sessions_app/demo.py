"""Realistic demo conversations for `make run` (English and Japanese manga-shop chats).

Deterministic for a given seed, so a demo stack looks the same on every machine.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from .services.bulk import SessionSpec

SERIES = [
    ("One Piece", "ワンピース", 108), ("Attack on Titan", "進撃の巨人", 34), ("Demon Slayer", "鬼滅の刃", 23),
    ("Jujutsu Kaisen", "呪術廻戦", 28), ("Chainsaw Man", "チェンソーマン", 19), ("Spy x Family", "SPY×FAMILY", 14),
    ("Frieren", "葬送のフリーレン", 14), ("My Hero Academia", "僕のヒーローアカデミア", 42), ("Vinland Saga", "ヴィンランド・サガ", 14),
    ("Blue Lock", "ブルーロック", 31), ("Haikyu!!", "ハイキュー!!", 45), ("Oshi no Ko", "【推しの子】", 16),
]
CUSTOMERS = [f"cust-{n:04d}" for n in range(1, 41)]


def _english(rng: random.Random, title: str, volumes: int) -> list[tuple[str, str]]:
    vol = rng.randint(1, volumes)
    other = rng.choice(SERIES)[0]
    lines = [
        ("user", f"Hi! Do you have {title} volume {vol} in stock?"),
        ("assistant", f"Yes — {title} Vol. {vol} is in stock (paperback, ¥{rng.choice([528, 594, 660])}). Would you like the Kindle edition instead?"),
        ("user", rng.choice(["Paperback please. When would it arrive?", "Is there a box set of volumes 1 to 10?", "Can I pre-order the next volume too?"])),
        ("assistant", rng.choice([
            "With Prime it arrives tomorrow. I've added it to your cart.",
            f"The {title} box set (volumes 1–10) is available and saves 12%. Shall I add it?",
            f"Pre-order for {title} Vol. {min(vol + 1, volumes)} is open; you won't be charged until it ships.",
        ])),
        ("user", f"Also, I finished {other}. Anything similar you'd recommend?"),
        ("assistant", f"If you liked {other}, readers often enjoy {rng.choice(SERIES)[0]} and {rng.choice(SERIES)[0]}. Both have strong character arcs."),
        ("user", rng.choice(["My last order arrived with a damaged cover.", "Do you ship to Canada?", "Thanks, that's all!", "Is the special edition still available?"])),
        ("assistant", rng.choice([
            "I'm sorry about that! I've started a replacement for the damaged copy; no need to send it back.",
            "We do ship to Canada; delivery takes 5–8 business days.",
            "You're welcome — happy reading!",
            "The special edition sold out, but I can notify you if it restocks.",
        ])),
    ]
    return lines[: rng.choice([6, 8, 8, 10])] + _follow_ups(rng, title, volumes)


def _japanese(rng: random.Random, title: str, volumes: int) -> list[tuple[str, str]]:
    vol = rng.randint(1, volumes)
    other = rng.choice(SERIES)[1]
    lines = [
        ("user", f"こんにちは。{title}の{vol}巻は在庫ありますか？"),
        ("assistant", f"はい、{title} {vol}巻は在庫がございます（紙の本、{rng.choice([528, 594, 660])}円）。Kindle版もございますがいかがでしょうか？"),
        ("user", rng.choice(["紙の本でお願いします。いつ届きますか？", "1巻から10巻までのセットはありますか？", "次の巻も予約できますか？"])),
        ("assistant", rng.choice([
            "プライム会員様は明日お届け予定です。カートに追加しました。",
            f"{title} 1〜10巻セットがございます。12%お得です。追加しますか？",
            f"{title} {min(vol + 1, volumes)}巻の予約を承っております。発送時までご請求はありません。",
        ])),
        ("user", f"{other}を読み終わりました。似た作品でおすすめはありますか？"),
        ("assistant", f"{other}がお好きでしたら、{rng.choice(SERIES)[1]}や{rng.choice(SERIES)[1]}も人気です。"),
        ("user", rng.choice(["前回の注文で表紙が破れていました。", "海外発送はできますか？", "ありがとうございました！", "特装版はまだありますか？"])),
        ("assistant", rng.choice([
            "大変申し訳ございません。交換品を手配いたしました。返品は不要です。",
            "一部の国・地域へは発送可能です。お届けまで5〜8営業日かかります。",
            "どういたしまして。お楽しみください！",
            "特装版は完売しましたが、再入荷の際にお知らせできます。",
        ])),
    ]
    return lines[: rng.choice([6, 8, 8, 10])] + _follow_ups(rng, title, volumes, japanese=True)


def _follow_ups(rng: random.Random, title: str, volumes: int, *, japanese: bool = False) -> list[tuple[str, str]]:
    extra = []
    for _ in range(rng.choice([0, 1, 2, 3, 5])):
        vol = rng.randint(1, volumes)
        if japanese:
            extra += [("user", f"{title}の{vol}巻の発売日を教えてください。"), ("assistant", f"{title} {vol}巻は発売済みで、すぐにお届けできます。")]
        else:
            extra += [("user", f"What about {title} volume {vol}?"), ("assistant", f"{title} Vol. {vol} is available and ships today.")]
    return extra


HANDOFF_REASONS = (
    "the customer asked for a person",
    "damaged copy: refund requested",
    "限定版の予約について担当者と話したい",
    "payment failed twice",
)


DEMO_MODELS = ("claude-3-haiku", "claude-3-haiku", "claude-3-5-sonnet")


def _with_trace(rng: random.Random, turns: list[tuple[str, str]]) -> list[tuple]:
    """The bot's replies with what the runtime records of them: model, latency, tokens."""
    model = rng.choice(DEMO_MODELS)
    traced = []
    for role, text in turns:
        if role != "assistant":
            traced.append((role, text))
            continue
        traced.append((role, text, {"model": model, "latency_ms": round(rng.lognormvariate(6.9, 0.45), 1),
                                    "tokens_in": rng.randint(300, 2400), "tokens_out": max(20, len(text) // 3)}))
    return traced


def demo_sessions(*, count: int, now: datetime, seed: int = 2026) -> list[SessionSpec]:
    rng = random.Random(seed)
    sessions = []
    for _ in range(count):
        japanese = rng.random() < 0.4
        en_title, ja_title, volumes = rng.choice(SERIES)
        turns = _with_trace(rng, _japanese(rng, ja_title, volumes) if japanese else _english(rng, en_title, volumes))
        started = now - timedelta(days=rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 5, 6]), minutes=rng.randint(5, 60 * 20))
        sessions.append(SessionSpec(
            customer_id=rng.choice(CUSTOMERS),
            channel=rng.choice(["web", "web", "app", "app", "line"]),
            locale="ja" if japanese else "en",
            status=rng.choices(["active", "handed_off", "closed"], weights=[3, 1, 6])[0],
            handoff_reason=rng.choice(HANDOFF_REASONS),
            started_at=started,
            turns=turns,
            tags=rng.sample(["gift", "preorder", "shipping", "recommendation", "damaged", "prime"], k=rng.randint(0, 2)),
        ))
    return sessions
