"""Cost of a turn from its token counts: US dollars per million tokens, by model family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cache_write_usd_per_mtok: float  # 5-minute cache writes: 1.25 x input
    cache_read_usd_per_mtok: float  # 0.1 x input


def _price(input_usd: float, output_usd: float) -> Price:
    return Price(input_usd, output_usd, input_usd * 1.25, input_usd * 0.1)


# Longest prefix wins; public list prices of the Anthropic API.
PRICES: dict[str, Price] = {
    "claude-opus-4-5": _price(5.0, 25.0),
    "claude-opus-4-6": _price(5.0, 25.0),
    "claude-opus-4": _price(15.0, 75.0),
    "claude-sonnet-4": _price(3.0, 15.0),
    "claude-3-7-sonnet": _price(3.0, 15.0),
    "claude-haiku-4": _price(1.0, 5.0),
    "claude-3-5-haiku": _price(0.8, 4.0),
    "claude-3-haiku": _price(0.25, 1.25),
}
DEFAULT_PRICE = _price(3.0, 15.0)  # an unknown model is costed as Sonnet, never as free


def price_for(model: str) -> Price:
    matches = [key for key in PRICES if model.startswith(key)]
    return PRICES[max(matches, key=len)] if matches else DEFAULT_PRICE


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
) -> float:
    price = price_for(model)
    total = (
        input_tokens * price.input_usd_per_mtok
        + output_tokens * price.output_usd_per_mtok
        + cache_read_tokens * price.cache_read_usd_per_mtok
        + cache_write_tokens * price.cache_write_usd_per_mtok
    )
    return round(total / 1_000_000, 6)
