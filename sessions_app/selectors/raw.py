"""Stored items decoded straight from DynamoDB's AttributeValue dicts, without building PynamoDB
models: the hot reads (the bot's context, the session page) use these.

A decoded item is an :class:`ItemView`: the same attribute names and the same values a model
instance read from the same dict would have (each value is decoded by the model's own attribute
declaration, defaults included), so the presenters and the templates read either one alike.
tests/selectors/test_raw.py compares both on random items.

Building a model costs ~70 µs per item (attribute containers, discriminator lookup, defaults,
descriptors); decoding a dict with a precomputed table of the model's attributes is a fraction
of that.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pynamodb.attributes import Attribute, NumberAttribute, UnicodeAttribute
from pynamodb.constants import NULL

from ..models import ChatItem, SessionMeta, Summary, Turn


class ItemView:
    """One stored item's attributes by their Python names (read-only by convention)."""

    # The model class the item was decoded as (underscored: ``Turn.model`` is an attribute).
    _model: type[ChatItem]

    def __repr__(self) -> str:
        return f"<{self._model.__name__} view {getattr(self, 'pk', None)} {getattr(self, 'sk', None)}>"

    def attributes(self) -> dict[str, Any]:
        """The decoded attribute values (compare with a model's ``attribute_values``)."""
        return {k: v for k, v in self.__dict__.items() if k != "_model" and v is not None}


def _number(value: dict) -> Any:
    text = value["N"]
    # A plain integer (DynamoDB normalises numbers: no leading zeros) is what json.loads gives
    # for it, without the JSON parser; anything else goes through NumberAttribute's json.loads.
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdigit() and (digits[0] != "0" or len(digits) == 1):
        return int(text)
    return json.loads(text)


def _reader(attr: Attribute) -> Callable[[dict], Any]:
    if type(attr) is UnicodeAttribute:  # noqa: E721 - exactly the base class: deserialize is identity
        return lambda value: value["S"]
    if type(attr) is NumberAttribute:  # noqa: E721 - NumberAttribute.deserialize is json.loads
        return _number
    return lambda value: attr.deserialize(attr.get_value(value))


class ItemDecoder:
    """Decodes items of one model class (see module docstring)."""

    def __init__(self, model: type[ChatItem]) -> None:
        self.model = model
        attributes = model.get_attributes()
        self._readers = {a.attr_name: (name, _reader(a)) for name, a in attributes.items()}
        # Defaults as PynamoDB applies them to an instance read from the table (_set_defaults with
        # _user_instantiated=False): the attribute's ``default``, called if callable.
        # An absent attribute reads as None on a model (its descriptor's default).
        self._static: dict[str, Any] = dict.fromkeys(attributes, None)
        self._static["_model"] = model
        self._dynamic: list[tuple[str, Callable[[], Any]]] = []
        for name, a in attributes.items():
            if callable(a.default):
                self._dynamic.append((name, a.default))
            elif a.default is not None:
                self._static[name] = a.default
        discriminator = model._get_discriminator_attribute()
        if discriminator is not None:  # what _set_discriminator leaves on an instance
            self._static[model._discriminator] = model

    def decode(self, item: dict[str, dict]) -> ItemView:
        values = dict(self._static)
        for name, default in self._dynamic:
            value = default()
            if value is not None:
                values[name] = value
        readers = self._readers
        for attr_name, value in item.items():
            reader = readers.get(attr_name)
            # PynamoDB skips empty and NULL values (the default, if any, stays).
            if reader is not None and value and NULL not in value:
                values[reader[0]] = reader[1](value)
        view = ItemView.__new__(ItemView)
        view.__dict__ = values
        return view


session_decoder = ItemDecoder(SessionMeta)
turn_decoder = ItemDecoder(Turn)
summary_decoder = ItemDecoder(Summary)
_BY_TYPE = {d.model._get_discriminator_attribute().get_discriminator(d.model): d
            for d in (session_decoder, turn_decoder, summary_decoder)}


def item_decode(item: dict[str, dict]) -> ItemView:
    """An item of any of the hot reads' types, decoded by its ``type`` (the discriminator)."""
    kind = item.get("type", {}).get("S")
    try:
        return _BY_TYPE[kind].decode(item)
    except KeyError:
        raise ValueError(f"no raw decoder for item type {kind!r}") from None
