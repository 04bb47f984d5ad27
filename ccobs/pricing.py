"""Model price table: turns token counts into US dollars.

Cost is derived, not reported: Anthropic and OpenAI return token counts only,
so a proxy that wants a cost metric has to price those counts itself. Prices
are USD per million tokens, as both vendors publish them, split into four
rates because prompt caching makes cache writes dearer and cache reads far
cheaper than plain input.

Token conventions follow Anthropic's usage block: ``input_tokens`` are the
*uncached* input tokens, ``cache_read_tokens`` and ``cache_write_tokens`` come
on top. For OpenAI, pass ``prompt_tokens - cached_tokens`` as input and
``cached_tokens`` as cache reads.

Model ids arrive with dated snapshot suffixes (``claude-sonnet-4-5-20250929``,
``gpt-4o-mini-2024-07-18``), so lookup falls back from an exact match to the
longest known name that prefixes the id at a ``-``, ``@`` or ``:`` boundary.
The boundary keeps ``gpt-4.1`` from pricing as some ``gpt-4`` entry and the
longest match keeps ``gpt-4o-mini`` from pricing as ``gpt-4o``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

__all__ = [
    "DEFAULT_PRICES",
    "PRICE_FIELDS",
    "Cost",
    "CostParts",
    "ModelPrice",
    "PriceTable",
]

PRICE_FIELDS: tuple[str, ...] = ("input", "output", "cache_write", "cache_read")
"""The per-model rates, USD per million tokens, in the order the YAML file names them."""

_TOKENS_PER_UNIT = 1_000_000
_SNAPSHOT_SEPARATORS = ("-", "@", ":")
_LOOKUP_CACHE_LIMIT = 1024


def _check_price(where: str, field: str, value: object) -> float:
    """Validate one rate; the message names model and field so a config typo is findable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} field {field!r}: price must be a number, got {value!r}")
    price = float(value)
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"{where} field {field!r}: price must be finite and >= 0, got {value!r}")
    return price


@dataclass(frozen=True)
class ModelPrice:
    """Rates for one model, USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def __post_init__(self) -> None:
        for field in PRICE_FIELDS:
            _check_price("ModelPrice", field, getattr(self, field))


@dataclass(frozen=True)
class Cost:
    """Cost of one request in USD, split the way ``ccproxy_cost_usd_total`` labels it."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    @property
    def cache(self) -> float:
        """Cache reads plus cache writes: one ``cost_type`` in the metrics."""
        return self.cache_read + self.cache_write

    @property
    def total(self) -> float:
        """Everything the request cost."""
        return self.input + self.output + self.cache_read + self.cache_write


CostParts = tuple[float, float, float, float]
"""A :class:`Cost`'s four fields as a plain tuple: input, output, cache read, cache write."""


def _claude(input: float, output: float, cache_write: float, cache_read: float) -> ModelPrice:
    return ModelPrice(input=input, output=output, cache_write=cache_write, cache_read=cache_read)


def _openai(input: float, output: float, cached_input: float) -> ModelPrice:
    """OpenAI bills no cache-write premium: writing the cache costs plain input."""
    return ModelPrice(input=input, output=output, cache_write=input, cache_read=cached_input)


