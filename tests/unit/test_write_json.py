"""WriteJson works out how to write to a stream once, and follows sys.stdout when it changes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from otel_tdd.logs.render import WriteJson


def event(message: str) -> dict[str, object]:
    return {"message": message, "_time_ns": 1, "_context": object()}


def test_follows_a_redirected_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.TextIOWrapper(io.BytesIO(), write_through=True)
    write = WriteJson("stdout")
    monkeypatch.setattr(sys, "stdout", first)
    write("app", 20, event("one"))
    monkeypatch.setattr(sys, "stdout", second)
    write("app", 20, event("two"))
    monkeypatch.setattr(sys, "stdout", first)
    write("app", 20, event("three"))

    assert [json.loads(line)["message"] for line in first.getvalue().splitlines()] == [
        "one",
        "three",
    ]
    raw = second.buffer.getvalue()
    assert [json.loads(line)["message"] for line in raw.splitlines()] == ["two"]


def test_binary_and_text_streams_get_one_line_each() -> None:
    binary, text = io.BytesIO(), io.StringIO()
    WriteJson(stream=binary)("app", 20, event("b"))
    WriteJson(stream=text)("app", 20, event("t"))
    assert json.loads(binary.getvalue()) == {"message": "b"}
    assert json.loads(text.getvalue()) == {"message": "t"}


def test_a_missing_stdout_fails_loudly_instead_of_writing_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.stdout is None under pythonw and some daemons: the caller's error handling
    # must see it (and count it), not a silent no-op writer.
    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(AttributeError):
        WriteJson("stdout")("app", 20, event("lost"))
