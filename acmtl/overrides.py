"""``--set SECTION.FIELD=VALUE``: any training or model setting from the command line.

``python -m acmtl train ... --set train.patience=10 --set model.cnn_kernels=[3,9] --set model.use_pinyin=false``

* ``train.<field>`` is a field of :class:`acmtl.core.train.TrainConfig`;
* ``model.<field>`` is a field of :class:`acmtl.core.model.ModelConfig`, except those the code fills in
  (:data:`MODEL_FILLED_IN`: ``tags``, ``vocab_size``, ``encoder_config``).

A value is read without ``eval``: JSON's ``true``/``false``/``null`` become Python's
``True``/``False``/``None``, then :func:`ast.literal_eval` reads numbers, strings, lists and tuples;
text that is no Python literal (``paper``, ``bert-base-chinese``, ``/some/dir``) stays a string.
The value is then checked against the field's annotation (bool, int, float, str, ``Literal[...]``,
``tuple[T, ...]``, ``list[T]``, ``X | None``): a bool is never an int, an int is a fine float (and becomes
one), a list is a fine tuple (and becomes one). Every mistake is a one-line :class:`ValueError`.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import tokenize
import types
from collections.abc import Iterable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

SECTIONS = ("train", "model")
MODEL_FILLED_IN = frozenset({"tags", "vocab_size", "encoder_config"})
_JSON_WORDS = {"true": "True", "false": "False", "null": "None"}
_PLURALS = {bool: "bools", int: "ints", float: "numbers", str: "strings"}


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Parsed ``--set`` options: field name -> checked value, per section."""

    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_value(text: str) -> Any:
    """``"[3, 9]"`` -> ``[3, 9]``, ``"false"`` -> ``False``, ``"1e-4"`` -> ``0.0001``, ``"paper"`` -> ``"paper"``."""
    try:
        tokens = [(tok.type, _JSON_WORDS.get(tok.string, tok.string) if tok.type == tokenize.NAME else tok.string)
                  for tok in tokenize.generate_tokens(io.StringIO(text.strip()).readline)]
        return ast.literal_eval(tokenize.untokenize(tokens).strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, tokenize.TokenError):
        return text  # a plain word, a path, a hub name: the raw text


def describe(hint: Any) -> str:
    """A type annotation in words, for error messages: ``tuple[int, ...]`` -> ``a list of ints``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return "a bool (true or false)"
    if hint is int:
        return "an int"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} items ({', '.join(describe(arg) for arg in args)})"
        if not args:
            return "a list"
        plural = _PLURALS.get(args[0], f"items that are each {describe(args[0])}")
        return f"a list of {plural}, e.g. [3,5,7]" if args[0] is int else f"a list of {plural}"
    if origin is dict or hint is dict:
        return "a dict"
    return getattr(hint, "__name__", str(hint))


class _Mismatch(Exception):
    """A value that does not fit an annotation (turned into a ValueError with the key by :func:`check`)."""


def _coerce(value: Any, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif origin is Literal:
        for choice in args:  # type and value: True is not 1, 1 is not "1"
            if type(value) is type(choice) and value == choice:
                return value
    elif origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                pass
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                if len(value) == len(args):
                    return tuple(_coerce(item, arg) for item, arg in zip(value, args))
            else:
                items = [_coerce(item, args[0]) if args else item for item in value]
                return tuple(items) if origin is tuple else items
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
    else:
        raise TypeError(f"--set cannot check values of type {hint!r}")
    raise _Mismatch


def check(key: str, value: Any, hint: Any, raw: str | None = None) -> Any:
    """``value`` converted to fit ``hint`` (int -> float, list -> tuple), or a one-line ValueError.

    ``raw`` is the text the value was parsed from: a string field takes it as it was typed, so
    ``model.encoder=123`` means the folder "123", not the number."""
    try:
        return _coerce(value, hint)
    except _Mismatch:
        if raw is not None and _accepts_str(hint):
            return raw.strip()
        raise ValueError(f"{key}: expected {describe(hint)}, got {raw if raw is not None else value!r}"
                         .replace("\n", " ")) from None


def _accepts_str(hint: Any) -> bool:
    return hint is str or (get_origin(hint) in (Union, types.UnionType) and str in get_args(hint))


def settable_fields(cls: type, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The dataclass' fields that ``--set`` may change: name -> evaluated annotation."""
    hints = get_type_hints(cls)  # resolves the string annotations of `from __future__ import annotations`
    excluded = set(exclude)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in excluded}


def parse_overrides(items: Iterable[str], *, train_cls: type | None = None,
                    model_cls: type | None = None) -> Overrides:
    """``["train.patience=10", "model.use_pinyin=false"]`` -> ``Overrides(train={"patience": 10}, ...)``.

    A key given twice keeps its last value. ``train_cls`` / ``model_cls`` default to
    :class:`acmtl.core.train.TrainConfig` / :class:`acmtl.core.model.ModelConfig` (imported here: they pull in torch).
    """
    items = list(items)
    if not items:
        return Overrides()
    if train_cls is None:
        from acmtl.core.train import TrainConfig as train_cls
    if model_cls is None:
        from acmtl.core.model import ModelConfig as model_cls
    known = {"train": settable_fields(train_cls), "model": settable_fields(model_cls, MODEL_FILLED_IN)}
    result = Overrides()
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects SECTION.FIELD=VALUE, got {item!r}")
        section, dot, name = key.partition(".")
        if section not in known or not dot:
            raise ValueError(f"--set {key!r}: the key must start with {' or '.join(s + '.' for s in SECTIONS)} "
                             f"(e.g. train.patience=10)")
        fields = known[section]
        if name not in fields:
            hint = " (set by the code)" if section == "model" and name in MODEL_FILLED_IN else ""
            raise ValueError(f"--set: unknown key {key!r}{hint}; known {section} keys: {', '.join(sorted(fields))}")
        getattr(result, section)[name] = check(key, parse_value(raw), fields[name], raw)
    return result


__all__ = ["MODEL_FILLED_IN", "Overrides", "check", "describe", "parse_overrides", "parse_value", "settable_fields"]
