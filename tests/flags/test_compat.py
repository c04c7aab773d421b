"""Import what Unleash serves, round-trip it, and the Unleash frontend API.

Every specification file (npm `@unleash/client-specification`) imports through the public
command; its export, imported into a fresh database, answers every case as the original.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from flags import services, snapshot
from flags.importexport import flags_export
from flags.models import Environment, Flag, SdkKey, Segment
from tests.conftest import clear_flag_caches
from tests.flags.test_client_specification import CASES, SPEC_DIR

FILES = sorted({file_name for _, file_name, _, _ in CASES})


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_flag_caches()
    yield
    clear_flag_caches()


def _import(tmp_path: Path, document: dict, environment: str) -> str:
    path = tmp_path / f"{environment}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    out = StringIO()
    call_command("flags_import", str(path), environment=environment, create=True, stdout=out)
    return out.getvalue()


def _answers(environment: str, file_name: str) -> dict[str, tuple]:
    compiled = snapshot.load(Environment.objects.get(key=environment).id)
    answers = {}
    for case_id, name, kind, test in CASES:
        if name != file_name:
            continue
        evaluation = compiled.snapshot.evaluate(test["toggleName"], test["context"])
        # A toggle case may pick its variant at random (no user): compare what it tests.
        answers[f"{kind}:{case_id}"] = (
            (evaluation.enabled,)
            if kind == "toggle"
            else (
                evaluation.enabled,
                evaluation.variant,
                evaluation.variant_enabled,
                evaluation.payload,
            )
        )
    return answers


def _expected(file_name: str) -> dict[str, tuple]:
    expected = {}
    for case_id, name, kind, test in CASES:
        if name != file_name:
            continue
        result = test["expectedResult"]
        if kind == "toggle":
            expected[f"{kind}:{case_id}"] = result
        else:
            expected[f"{kind}:{case_id}"] = (
                result["name"],
                result["enabled"],
                result.get("payload"),
            )
    return expected


@pytest.mark.skipif(not FILES, reason="run `npm ci`: the Unleash client specification is missing")
@pytest.mark.parametrize("file_name", FILES)
def test_flags_import__spec_file__imports_and_export_round_trips(file_name, db, tmp_path):
    state = json.loads((SPEC_DIR / file_name).read_text(encoding="utf-8"))["state"]
    _import(tmp_path, state, "spec")
    first = _answers("spec", file_name)
    for key, want in _expected(file_name).items():
        got = first[key]
        assert (got[0] if key.startswith("toggle:") else got[1:]) == want, key

    exported = flags_export(environment=Environment.objects.get(key="spec"))
    Flag.objects.all().delete()
    Segment.objects.all().delete()
    Environment.objects.all().delete()
    clear_flag_caches()
    _import(tmp_path, exported, "copy")
    assert _answers("copy", file_name) == first


def test_flags_import__strategy_variants_without_stickiness__served_without(db, tmp_path):
    state = json.loads((SPEC_DIR / "16-strategy-variants.json").read_text(encoding="utf-8"))
    _import(tmp_path, state["state"], "spec")
    env = Environment.objects.get(key="spec")
    key = services.sdk_key_create(environment=env, name="s", actor=None)[1]
    served = Client().get("/api/client/features", HTTP_AUTHORIZATION=key).json()
    given = {f["name"]: f for f in state["state"]["features"]}
    for feature in served["features"]:
        for strategy, original in zip(
            feature["strategies"], given[feature["name"]]["strategies"], strict=True
        ):
            for variant, raw in zip(
                strategy["variants"], original.get("variants") or [], strict=True
            ):
                assert ("stickiness" in variant) == ("stickiness" in raw)


def test_flags_import__warnings__in_command_output_and_on_flag_page(db, tmp_path, rm_client):
    state = json.loads((SPEC_DIR / "13-constraint-operators.json").read_text(encoding="utf-8"))
    output = _import(tmp_path, state["state"], "spec")
    assert "NOT_A_VALID_OPERATOR" in output
    page = rm_client.get(reverse("flags:detail", args=["F7.invalid-operator"]))
    assert page.status_code == 200
    assert "NOT_A_VALID_OPERATOR" in page.content.decode()


def test_flag_page__utf8_key__percent_encoded_url(db, tmp_path, rm_client):
    state = json.loads((SPEC_DIR / "18-utf8-flag-names.json").read_text(encoding="utf-8"))
    _import(tmp_path, state["state"], "spec")
    key = "Feature.UTF-8.😊_φriend_你好_🌍"
    url = reverse("flags:detail", args=[key])
    assert url == f"/flags/{quote(key, safe='')}/"
    assert rm_client.get(url).status_code == 200


# --------------------------------------------------------------------------------------------
# Frontend API


@pytest.fixture
def frontend(db, tmp_path):
    state = json.loads((SPEC_DIR / "18-utf8-flag-names.json").read_text(encoding="utf-8"))
    _import(tmp_path, state["state"], "spec")
    env = Environment.objects.get(key="spec")
    services.flag_create(key="off-flag", name="off", actor=None)
    _, server = services.sdk_key_create(environment=env, name="server", actor=None)
    _, browser = services.sdk_key_create(
        environment=env, name="browser", actor=None, kind=SdkKey.Kind.FRONTEND
    )
    return server, browser


def test_frontend_api__get__enabled_toggles_only_in_unleash_format(frontend):
    _, browser = frontend
    response = Client().get(
        "/api/frontend?userId=u1&properties[plan]=pro", HTTP_AUTHORIZATION=browser
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    toggles = response.json()["toggles"]
    names = [t["name"] for t in toggles]
    assert "Feature.UTF-8.Hellø_Wørld" in names
    assert "off-flag" not in names
    assert toggles[0]["enabled"] is True
    assert toggles[0]["variant"]["name"] == "disabled"
    assert toggles[0]["variant"]["enabled"] is False
    assert "impressionData" in toggles[0]


def test_frontend_api__post_and_single_feature__same_answer(frontend):
    _, browser = frontend
    client = Client()
    posted = client.post(
        "/api/frontend",
        data=json.dumps({"context": {"userId": "u1"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=browser,
    )
    name = "Feature.UTF-8.Hellø_Wørld"
    one = client.get(f"/api/frontend/features/{quote(name)}", HTTP_AUTHORIZATION=browser)
    assert one.status_code == 200
    assert one.json() in posted.json()["toggles"]
    off = client.get("/api/frontend/features/off-flag", HTTP_AUTHORIZATION=browser)
    assert off.status_code == 404


def test_frontend_api__if_none_match__304(frontend):
    _, browser = frontend
    client = Client()
    first = client.get("/api/frontend?userId=u1", HTTP_AUTHORIZATION=browser)
    again = client.get(
        "/api/frontend?userId=u1", HTTP_AUTHORIZATION=browser, HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert again.status_code == 304
    other = client.get(
        "/api/frontend?userId=u2", HTTP_AUTHORIZATION=browser, HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert other.status_code == 200


def test_frontend_api__preflight__allows_the_sdk_headers(frontend):
    response = Client().options(
        "/api/frontend",
        HTTP_ORIGIN="http://127.0.0.2:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,unleash-sdk,unleash-appname",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "unleash-appname" in response["Access-Control-Allow-Headers"]
    assert "GET" in response["Access-Control-Allow-Methods"]


def test_frontend_api__metrics_and_register__accepted(frontend):
    _, browser = frontend
    client = Client()
    metrics = client.post(
        "/api/frontend/client/metrics",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=browser,
    )
    register = client.post(
        "/api/frontend/client/register",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=browser,
    )
    assert (metrics.status_code, register.status_code) == (202, 200)


def test_frontend_key__client_api_refused_ofrep_allowed(frontend):
    server, browser = frontend
    client = Client()
    assert client.get("/api/client/features", HTTP_AUTHORIZATION=browser).status_code == 403
    assert client.get("/api/client/features", HTTP_AUTHORIZATION=server).status_code == 200
    assert client.get("/api/frontend", HTTP_AUTHORIZATION=server).status_code == 200
    name = quote("Feature.UTF-8.Hellø_Wørld")
    ofrep = client.post(
        f"/ofrep/v1/evaluate/flags/{name}",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {browser}",
    )
    assert ofrep.status_code == 200
    assert ofrep.json()["value"] is True


def test_sdk_key_create_command__frontend_kind(db):
    env = Environment.objects.create(key="web", name="Web")
    out, err = StringIO(), StringIO()
    call_command("sdk_key_create", environment="web", kind="frontend", stdout=out, stderr=err)
    assert SdkKey.objects.get(environment=env).kind == SdkKey.Kind.FRONTEND
    assert out.getvalue().strip().startswith("rc_web_")


@pytest.mark.parametrize("method", ["get", "post"])
def test_frontend_api__lone_surrogate_in_context__400_not_evaluated(frontend, method):
    _, browser = frontend
    client = Client()
    if method == "post":
        response = client.post(
            "/api/frontend",
            data=b'{"context":{"userId":"\\ud800","properties":{"plan":"\\udfff"}}}',
            content_type="application/json",
            HTTP_AUTHORIZATION=browser,
        )
    else:  # a query string cannot carry one (invalid UTF-8 becomes U+FFFD): still answered
        response = client.get("/api/frontend?userId=%ED%A0%80", HTTP_AUTHORIZATION=browser)
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]