# Anthropic list prices (platform.claude.com/docs/en/about-claude/pricing): input, output,
# 5-minute cache write (1.25x input), cache hit (0.1x input unless Anthropic says otherwise).
# OpenAI list prices (openai.com/api/pricing): input, output, cached input.
# Models with banded or tiered prices (e.g. Haiku 5.5, long-context surcharges) are left out
# rather than priced wrongly; add them through a YAML override.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    # Anthropic
    "claude-fable-5-1": _claude(10.00, 50.00, 12.50, 0.25),
    "claude-fable-5": _claude(10.00, 50.00, 12.50, 1.00),
    "claude-opus-5-5": _claude(4.00, 20.00, 5.00, 0.20),
    "claude-opus-5": _claude(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-8": _claude(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-7": _claude(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-6": _claude(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-5": _claude(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-1": _claude(15.00, 75.00, 18.75, 1.50),
    "claude-opus-4": _claude(15.00, 75.00, 18.75, 1.50),
    "claude-sonnet-5-5": _claude(2.00, 10.00, 2.50, 0.10),
    "claude-sonnet-5": _claude(2.00, 10.00, 2.50, 0.20),
    "claude-sonnet-4-6": _claude(3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4-5": _claude(3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4": _claude(3.00, 15.00, 3.75, 0.30),
    "claude-3-7-sonnet": _claude(3.00, 15.00, 3.75, 0.30),
    "claude-3-5-sonnet": _claude(3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": _claude(1.00, 5.00, 1.25, 0.10),
    "claude-3-5-haiku": _claude(0.80, 4.00, 1.00, 0.08),
    "claude-3-opus": _claude(15.00, 75.00, 18.75, 1.50),
    "claude-3-haiku": _claude(0.25, 1.25, 0.30, 0.03),
    # OpenAI
    "gpt-5.1": _openai(1.25, 10.00, 0.125),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-5-pro": _openai(15.00, 120.00, 15.00),
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "o4-mini": _openai(1.10, 4.40, 0.275),
    "o3": _openai(2.00, 8.00, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o3-pro": _openai(20.00, 80.00, 20.00),
    "o1": _openai(15.00, 60.00, 7.50),
    "o1-pro": _openai(150.00, 600.00, 150.00),
}


def _normalise(model: str) -> str:
    return model.strip().lower()


class PriceTable:
    """An immutable model -> price mapping with snapshot-tolerant lookup.

    Lookups are memoised (bounded) because they sit on the request hot path and
    the same handful of model ids repeat for the life of a process.
    """

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices: dict[str, ModelPrice] = {_normalise(k): v for k, v in prices.items()}
        # Longest names first, so the first boundary match is the longest one.
        self._by_length: tuple[str, ...] = tuple(
            sorted(self._prices, key=lambda name: (-len(name), name))
        )
        self._resolved: dict[str, ModelPrice | None] = {}

    @classmethod
    def default(cls) -> PriceTable:
        """The built-in list prices."""
        return cls(DEFAULT_PRICES)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], base: PriceTable | None = None) -> PriceTable:
        """Load ``models: {name: {input, output, cache_write, cache_read}}`` over ``base``.

        ``base`` defaults to the built-in table, so a file only lists what it
        changes. See :meth:`with_overrides` for the merge rules.
        """
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{os.fspath(path)}: not valid YAML: {exc}") from exc
        return (base if base is not None else cls.default()).with_overrides(
            data, source=os.fspath(path)
        )

    def with_overrides(self, data: object, *, source: str = "price overrides") -> PriceTable:
        """A new table with ``data`` (parsed YAML) merged over this one.

        A known model may list only the fields it changes. A new model must
        give ``input`` and ``output``; its cache rates default to the input
        rate, the conservative choice when the discount is unknown. An empty
        document changes nothing.
        """
        if data is None:
            return self
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: top level must be a mapping with a 'models' key")
        unknown = sorted(str(key) for key in data if key != "models")
        if unknown:
            raise ValueError(f"{source}: unknown top-level key(s) {unknown}; expected 'models'")
        models = data.get("models")
        if models is None:
            return self
        if not isinstance(models, Mapping):
            raise ValueError(f"{source}: 'models' must map model names to prices")
        merged = dict(self._prices)
        for name, entry in models.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{source}: model name must be a non-empty string, got {name!r}")
            merged[_normalise(name)] = self._parse_entry(name, entry, source)
        return PriceTable(merged)

    def _parse_entry(self, name: str, entry: object, source: str) -> ModelPrice:
        if not isinstance(entry, Mapping):
            raise ValueError(f"{source}: model {name!r}: expected a mapping of prices")
        for field in entry:
            if field not in PRICE_FIELDS:
                raise ValueError(
                    f"{source}: model {name!r} field {field!r}: unknown field; "
                    f"expected one of {list(PRICE_FIELDS)}"
                )
        values = {field: _check_price(f"model {name!r}", field, entry[field]) for field in entry}
        existing = self._prices.get(_normalise(name))
        if existing is None:
            for field in ("input", "output"):
                if field not in values:
                    raise ValueError(
                        f"{source}: model {name!r} field {field!r}: required for a new model"
                    )
            values.setdefault("cache_write", values["input"])
            values.setdefault("cache_read", values["input"])
            return ModelPrice(**values)
        return ModelPrice(**{f: values.get(f, getattr(existing, f)) for f in PRICE_FIELDS})

    @property
    def models(self) -> tuple[str, ...]:
        """Known model names, sorted."""
        return tuple(sorted(self._prices))

    def price_for(self, model: str | None) -> ModelPrice | None:
        """Rates for ``model``: exact name first, then the longest known prefix; else None."""
        if not model:
            return None
        try:
            return self._resolved[model]
        except KeyError:
            pass
        price = self._lookup(_normalise(model))
        if len(self._resolved) < _LOOKUP_CACHE_LIMIT:
            self._resolved[model] = price
        return price

    def _lookup(self, model: str) -> ModelPrice | None:
        exact = self._prices.get(model)
        if exact is not None:
            return exact
        for name in self._by_length:
            if (
                len(model) > len(name)
                and model.startswith(name)
                and model[len(name)] in _SNAPSHOT_SEPARATORS
            ):
                return self._prices[name]
        return None

    def cost(
        self,
        model: str | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> Cost | None:
        """USD cost of one request, or None when the model has no price.

        None rather than zero so callers can tell "free" from "unknown" and
        skip the cost metric instead of under-reporting spend.
        """
        parts = self.cost_parts(
            model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
        )
        return None if parts is None else Cost(*parts)

    def cost_parts(
        self,
        model: str | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> CostParts | None:
        """:meth:`cost`'s four amounts as a plain tuple, the same floats, or None.

        For the proxy's hot path (``RequestRecord.set_cost_parts``): a frozen
        :class:`Cost` costs more to build than the arithmetic, and most requests'
        cost is only ever recorded, not read as an object.
        """
        if min(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) < 0:
            raise ValueError("token counts must be >= 0")
        try:
            price = self._resolved[model]  # type: ignore[index]
        except (KeyError, TypeError):
            price = self.price_for(model)
        if price is None:
            return None
        per = _TOKENS_PER_UNIT
        return (
            input_tokens * price.input / per,
            output_tokens * price.output / per,
            cache_read_tokens * price.cache_read / per,
            cache_write_tokens * price.cache_write / per,
        )

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price_for(model) is not None

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"
