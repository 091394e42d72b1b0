"""The feature tables a project's docs/features.md carries: rendered from its features.yaml as loaded.

A small project of its own (one table, one entity, every kind of feature) so the test shows
what each declaration becomes; the markers' replacement is checked on a page with and without them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from noria.config import load_project
from noria.features.definitions import load_definitions
from noria.features.docs import features_markdown, replace_generated

ROOT = Path(__file__).resolve().parents[3]

CONFIG = """\
project: shop
data:
  source: {kind: directory, path: raw}
  tables:
    orders:
      file: orders.csv
      primary_key: [order_id]
      columns:
        order_id: {type: int}
        store: {type: str, description: "Store code."}
        amount: {type: float, description: "Order total | in EUR."}
        at: {type: timestamp}
        returned: {type: int, nullable: true}
    stock:
      file: stock.csv
      primary_key: [store, at]
      columns:
        store: {type: str}
        at: {type: timestamp}
        level: {type: float}
model:
  name: returns
  target: {column: returned, threshold: 0}
"""
FEATURES = """\
request:
  table: orders
  columns: [order_id, store, amount, at]
  timestamp: shop_features:order_time
entities:
  store: {description: "A shop."}
sources:
  stock_levels:
    function: shop_features:stock
    tables: {stock: [store, at, level]}
feature_views:
  stock_view:
    description: Stock at the store.
    source: stock_levels
    entities: [store]
    ttl: 2d
    features:
      level: {description: "Units in stock,
        counted at closing."}
request_views:
  basket:
    description: The order itself.
    passthrough: [amount]
    function: shop_features:hour
    inputs: [at]
    features:
      hour: {type: int, description: "Hour of the order (0-23)."}
derived:
  per_unit:
    description: Amount per unit in stock.
    function: shop_features:per_unit
    inputs: [amount, level]
services:
  main:
    features: [basket, stock_view, per_unit]
"""
CODE = """\
def order_time(columns):
    return columns["at"]


def stock(tables):
    return tables["stock"].rename(columns={"at": "event_timestamp"})


def hour(columns):
    return [columns["at"].hour]


def per_unit(columns):
    return columns["amount"] / columns["level"]
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    for name, text in (("noria.yaml", CONFIG), ("features.yaml", FEATURES), ("shop_features.py", CODE)):
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_tables_show_every_declaration(shop: Path) -> None:
    text = features_markdown(load_definitions(load_project(shop, environ={})))
    lines = text.splitlines()
    assert "| `store` | `store` | str | A shop. |" in lines
    assert "| `stock_view` | feature view | `stock_levels` | store | 2d | Stock at the store. |" in lines
    assert "| `basket` | request view | `shop_features:hour` |  |  | The order itself. |" in lines
    assert "| `per_unit` | derived | from amount, level |  |  | Amount per unit in stock. |" in lines
    # A passthrough column's type and description come from the table; a pipe is escaped.
    assert "| `amount` | `basket` | request column | float | Order total \\| in EUR. |" in lines
    assert "| `hour` | `basket` | request view | int | Hour of the order (0-23). |" in lines
    # A description written over two YAML lines stays one table row.
    assert "| `level` | `stock_view` | feature view | float | Units in stock, counted at closing. |" in lines
    assert "| `per_unit` | `per_unit` | derived | float | Amount per unit in stock. |" in lines
    feature_rows = [line for line in text.split("Features (")[1].splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in feature_rows] == ["`amount`", "`hour`", "`level`", "`per_unit`"]


def test_no_ttl_reads_forever(shop: Path) -> None:
    features = shop / "features.yaml"
    features.write_text(FEATURES.replace("    ttl: 2d\n", ""), encoding="utf-8")
    text = features_markdown(load_definitions(load_project(shop, environ={})))
    assert "| `stock_view` | feature view | `stock_levels` | store | forever | Stock at the store. |" in text


def test_replace_generated_keeps_the_rest_of_the_page() -> None:
    page = textwrap.dedent(
        """\
        # Features

        intro
        <!-- BEGIN GENERATED features-table: do not edit by hand, regenerate with old -->
        stale
        <!-- END GENERATED features-table -->
        after
        """
    )
    out = replace_generated(page, "features-table", "| a |\n", "`make docs`")
    assert out.splitlines() == [
        "# Features",
        "",
        "intro",
        "<!-- BEGIN GENERATED features-table: do not edit by hand, regenerate with `make docs` -->",
        "| a |",
        "<!-- END GENERATED features-table -->",
        "after",
    ]
    assert replace_generated(out, "features-table", "| a |\n", "`make docs`") == out


def test_a_page_without_markers_is_an_error_naming_them() -> None:
    with pytest.raises(ValueError, match="BEGIN GENERATED features-table") as info:
        replace_generated("# Features\n", "features-table", "x", "`make docs`")
    assert "END GENERATED features-table" in str(info.value)


def test_cli_prints_the_tables(shop: Path) -> None:
    from typer.testing import CliRunner

    from noria.cli import app

    out = CliRunner().invoke(app, ["--project", str(shop), "features", "list", "--markdown"])
    assert out.exit_code == 0, out.output
    assert out.output == features_markdown(load_definitions(load_project(shop, environ={})))


def test_script_checks_and_writes_a_page(shop: Path, tmp_path: Path) -> None:
    page = tmp_path / "features.md"
    page.write_text(
        "# Shop\n\n<!-- BEGIN GENERATED features-table: x -->\n<!-- END GENERATED features-table -->\n",
        encoding="utf-8",
    )
    script = [sys.executable, str(ROOT / "scripts" / "features_docs.py"), "--project", str(shop), "--doc", str(page)]
    stale = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    subprocess.run(script, check=True, capture_output=True)
    assert "| `hour` | `basket` | request view | int |" in page.read_text(encoding="utf-8")
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0


def test_reference_page_is_up_to_date() -> None:
    """docs/features.md holds the tables of examples/flights/features.yaml (what `make lint` checks)."""
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "features_docs.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
