from __future__ import annotations

import io

import pytest
from werkzeug.datastructures import FileStorage, MultiDict

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.server.forms import parse_idempotency_key, parse_run_request


def test_parses_json_fields_and_repeated_attachments() -> None:
    form = MultiDict(
        {
            "workflow_type": " cwl ",
            "workflow_type_version": "v1.0",
            "workflow_url": "main.cwl",
            "workflow_params": '{"x": 1}',
            "tags": '{"a": "b", "n": 3}',
            "workflow_engine_parameters": '{"--clean": null}',
        }
    )
    files = MultiDict(
        [
            ("workflow_attachment", FileStorage(io.BytesIO(b"1"), filename="main.cwl")),
            ("workflow_attachment", FileStorage(io.BytesIO(b"2"), filename="lib/tool.cwl")),
        ]
    )
    sub = parse_run_request(form, files)
    assert sub.workflow_type == "cwl"
    assert sub.workflow_params == {"x": 1}
    assert sub.tags == {"a": "b", "n": "3"}
    assert sub.workflow_engine_parameters == {"--clean": None}
    assert [a.name for a in sub.attachments] == ["main.cwl", "lib/tool.cwl"]


def test_empty_fields_mean_absent() -> None:
    sub = parse_run_request(MultiDict({"workflow_params": "", "workflow_url": "  "}), MultiDict())
    assert sub.workflow_params == {}
    assert sub.workflow_url is None


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("workflow_params", "{", "workflow_params is not valid JSON"),
        ("workflow_params", '"text"', "JSON object, not a JSON string"),
        ("tags", "[]", "tags must be a JSON object"),
        ("tags", '{"a": null}', "tags['a']"),
        ("workflow_engine_parameters", "1", "workflow_engine_parameters must be a JSON object"),
    ],
)
def test_bad_json_fields_name_the_field(field: str, value: str, fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_run_request(MultiDict({field: value}), MultiDict())


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"8e03978e-40d5"', "8e03978e-40d5"),
        ('  "with space"  ', "with space"),
        (r'"a \"quoted\" \\ key"', 'a "quoted" \\ key'),
        ("x" * 255, "x" * 255),
    ],
)
def test_idempotency_keys_quoted_or_bare(header: str | None, key: str | None) -> None:
    assert parse_idempotency_key(header) == key


@pytest.mark.parametrize(
    "header", ["", "   ", '""', "x" * 256, "caf\u00e9", '"open', '"a"b"', r'"bad \n escape"']
)
def test_malformed_idempotency_keys_say_what_to_send(header: str) -> None:
    with pytest.raises(BadRequestError, match=r"Idempotency-Key .* printable ASCII characters"):
        parse_idempotency_key(header)
