"""The committed widget build: within the size budget, and built from the committed sources."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import brotli

ROOT = Path(__file__).resolve().parent.parent
WIDGET = ROOT / "widget"
STATIC = ROOT / "service" / "static" / "widget"
BUDGET_GZIP_BYTES = 6144


def source_hash() -> str:
    """Same algorithm as widget/build.mjs::sourceHash."""
    digest = hashlib.sha256()
    files = [(f"src/{p.name}", p) for p in sorted((WIDGET / "src").iterdir(), key=lambda p: p.name)]
    files.append(("build.mjs", WIDGET / "build.mjs"))
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def manifest() -> dict:
    return json.loads((STATIC / "manifest.json").read_text())


def test_built_widget_is_within_the_gzip_budget():
    built = (STATIC / manifest()["file"]).read_bytes()
    size = len(gzip.compress(built, compresslevel=9))
    print(f"widget: {len(built)} bytes, {size} bytes gzipped (budget {BUDGET_GZIP_BYTES})")
    assert size <= BUDGET_GZIP_BYTES


def test_committed_build_matches_the_sources():
    assert manifest()["source_sha256"] == source_hash(), (
        "widget/src changed without a rebuild: run `npm ci && npm run build` in widget/ and commit "
        "service/static/widget/")


def test_manifest_describes_the_one_built_file():
    data = manifest()
    built = (STATIC / data["file"]).read_bytes()
    assert re.fullmatch(r"instagift-claim-code\.[0-9a-f]{12}\.js", data["file"])
    assert hashlib.sha256(built).hexdigest() == data["sha256"]
    assert data["file"].split(".")[1] == data["sha256"][:12]
    assert len(built) == data["bytes"]
    # Old builds are removed by the build: the widget and its language files, each with its compressed twins.
    files = [data["file"], *(entry["file"] for entry in data["languages"].values())]
    assert sorted(p.name for p in STATIC.glob("*.js")) == sorted(files)
    for name in files:
        body = (STATIC / name).read_bytes()
        assert gzip.decompress((STATIC / f"{name}.gz").read_bytes()) == body
        assert brotli.decompress((STATIC / f"{name}.br").read_bytes()) == body


def test_spanish_strings_are_a_file_of_their_own_with_every_english_key():
    data = manifest()
    spanish = (STATIC / data["languages"]["es"]["file"]).read_text()
    english_keys = set(re.findall(r"^  (\w+):", (WIDGET / "src" / "strings.js").read_text(), re.M))
    spanish_keys = set(re.findall(r"^  (\w+):", (WIDGET / "src" / "strings.es.js").read_text(), re.M))
    assert len(english_keys) > 30
    assert spanish_keys == english_keys
    assert spanish.startswith("var ") and "export" in spanish
    assert hashlib.sha256(spanish.encode()).hexdigest() == data["languages"]["es"]["sha256"]
    # The widget knows the file's hashed name, so it loads exactly this build's strings.
    assert data["languages"]["es"]["file"] in (STATIC / data["file"]).read_text()


def test_built_widget_is_minified_and_labels_the_input_as_instagift_asks():
    built = (STATIC / manifest()["file"]).read_text()
    assert built.count("\n") <= 3
    assert "Instagift Claim Code" in built
    assert 'customElements.define("instagift-claim-code"' in built
