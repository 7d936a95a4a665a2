"""HTTP routes: `truncate` and TEI's `truncation_direction` -> which side is cut, or a refusal
that names the contradiction (precedence as `http.fields.truncation` documents it); one reader
for every route, whose default for an absent `truncate` is the route's (refuse for the OpenAI
route, cut for TEI's rerank and predict)."""

from __future__ import annotations

from typing import Any

import pytest

from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.http.fields import truncation
from attnserve.service.server.options import Truncation

END, START, NONE = Truncation.END, Truncation.START, Truncation.NONE


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, NONE),  # OpenAI's API refuses over-long input unless asked
        ({"truncate": False}, NONE),
        ({"truncate": None, "truncation_direction": None}, NONE),  # null: as absent
        ({"truncate": True}, END),
        ({"truncate": "end"}, END),
        ({"truncate": "start"}, START),
        ({"truncate": "none"}, NONE),
        ({"truncate": True, "truncation_direction": "left"}, START),
        ({"truncate": True, "truncation_direction": "LEFT"}, START),
        ({"truncate": True, "truncation_direction": "Right"}, END),
        ({"truncate": "start", "truncation_direction": "left"}, START),
        ({"truncate": "end", "truncation_direction": "right"}, END),
        ({"truncation_direction": "left"}, NONE),  # as TEI: a side, not a cut
        ({"truncate": False, "truncation_direction": "left"}, NONE),
        ({"truncate": "none", "truncation_direction": "right"}, NONE),
    ],
)
def test_the_side_cut(body: dict[str, Any], expected: Truncation) -> None:
    assert truncation(body, default=False) is expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"truncate": "start", "truncation_direction": "right"}, "contradicts"),
        ({"truncate": "end", "truncation_direction": "left"}, "contradicts"),
        ({"truncate": "left"}, "'truncate' must be true, false, 'end', 'start' or 'none'"),
        ({"truncate": "END"}, "'truncate' must be"),
        ({"truncate": 1}, "'truncate' must be"),
        ({"truncate": True, "truncation_direction": "middle"}, "'left' or 'right'"),
        ({"truncate": True, "truncation_direction": ["left"]}, "'left' or 'right'"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ServiceError) as caught:
        truncation(body, default=False)
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, END),  # TEI cuts unless told not to
        ({"truncate": None}, END),
        ({"truncation_direction": "left"}, START),
        ({"truncation_direction": "Left"}, START),  # Haystack's capitalised sides
        ({"truncate": False, "truncation_direction": "left"}, NONE),
    ],
)
def test_a_route_that_cuts_by_default(body: dict[str, Any], expected: Truncation) -> None:
    assert truncation(body, default=True) is expected
