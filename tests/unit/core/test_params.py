from __future__ import annotations

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.params import localise_params

ATTACHED = [
    "main.cwl",
    "data/reads.fq",
    "data/reads.fq.idx",
    "ref/genome/chr1.fa",
    "A:B #1.txt",
]


def test_relative_and_remote_references_pass_unchanged() -> None:
    params = {
        "a": {"class": "File", "path": "data/reads.fq"},
        "b": {"class": "File", "location": "https://example.org/x.fa"},
        "n": 3,
        "c": [{"class": "File", "location": "_:literal", "contents": "x"}],
    }
    assert localise_params(params, ATTACHED) == params


def test_client_absolute_locations_map_onto_attachments() -> None:
    """wes-client sends file:// locations of the client's machine beside the attachments."""
    params = {
        "reads": {
            "class": "File",
            "location": "file:///home/me/proj/data/reads.fq",
            "secondaryFiles": [
                {"class": "File", "location": "file:///home/me/proj/data/reads.fq.idx"}
            ],
        },
        "ref": {"class": "Directory", "location": "file:///home/me/proj/ref/genome"},
        "list": [{"class": "File", "path": "/home/me/proj/data/reads.fq"}],
    }
    out = localise_params(params, ATTACHED)
    assert out["reads"]["location"] == "data/reads.fq"
    assert out["reads"]["secondaryFiles"][0]["location"] == "data/reads.fq.idx"
    assert out["ref"]["location"] == "ref/genome"
    assert out["list"][0]["path"] == "data/reads.fq"
    assert params["reads"]["location"].startswith("file://"), "the input is not modified"


def test_attachment_names_become_percent_encoded_locations() -> None:
    """A location is a URI: "A:B #1.txt" as it is would be scheme "A" and fragment "1.txt"."""
    params = {
        "odd": {"class": "File", "location": "file:///home/me/A%3AB%20%231.txt"},
        "odd_path": {"class": "File", "path": "/home/me/A:B #1.txt"},
        "encoded": {"class": "File", "location": "A%3AB%20%231.txt"},
    }
    out = localise_params(params, ATTACHED)
    assert out["odd"]["location"] == "A%3AB%20%231.txt"
    assert out["odd_path"]["path"] == "A:B #1.txt"  # a path is not a URI
    assert out["encoded"]["location"] == "A%3AB%20%231.txt"


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ({"class": "File", "location": "%2E%2E/%2E%2E/secret.txt"}, "'..'"),
        ({"class": "File", "location": "data/%2e%2e/%2e%2e/secret.txt"}, "'..'"),
        ({"class": "File", "location": "%2Fetc%2Fpasswd"}, "absolute"),
        ({"class": "File", "location": "file:///etc/passwd"}, "not attached"),
        ({"class": "File", "path": "/etc/shadow"}, "not attached"),
        ({"class": "File", "path": "../x"}, "'..'"),
        ({"class": "File", "location": "s3://bucket/x"}, "unsupported scheme"),
        ({"class": "Directory", "location": "file:///srv/data/reads.fq"}, "not attached"),
    ],
)
def test_unattached_or_unsafe_references_are_refused(ref: dict, fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        localise_params({"x": {"nested": [ref]}}, ATTACHED)
