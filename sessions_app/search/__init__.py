"""Transcript search (issue 15): the text analysis both engines share (``text``), and — as they
land — the engines behind one interface and the change-feed indexer. See docs/architecture.md
§Search."""
