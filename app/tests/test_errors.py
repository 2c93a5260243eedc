import pytest


@pytest.fixture
def failing_app(app):
    """The app with one route that raises, and production exception handling.

    TESTING makes Flask re-raise exceptions into the test; turning
    propagation off restores what a real server does.
    """

    @app.get("/_test/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_unknown_path_is_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "not found"


def test_wrong_method_is_json_405(client):
    response = client.delete("/requestme")
    assert response.status_code == 405
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "method not allowed"


def test_wrong_method_lists_allowed_methods(client):
    allowed = client.post("/healthz").headers["Allow"]
    assert set(allowed.replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


def test_error_body_carries_request_id(client):
    response = client.get("/missing", headers={"X-Request-ID": "trace-404"})
    assert response.get_json()["request_id"] == "trace-404"


def test_unhandled_exception_is_json_500(failing_app):
    response = failing_app.test_client().get("/_test/boom")
    assert response.status_code == 500
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "internal server error"


def test_500_body_reveals_no_internals(failing_app):
    body = failing_app.test_client().get("/_test/boom").get_data(as_text=True)
    assert "Traceback" not in body
    assert "secret internal detail" not in body
    assert "RuntimeError" not in body


def test_500_traceback_is_logged_as_json(failing_app, log_records):
    failing_app.test_client().get("/_test/boom", headers={"X-Request-ID": "boom-1"})
    errors = [record for record in log_records() if "traceback" in record]
    assert len(errors) == 1
    assert errors[0]["level"] == "ERROR"
    assert "RuntimeError: secret internal detail" in errors[0]["traceback"]
    assert errors[0]["request_id"] == "boom-1"


def test_500_is_still_logged_as_a_request(failing_app, log_records):
    failing_app.test_client().get("/_test/boom")
    request_lines = [r for r in log_records() if r["logger"] == "hello_service.request"]
    assert [(r["status"], r["level"]) for r in request_lines] == [(500, "ERROR")]
