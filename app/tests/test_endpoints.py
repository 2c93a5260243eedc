import json

import pytest


def test_requestme_body_is_unchanged_from_original_service(client):
    response = client.get("/requestme")
    assert response.status_code == 200
    assert response.data == b'{"message": "Hello Flask.!!"}'


def test_requestme_is_json(client):
    assert client.get("/requestme").content_type == "application/json"


def test_requestme_answers_head(client):
    response = client.head("/requestme")
    assert response.status_code == 200
    assert response.data == b""


def test_healthz_without_release_reports_null(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == {"status": "ok", "release": None}


def test_healthz_reports_release_id(app, client):
    app.config["RELEASE_ID"] = "20240501T120000Z"
    assert client.get("/healthz").get_json()["release"] == "20240501T120000Z"


def test_echo_returns_posted_json(client):
    payload = {"numbers": [1, 2, 3], "nested": {"ok": True}}
    response = client.post("/echo", json=payload)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == {"echo": payload, "release": None}


def test_echo_is_not_served_when_turned_off(app, client):
    app.config["ECHO"] = False
    response = client.post("/echo", json={"a": 1})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not found"


def test_echo_includes_release_id(app, client):
    app.config["RELEASE_ID"] = "r42"
    assert client.post("/echo", json=[]).get_json()["release"] == "r42"


def test_echo_accepts_json_sent_as_text_plain(client):
    response = client.post("/echo", data='{"a": 1}', content_type="text/plain")
    assert response.get_json()["echo"] == {"a": 1}


@pytest.mark.parametrize("body", ["not json", "", '{"unclosed": '])
def test_echo_rejects_non_json_body_with_json_400(client, body):
    response = client.post("/echo", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "bad request"


def test_echo_accepts_body_of_exactly_4_kib(client):
    body = json.dumps({"pad": ""})
    body = json.dumps({"pad": "x" * (4096 - len(body))})
    assert len(body) == 4096
    assert client.post("/echo", data=body, content_type="application/json").status_code == 200


def test_echo_rejects_body_over_4_kib_with_json_413(client):
    body = json.dumps({"pad": "x" * 4096})
    response = client.post("/echo", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.content_type == "application/json"
    assert response.get_json()["error"] == "request entity too large"


def test_echo_refuses_get(client):
    assert client.get("/echo").status_code == 405
