"""The import contracts of pyproject.toml (``make lint`` runs them with ``lint-imports``) hold on
the source tree, and each one breaks on the kind of import it exists to refuse: a lower layer
importing a higher one (also behind a function-local import), a section model importing its own
package, a module importing another package's private module.

The contracts are read from pyproject.toml and checked with import-linter's own contract classes
on grimp's graph of ``noria`` (type-checking imports left out, as ``lint-imports`` does); a
violation is added to the graph, never to the code.
"""

from __future__ import annotations

import graphlib
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.configuration import configure
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.private_modules import PrivateModulesContract
from importlinter.domain.contract import Contract

configure()  # the settings lint-imports starts with (the forbidden contract times its checks)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS: dict[str, dict[str, Any]] = {c["id"]: c for c in SETTINGS["contracts"]}
TYPES: dict[str, type[Contract]] = {
    "acyclic_siblings": AcyclicSiblingsContract,
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "private_modules": PrivateModulesContract,
}


def graph(*extra: tuple[str, str]) -> grimp.ImportGraph:
    """grimp's graph of the source tree, plus the given (importer, imported) imports."""
    built = grimp.build_graph(SETTINGS["root_package"], exclude_type_checking_imports=True, cache_dir=None)
    for importer, imported in extra:
        assert importer in built.modules and imported in built.modules, (importer, imported)
        built.add_import(importer=importer, imported=imported, line_number=1, line_contents="import x")
    return built


def kept(contract_id: str, built: grimp.ImportGraph) -> bool:
    # import-linter's TOML reader hands a contract its options as strings (or lists of strings).
    options = {
        k: (str(v).lower() if isinstance(v, bool) else v)
        for k, v in CONTRACTS[contract_id].items()
        if k not in ("id", "name", "type")
    }
    contract = TYPES[CONTRACTS[contract_id]["type"]](
        name=contract_id, session_options={"root_packages": [SETTINGS["root_package"]]}, contract_options=options
    )
    return contract.check(built, verbose=False).kept


def test_the_settings_leave_type_checking_imports_out_and_name_each_contract_tested_here() -> None:
    assert SETTINGS["exclude_type_checking_imports"] is True
    assert set(CONTRACTS) == {"layers", "section-models", "private-modules", "acyclic"}


@pytest.mark.parametrize("contract_id", ["layers", "section-models", "private-modules", "acyclic"])
def test_the_source_tree_keeps_every_contract(contract_id: str) -> None:
    assert kept(contract_id, graph())


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("noria.data.snapshots", "noria.serving.app"),  # a lower layer importing a higher one
        ("noria.errors", "noria.cli"),  # a cycle through the bottom layer (e.g. a function-local import)
        ("noria.monitoring.window", "noria.serving.predlog_reader"),  # monitoring sits below serving
        ("noria.serving.app", "noria.training.run"),  # serving and training are independent
        ("noria.windows", "noria.features.definitions"),  # the cycle issue 19 removed
        ("noria.windows", "noria.data.snapshots"),  # a helper the section models may use stays light
    ],
)
def test_an_import_against_the_layers_breaks_the_layers_contract(importer: str, imported: str) -> None:
    assert not kept("layers", graph((importer, imported)))


def test_a_new_top_level_module_must_be_placed_in_a_layer() -> None:
    built = graph()
    built.add_module("noria.somewhere_new")
    assert not kept("layers", built)


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("noria.features.config", "noria.features.definitions"),  # its own package
        ("noria.serving.config", "noria.registry.config"),  # another section model
        ("noria.training.config", "noria.config"),  # the composed config
    ],
)
def test_a_section_model_importing_more_than_the_light_helpers_breaks_its_contract(
    importer: str, imported: str
) -> None:
    assert not kept("section-models", graph((importer, imported)))


def test_a_section_model_may_import_the_light_helpers() -> None:
    assert kept("section-models", graph(("noria.features.config", "noria.names")))


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("noria.console.app", "noria.monitoring._report_plots"),
        ("noria.serving.app", "noria.registry._names"),
        ("noria.demo", "noria.cli._state"),
    ],
)
def test_importing_another_packages_private_module_breaks_the_private_modules_contract(
    importer: str, imported: str
) -> None:
    assert not kept("private-modules", graph((importer, imported)))


def test_a_private_module_may_be_imported_inside_its_package() -> None:
    assert kept("private-modules", graph(("noria.monitoring.report", "noria.monitoring._report_plots")))


def test_the_architecture_page_lists_the_layers_of_the_contract() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("\n## Layers\n", 1)[1]
    block = section.split("```\n", 2)[1]
    assert block.splitlines() == CONTRACTS["layers"]["layers"], (
        "docs/architecture.md's layers differ from pyproject.toml's"
    )


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("noria.data.scan", "noria.data.ingest"),  # the cycles issue 19 removed, one per package
        ("noria.features.checks", "noria.features.definitions"),
        ("noria.monitoring.report_page", "noria.monitoring.report"),
        ("noria.serving.routes", "noria.serving.app"),
        ("noria.serving.openapi_schema", "noria.serving.app"),
        ("noria.console.actions", "noria.console.app"),
        ("noria.console.pages", "noria.console.pages_more"),
        ("noria.training.study", "noria.training.tuning"),
    ],
)
def test_an_import_that_closes_a_cycle_inside_a_package_breaks_the_acyclic_contract(
    importer: str, imported: str
) -> None:
    assert not kept("acyclic", graph((importer, imported)))


def test_lint_imports_passes_as_make_lint_runs_it() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def _cycles(built: grimp.ImportGraph) -> list[list[str]]:
    """An import cycle of ``built`` as ``[[module, ..., module]]`` (the standard library's
    topological sort names one when it finds it), or ``[]`` when the graph has none."""
    sorter = graphlib.TopologicalSorter({m: built.find_modules_directly_imported_by(m) for m in built.modules})
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        return [list(cycle.args[1])]
    return []


def test_no_module_of_noria_is_part_of_an_import_cycle() -> None:
    """The contracts forbid cycles between siblings and across layers; this checks the whole module
    graph at once (function-local imports included), so a cycle through any path is caught."""
    assert _cycles(graph()) == []
    assert _cycles(graph(("noria.errors", "noria.config"))) != []  # the check can fail
