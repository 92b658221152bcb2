"""Serves the built storefront widget: a stable URL for script tags and immutable versioned files.

`/widget/v1/instagift-claim-code.js` always serves the current build (short cache + ETag, so a release reaches
every storefront within minutes); `/widget/v1/instagift-claim-code.<hash>.js` serves that exact build forever
(`immutable`), for shops that pin a version with Subresource Integrity (the manifest gives the `integrity`).
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
    url = fields.String(required=True, metadata={"description": "Its immutable URL path"})
    sha256 = fields.String(required=True)
    integrity = fields.String(required=True, metadata={"description": "For Subresource Integrity (sha384-…)"})
    bytes = fields.Integer(required=True)
    gzip_bytes = fields.Integer(required=True)

WIDGET_DIR = Path(__file__).resolve().parent.parent / "static" / "widget"
STABLE_MAX_AGE = 300
IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=1)
def widget_manifest() -> dict[str, Any]:
    """The build manifest written by widget/build.mjs: current file name, hashes, sizes."""
    return json.loads((WIDGET_DIR / "manifest.json").read_text())


@lru_cache(maxsize=4)
def _widget_bytes(file_name: str) -> bytes:
    return (WIDGET_DIR / file_name).read_bytes()


def widget_versioned_path() -> str:
    """The immutable URL path of the current build (what the demo page and pinning shops use)."""
    return f"/widget/v1/{widget_manifest()['file']}"


def _script(body: bytes, cache_control: str, etag: str) -> Response:
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = cache_control
    response.set_etag(etag)
    # A public, credential-free file: any storefront origin may load it, also as a module or with SRI.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response.make_conditional(request)


@bp.get("/widget/v1/instagift-claim-code.js")
@bp.response(200, SCRIPT, content_type="text/javascript")
@bp.alt_response(304, description=NOT_MODIFIED, success=True)
@bp.problems(400)
def current_widget():
    """The current widget build under a stable name; cached briefly so releases propagate."""
    manifest = widget_manifest()
    return _script(_widget_bytes(manifest["file"]),
                   f"public, max-age={STABLE_MAX_AGE}, stale-while-revalidate=86400", manifest["sha256"])


@bp.get("/widget/v1/instagift-claim-code.<version>.js")
@bp.response(200, SCRIPT, content_type="text/javascript")
@bp.alt_response(304, description=NOT_MODIFIED, success=True)
@bp.problems(400, 404)
def versioned_widget(version: str):
    """One exact widget build, cacheable forever; only the current build is served."""
    manifest = widget_manifest()
    if f"instagift-claim-code.{version}.js" != manifest["file"]:
        abort(404)
    return _script(_widget_bytes(manifest["file"]), IMMUTABLE, manifest["sha256"])


@bp.get("/widget/v1/manifest.json")
@bp.response(200, WidgetManifestSchema)
@bp.problems(400)
def manifest_json():
    """Which build is current: file name, URL, SRI integrity and sizes."""
    manifest = dict(widget_manifest())
    manifest["url"] = widget_versioned_path()
    response = Response(json.dumps(manifest), mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={STABLE_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
