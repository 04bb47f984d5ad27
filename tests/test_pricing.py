"""The price table prices tokens the way the vendors bill them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccobs.pricing import DEFAULT_PRICES, ModelPrice, PriceTable


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.default()


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cost_multiplies_each_token_type_by_its_rate_per_million(table: PriceTable) -> None:
    cost = table.cost(
        "claude-sonnet-4-6",
        input_tokens=1_000_000,
        output_tokens=2_000_000,
        cache_read_tokens=10_000_000,
        cache_write_tokens=4_000_000,
    )

    assert cost is not None
    assert (cost.input, cost.output, cost.cache_read, cost.cache_write) == pytest.approx(
        (3.00, 30.00, 3.00, 15.00)
    )


def test_cost_cache_is_reads_plus_writes_and_total_is_everything(table: PriceTable) -> None:
    cost = table.cost("claude-haiku-4-5", 1000, 500, 20_000, 4000)

    assert cost is not None
    assert cost.cache == pytest.approx(cost.cache_read + cost.cache_write)
    assert cost.total == pytest.approx(0.001 + 0.0025 + 0.002 + 0.005)


def test_openai_cached_tokens_are_priced_at_the_cached_input_rate(table: PriceTable) -> None:
    cost = table.cost("gpt-4o", input_tokens=0, cache_read_tokens=1_000_000)

    assert cost is not None
    assert cost.cache_read == pytest.approx(1.25)


def test_dated_snapshot_is_priced_as_its_base_model(table: PriceTable) -> None:
    assert table.price_for("claude-sonnet-4-5-20250929") == table.price_for("claude-sonnet-4-5")
    assert table.price_for("claude-3-5-haiku-20241022") == table.price_for("claude-3-5-haiku")


def test_longest_known_prefix_wins(table: PriceTable) -> None:
    assert table.price_for("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price_for("o3-mini-2025-01-31") == DEFAULT_PRICES["o3-mini"]


def test_exact_match_beats_a_shorter_prefix(table: PriceTable) -> None:
    # claude-opus-4-5 costs a third of claude-opus-4, whose name prefixes it.
    assert table.price_for("claude-opus-4-5") == DEFAULT_PRICES["claude-opus-4-5"]
    assert table.price_for("claude-opus-4-20250514") == DEFAULT_PRICES["claude-opus-4"]


def test_prefix_only_matches_at_a_name_boundary(table: PriceTable) -> None:
    assert table.price_for("gpt-5.9") is None
    assert table.price_for("o3x") is None


def test_vertex_style_version_suffix_matches(table: PriceTable) -> None:
    assert table.price_for("claude-sonnet-4-5@20250929") == DEFAULT_PRICES["claude-sonnet-4-5"]


def test_lookup_ignores_case_and_surrounding_space(table: PriceTable) -> None:
    assert table.price_for("  Claude-Haiku-4-5 ") == DEFAULT_PRICES["claude-haiku-4-5"]


def test_unknown_model_has_no_price_and_no_cost(table: PriceTable) -> None:
    assert table.price_for("llama-3-70b") is None
    assert table.cost("llama-3-70b", 100, 100) is None


def test_missing_model_has_no_price(table: PriceTable) -> None:
    assert table.price_for(None) is None
    assert table.price_for("") is None


@pytest.mark.parametrize(
    "model",
    [
        "claude-opus-4-1",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-3-7-sonnet",
    ],
)
def test_claude_cache_writes_cost_125_percent_and_reads_10_percent_of_input(model: str) -> None:
    price = DEFAULT_PRICES[model]

    assert price.cache_write == pytest.approx(price.input * 1.25)
    assert price.cache_read == pytest.approx(price.input * 0.1)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini"])
def test_openai_cache_writes_cost_plain_input(model: str) -> None:
    price = DEFAULT_PRICES[model]

    assert price.cache_write == price.input
    assert price.cache_read < price.input


def test_negative_token_counts_are_rejected(table: PriceTable) -> None:
    with pytest.raises(ValueError, match="token counts"):
        table.cost("gpt-4o", input_tokens=-1)


def test_model_price_rejects_a_negative_rate() -> None:
    with pytest.raises(ValueError, match="'output'"):
        ModelPrice(input=1.0, output=-1.0, cache_write=1.0, cache_read=0.1)


def test_yaml_overrides_only_the_fields_it_lists(tmp_path: Path, table: PriceTable) -> None:
    path = write_yaml(tmp_path, "models:\n  claude-sonnet-4-6:\n    output: 20\n")

    price = PriceTable.from_yaml(path).price_for("claude-sonnet-4-6")

    assert price == ModelPrice(input=3.0, output=20.0, cache_write=3.75, cache_read=0.30)


def test_yaml_adds_a_model_whose_cache_rates_default_to_input(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models:\n  my-local-model:\n    input: 0.5\n    output: 1.5\n")

    table = PriceTable.from_yaml(path)

    assert table.price_for("my-local-model-v2") == ModelPrice(0.5, 1.5, 0.5, 0.5)
    assert table.price_for("gpt-4o") == DEFAULT_PRICES["gpt-4o"]


def test_yaml_overrides_apply_over_the_given_base(tmp_path: Path) -> None:
    base = PriceTable({"only-model": ModelPrice(1, 2, 3, 4)})
    path = write_yaml(tmp_path, "models:\n  only-model:\n    input: 9\n")

    table = PriceTable.from_yaml(path, base=base)

    assert table.models == ("only-model",)
    assert table.price_for("only-model") == ModelPrice(9, 2, 3, 4)


def test_empty_yaml_changes_nothing(tmp_path: Path) -> None:
    table = PriceTable.from_yaml(write_yaml(tmp_path, ""))

    assert table.models == PriceTable.default().models


def test_yaml_new_model_without_output_price_names_model_and_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models:\n  new-model:\n    input: 1\n")

    with pytest.raises(ValueError, match=r"model 'new-model' field 'output'"):
        PriceTable.from_yaml(path)


def test_yaml_unknown_field_names_model_and_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models:\n  gpt-4o:\n    inptu: 1\n")

    with pytest.raises(ValueError, match=r"model 'gpt-4o' field 'inptu'"):
        PriceTable.from_yaml(path)


def test_yaml_negative_price_names_model_and_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models:\n  gpt-4o:\n    cache_read: -0.1\n")

    with pytest.raises(ValueError, match=r"model 'gpt-4o' field 'cache_read'"):
        PriceTable.from_yaml(path)


@pytest.mark.parametrize("value", ["'cheap'", "true", ".nan", ".inf"])
def test_yaml_price_must_be_a_finite_number(tmp_path: Path, value: str) -> None:
    path = write_yaml(tmp_path, f"models:\n  gpt-4o:\n    input: {value}\n")

    with pytest.raises(ValueError, match=r"model 'gpt-4o' field 'input'"):
        PriceTable.from_yaml(path)


def test_malformed_yaml_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models: {gpt-4o: [unclosed\n")

    with pytest.raises(ValueError, match=r"prices\.yaml: not valid YAML"):
        PriceTable.from_yaml(path)


def test_yaml_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "model:\n  gpt-4o:\n    input: 1\n")

    with pytest.raises(ValueError, match="unknown top-level key"):
        PriceTable.from_yaml(path)


def test_yaml_models_must_be_a_mapping(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "models:\n  - gpt-4o\n")

    with pytest.raises(ValueError, match="'models' must map"):
        PriceTable.from_yaml(path)
