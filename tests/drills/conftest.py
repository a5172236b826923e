"""The drills use the service fixtures (the API on the test databases, real processes)."""

from tests.service_fixtures import api, api_settings, client, processes  # noqa: F401
