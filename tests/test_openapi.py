"""The OpenAPI document: valid, free of generator warnings, and listing every endpoint."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_the_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    # --fail-on-warn turns any generator warning (an operationId collision, an unknown
    # response type ...) into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    for path in [
        "/api/matches/",
        "/api/matches/{match_id}/",
        "/api/matches/{match_id}/accept",
        "/api/matches/{match_id}/reject",
        "/api/matches/{match_id}/follow-all",
        "/api/matches/mutual-connections",
        "/api/match/run",
        "/api/health",
    ]:
        assert path in paths, sorted(paths)
    feed_parameters = {p["name"] for p in paths["/api/matches/"]["get"]["parameters"]}
    assert feed_parameters >= {"status", "event", "source", "min_compatibility", "sort", "cursor", "page_size"}
