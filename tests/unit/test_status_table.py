"""docs/api.md's status table is the whole truth: every code the server can return is in it,
with the HTTP status the OpenAI endpoint really sends, and the proto's list agrees."""

from __future__ import annotations

import re

from attnserve.service.server.errors import Code
from attnserve.service.server.http.app import HTTP_STATUS
from attnserve.service.server.status import STATUS
from tests.support import ROOT

# Returned by gRPC itself rather than by our code: success, and a method that does not exist.
FROM_GRPC = {"OK", "UNIMPLEMENTED"}


def readme_table() -> dict[str, str]:
    """gRPC status -> HTTP column, from docs/api.md's status table."""
    page = (ROOT / "docs" / "api.md").read_text()
    rows = re.findall(r"^\s*\| ([A-Z_]+) \| ([^|]+) \|", page, re.M)
    return {code: http.strip() for code, http in rows}


def test_every_code_the_server_raises_is_in_the_readme_table() -> None:
    table = readme_table()
    assert set(table) == {STATUS[code].name for code in Code} | FROM_GRPC


def test_the_http_column_is_what_the_openai_endpoint_sends() -> None:
    table = readme_table()
    for code in Code:
        assert table[STATUS[code].name] == str(HTTP_STATUS[code]), code


def test_the_proto_lists_every_code_attnserve_v1_returns() -> None:
    proto = (ROOT / "proto/attnserve/v1/embedder.proto").read_text()
    listed = set(re.findall(r"^//   ([A-Z_]+) ", proto, re.M))
    # NOT_FOUND included: attnserve.v1 requests name a model too (`model`).
    assert listed == set(readme_table())
