"""Serves the built storefront widget: a stable URL for script tags and immutable versioned files.

`/widget/v1/instagift-claim-code.js` always serves the current build (short cache + ETag, so a release reaches
every storefront within minutes); `/widget/v1/instagift-claim-code.<hash>.js` serves that exact build forever
(`immutable`), for shops that pin a version with Subresource Integrity (the manifest gives the `integrity`).
Other languages' strings are files of their own (`instagift-claim-code.<language>.<hash>.js`, immutable too), which
the widget loads from next to itself only when its language needs them. Every file is sent gzip- or
brotli-compressed when the browser asks (`Accept-Encoding`), from the twins widget/build.mjs precompressed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Response, abort, request
from marshmallow import INCLUDE, Schema, fields

from service.api.openapi import Blueprint

bp = Blueprint("widget_assets", __name__,
               description="The storefront widget's script, for <script> tags on any origin (no credentials)")

SCRIPT = {"type": "string", "description": "JavaScript (an ES module defining <instagift-claim-code>)"}
NOT_MODIFIED = "Not modified: the ETag given in If-None-Match is still current"


class WidgetManifestSchema(Schema):
    """The build manifest written by widget/build.mjs, with `url`; a later build may add members."""

    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    file = fields.String(required=True, metadata={"description": "The current build's file name"})
    url = fields.String(required=True, metadata={"description": "Its immutable URL (absolute)"})
    sha256 = fields.String(required=True)
    integrity = fields.String(required=True, metadata={"description": "For Subresource Integrity (sha384-…)"})
    bytes = fields.Integer(required=True)
    gzip_bytes = fields.Integer(required=True)
    languages = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "Other languages' string files, by language: file, url (absolute), sha256, integrity, sizes"})

WIDGET_DIR = Path(__file__).resolve().parent.parent / "static" / "widget"
STABLE_MAX_AGE = 300
IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=1)
def widget_manifest() -> dict[str, Any]:
    """The build manifest written by widget/build.mjs: current file name, hashes, sizes."""
    return json.loads((WIDGET_DIR / "manifest.json").read_text())


# What each Content-Encoding's precompressed twin ends with, in the order the service prefers them.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


@lru_cache(maxsize=16)
def _widget_bytes(file_name: str) -> bytes:
    return (WIDGET_DIR / file_name).read_bytes()


def _served_files() -> set[str]:
    manifest = widget_manifest()
    return {manifest["file"], *(entry["file"] for entry in manifest.get("languages", {}).values())}


def widget_versioned_path() -> str:
    """The immutable URL path of the current build (what the demo page and pinning shops use)."""
    return f"/widget/v1/{widget_manifest()['file']}"


def _script(file_name: str, cache_control: str, etag: str) -> Response:
    # The best encoding the browser accepts (q=0 refuses one); identity when it accepts neither.
    encoding, suffix = next(((name, suffix) for name, suffix in ENCODINGS if request.accept_encodings[name]),
                            (None, ""))
    response = Response(_widget_bytes(file_name + suffix), mimetype="text/javascript")
    response.headers["Cache-Control"] = cache_control
    response.headers["Vary"] = "Accept-Encoding"
    if encoding:
        response.headers["Content-Encoding"] = encoding
    # One ETag per representation: a cache must not answer a gzip request's If-None-Match with brotli bytes.
    response.set_etag(f"{etag}-{encoding}" if encoding else etag)
    # A public, credential-free file: any storefront origin may load it, also as a module or with SRI.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response.make_conditional(request)


@bp.get("/widget/v1/instagift-claim-code.js")
@bp.response(200, SCRIPT, content_type="text/javascript")
@bp.alt_response(304, description=NOT_MODIFIED, success=True)
@bp.problems(400)
def current_widget():
    """The current widget build under a stable name; cached briefly so releases propagate."""
    manifest = widget_manifest()
    return _script(manifest["file"], f"public, max-age={STABLE_MAX_AGE}, stale-while-revalidate=86400",
                   manifest["sha256"])


@bp.get("/widget/v1/instagift-claim-code.<version>.js")
@bp.response(200, SCRIPT, content_type="text/javascript")
@bp.alt_response(304, description=NOT_MODIFIED, success=True)
@bp.problems(400, 404)
def versioned_widget(version: str):
    """One exact widget build (or one of its language files), cacheable forever; only the current build is served."""
    file_name = f"instagift-claim-code.{version}.js"
    if file_name not in _served_files():
        abort(404)
    return _script(file_name, IMMUTABLE, version)


@bp.get("/widget/v1/manifest.json")
@bp.response(200, WidgetManifestSchema)
@bp.problems(400)
def manifest_json():
    """Which build is current: file name, absolute URL, SRI integrity and sizes, and its language files."""
    manifest = dict(widget_manifest())
    root = request.url_root.rstrip("/")
    manifest["url"] = root + widget_versioned_path()
    manifest["languages"] = {language: {**entry, "url": f"{root}/widget/v1/{entry['file']}"}
                             for language, entry in manifest.get("languages", {}).items()}
    response = Response(json.dumps(manifest), mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={STABLE_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
