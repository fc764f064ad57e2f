"""Which Azure Storage failures are transient (shared/adapters/storage_calls.py), for every storage adapter."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError

from shared.adapters.storage_calls import CreateOnce, call_storage, transient_storage_error
from shared.errors import Code, TransientError


def http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"HTTP {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize("status", [401, 403, 408, 429, 500, 503])
def test_service_trouble_is_transient(status):
    error = transient_storage_error(http_error(status), "save x", "Table Storage")
    assert isinstance(error, TransientError) and error.code is Code.STATE_UNAVAILABLE
    assert f"HTTP {status} from Table Storage" in error.message


@pytest.mark.parametrize("status", [400, 404, 409, 412])
def test_answers_about_the_data_are_the_callers(status):
    assert transient_storage_error(http_error(status), "save x", "Table Storage") is None


def test_no_answer_is_transient():
    error = transient_storage_error(ServiceRequestError("connection refused"), "read x", "Blob Storage")
    assert error is not None and "Blob Storage unreachable" in error.message


def test_create_once_tolerates_existing_and_reports_outages():
    calls = []

    def exists():
        calls.append(1)
        raise ResourceExistsError("already there")

    once = CreateOnce(exists, "table")
    once.ensure("x")
    once.ensure("x")
    assert calls == [1]
    once.forget()
    once.ensure("x")
    assert calls == [1, 1]

    def down():
        raise ServiceRequestError("no route")

    with pytest.raises(TransientError):
        CreateOnce(down, "table").ensure("x")


def test_call_storage_creates_first_raises_trouble_as_transient_and_answers_as_they_came():
    created = []
    target = CreateOnce(lambda: created.append("table"), "state table")
    assert call_storage(target, "read x", "Table Storage", lambda: 7) == 7
    assert created == ["table"]

    def busy():
        raise http_error(503)

    with pytest.raises(TransientError, match="read x: HTTP 503 from Table Storage") as raised:
        call_storage(target, "read x", "Table Storage", busy)
    assert isinstance(raised.value.__cause__, HttpResponseError)

    def modified():
        raise http_error(412)

    with pytest.raises(HttpResponseError) as answered:
        call_storage(target, "save x", "Table Storage", modified)
    assert answered.value.status_code == 412 and not isinstance(answered.value, TransientError)
    assert created == ["table"]  # created once only
