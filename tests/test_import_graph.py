"""The import rules of docs/architecture.md, checked on the real import graph.

import-linter's contracts (pyproject.toml, [tool.importlinter]) state the layers: shared rooms never import a
feature, orders imports no feature, features never import reports or the composition, nothing in service/
imports the sandbox, and no two rooms at any depth import each other. A module-level check with grimp adds
what the room-level one cannot see: a package's __init__ and a module inside it importing each other.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def import_circles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Every direct import a -> b where b also leads back to a, as the circle a -> b -> … -> a."""
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                circles.append((importer, *back))
    return circles


def test_the_import_contracts_hold(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    # import-linter configures logging with dictConfig, which disables every logger that already exists (the
    # service's among them): they are enabled again afterwards, or later tests would hear none of their records.
    enabled = [logger for logger in logging.root.manager.loggerDict.values()
               if isinstance(logger, logging.Logger) and not logger.disabled]
    try:
        passed = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:
        for logger in enabled:
            logger.disabled = False
    assert passed, capsys.readouterr().out


def test_no_module_imports_another_that_imports_it_back():
    graph = grimp.build_graph("service", "sandbox", cache_dir=None)
    assert import_circles(graph) == []


def test_the_circle_check_sees_a_circle_through_other_modules():
    graph = grimp.ImportGraph()
    for importer, imported in [("service.config", "service.thank_you.settings"),
                               ("service.thank_you.settings", "service.thank_you.message"),
                               ("service.thank_you.message", "service.config"),
                               ("service.thank_you.rules", "service.config")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_circles(graph) == [
        ("service.config", "service.thank_you.settings", "service.thank_you.message", "service.config"),
        ("service.thank_you.message", "service.config", "service.thank_you.settings", "service.thank_you.message"),
        ("service.thank_you.settings", "service.thank_you.message", "service.config", "service.thank_you.settings"),
    ]
