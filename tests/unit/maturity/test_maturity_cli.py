"""``noria maturity`` through the CLI, the assessment's arithmetic, and the HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from noria.cli import app
from noria.config import load_project
from noria.maturity import Assessment, Evidence, Finding, Result, Statement, Status, assess, render_html
from noria.maturity._registry import Check, check_of

runner = CliRunner()


def test_json_for_scripts(bare: Path) -> None:
    result = runner.invoke(app, ["--project", str(bare), "maturity", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    statements = data["statements"]
    assert [s["number"] for s in statements] == list(range(1, 61))
    assert data["of"] == 60 and sum(data["counts"].values()) == 60
    assert data["score"] == sum(s["points"] for s in statements)
    assert data["score"] == data["counts"]["MET"] + 0.5 * data["counts"]["PARTIAL"]
    assert [s["section"] for s in data["sections"]] == list(range(1, 8))
    assert sum(s["of"] for s in data["sections"]) == 60
    assert data["mature"] is False
    assert all(s["todo"] for s in statements if s["status"] != "MET")
    assert {e["kind"] for s in statements for e in s["evidence"]} <= {"file", "config", "record", "git", "workflow"}


def test_min_gates_ci(bare: Path) -> None:
    score = assess(load_project(bare, environ={})).score
    below = runner.invoke(app, ["--project", str(bare), "maturity", "--min", str(score + 1)])
    assert below.exit_code == 1
    assert f"maturity score {score:g} of 60 is below --min {score + 1:g}" in below.output
    at = runner.invoke(app, ["--project", str(bare), "maturity", "--min", str(score)])
    assert at.exit_code == 0, at.output
    assert "score" in at.output and "per section" in at.output
    bad = runner.invoke(app, ["--project", str(bare), "maturity", "--min", "61"])
    assert bad.exit_code == 2


def test_html_page(mature: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "maturity.html"
    result = runner.invoke(app, ["--project", str(mature), "maturity", "--json", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["score"] == 60  # the path goes to stderr with --json
    page = out.read_text(encoding="utf-8")
    assert page.count('class="statement"') == 60 and len(re.findall(r'<a href="#s\d+"', page)) == 60
    assert 'data-statements="60"' in page and "mature (sections 1-4 all MET)" in page
    link = re.search(r'href="([^"#]+docs/goals\.md)"', page)
    assert link and (out.parent / link[1]).resolve() == (mature / "docs" / "goals.md").resolve()
    assert out.stat().st_mode & 0o044 == 0o044  # readable by others


def test_the_mature_project_is_mature(mature: Path) -> None:
    a = assess(load_project(mature, environ={}))
    assert a.score == 60 and a.mature and a.counts["MET"] == 60


def test_values_are_escaped() -> None:
    statement = Statement(1, "Goals <are> written", person=True)
    finding = Finding(Status.PARTIAL, (Evidence("file", "docs/<x>.md#<b>", "a <script>"),), "fix <this>")
    page = render_html(Assessment("p<1>", "/nowhere", "/nowhere", "now", (Result(statement, finding),)))
    assert "<script>" not in page.split("<script>(function")[0]
    assert "docs/&lt;x&gt;.md#&lt;b&gt;" in page and "fix &lt;this&gt;" in page and "p&lt;1&gt;" in page


def test_a_broken_check_does_not_hide_the_others(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from noria.maturity import _registry

    def broken(_: object) -> Finding:
        raise RuntimeError("boom")

    monkeypatch.setitem(_registry._CHECKS, 5, Check(check_of(5).statement, broken))
    a = assess(load_project(bare, environ={}))
    (five,) = [r for r in a.results if r.statement.number == 5]
    assert five.status is Status.NOT_MET and "RuntimeError: boom" in str(five.finding.evidence)
    assert len(a.results) == 60
    with pytest.raises(RuntimeError):
        assess(load_project(bare, environ={}), strict=True)


def test_outside_a_project_it_says_where_to_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--project", str(tmp_path), "maturity"])
    assert result.exit_code == 3 and "no noria.yaml" in result.output


def test_a_finding_that_is_not_met_says_how_to_complete_it() -> None:
    with pytest.raises(ValueError, match="todo"):
        Finding(Status.PARTIAL, ())
