"""The Python tool's Flask wrapper, on the concurrent_bigmodel package (README "From Python").

    pip install ... (README "From Python"); apt-get install python3-flask
    BIGMODEL_API_KEY=... python3 examples/flask_service.py
    curl -s localhost:5000/analyze -H 'Content-Type: application/json' -d '{"topics": ["AI", "Fusion"]}'

Changed from the Python tool's only where it must be: an executor runs one batch at a time, so requests
take turns (the lock). For many clients sharing one worker pool and its limits, `concurrent_bigmodel serve`
is the better choice (README "From Python").
"""

import os
import threading
from dataclasses import asdict

from flask import Flask, jsonify, request

from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig

app = Flask(__name__)

config = ConcurrentConfig(concurrency=5, mode="threading", timeout=120)
executor = ConcurrentBigModelExecutor(config, api_key=os.environ.get("BIGMODEL_API_KEY", "your_api_key"))
one_batch_at_a_time = threading.Lock()


@app.route("/analyze", methods=["POST"])
def analyze():
    topics = request.json.get("topics", [])
    if not topics:
        return jsonify({"error": "No topics provided"}), 400
    with one_batch_at_a_time:
        results = executor.execute_concurrent(topics)
    return jsonify({"results": [asdict(result) for result in results]})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
