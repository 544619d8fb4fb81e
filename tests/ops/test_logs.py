"""Logs carry no personal data: phone and ID numbers are masked in every line, tracebacks included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logsetup import make_handler, mask
from tests.conftest import HarnessMaker

PHONE, ID_NUMBER = "13812345678", "11010119900307123X"
QUESTION = f"我的电话 {PHONE}，身份证 {ID_NUMBER}，开饭馆要办什么证？"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = make_handler("json", out)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class ExplodingMatcher:
    """A matcher that fails with the question in its error, as a careless library might."""

    def search(self, question: str, limit: int = 5) -> Any:
        raise RuntimeError(f"cannot match {question!r}")


async def test_question_with_phone_and_id_never_logged_unmasked(
    make_harness: HarnessMaker, json_log: io.StringIO
) -> None:
    await make_harness().say(QUESTION)  # the normal path (matcher, unanswered-question log)
    failing = make_harness(matcher=ExplodingMatcher())
    update = failing.updates.message(QUESTION)
    await failing.feed(update)
    logging.getLogger("test").info("applicant wrote %s", QUESTION)
    text = json_log.getvalue()
    assert PHONE not in text and ID_NUMBER not in text and "19900307" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [line for line in lines if "RuntimeError" in line.get("exc", "")]
    assert failed, "the handler error was logged with its traceback"
    assert "138****5678" in failed[0]["exc"] and "110101********123X" in failed[0]["exc"]
    assert failed[0]["update_id"] == update.update_id
    assert lines[-1]["msg"] == "applicant wrote " + mask(QUESTION)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("call 13812345678 now", "call 138****5678 now"),
        ("+86 138 1234 5678", "138****5678"),
        ("+8613812345678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("id 11010119900307123x.", "id 110101********123x."),
        ("order 20260101123456789012 stays", "order 20260101123456789012 stays"),  # not an ID
        ("case YC260315K7Q2MXAB3", "case YC260315K7Q2MXAB3"),
    ],
)
def test_mask_covers_the_ways_people_write_numbers(raw: str, masked: str) -> None:
    assert mask(raw) == masked


def test_plain_format_names_the_update(json_log: io.StringIO) -> None:
    out = io.StringIO()
    handler = make_handler("plain", out)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "phone %s", (PHONE,), None)
    record.update_id = 77
    handler.handle(record)
    assert out.getvalue().rstrip().endswith("WARNING x [update 77]: phone 138****5678")
