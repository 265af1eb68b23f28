"""examples/flask_service.py through Flask's test client, against the simulator."""

import importlib.util

from conftest import SOURCE_DIR, TEST_KEY


def load_example():
    spec = importlib.util.spec_from_file_location("flask_service", SOURCE_DIR / "examples" / "flask_service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_flask_example_answers_with_every_result_as_json(simulator, monkeypatch):
    # The example reads the base URL and the key from the environment, as the CLI does.
    monkeypatch.setenv("BIGMODEL_BASE_URL", simulator.base_url)
    monkeypatch.setenv("BIGMODEL_API_KEY", TEST_KEY)
    client = load_example().app.test_client()

    reply = client.post("/analyze", json={"topics": ["AI", "New energy [[fault:400_1301]]"]})
    assert reply.status_code == 200
    results = {r["topic"]: r for r in reply.get_json()["results"]}
    assert set(results) == {"AI", "New energy [[fault:400_1301]]"}
    assert results["AI"]["success"] and results["AI"]["analysis"] and results["AI"]["error_message"] is None
    failed = results["New energy [[fault:400_1301]]"]
    assert not failed["success"] and failed["error_message"] and failed["error"]["code"] == "1301"

    assert client.post("/analyze", json={"topics": []}).status_code == 400
