"""Prometheus's HTTP API, read from this machine: what the scenario's Prometheus scraped and which alerts fire."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _get(self, path, **params):
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr, at=None):
        """[(labels, value)] of an instant query, at AT (Unix seconds) or now."""
        data = self._get("/api/v1/query", query=expr, **({"time": f"{at:.3f}"} if at else {}))
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def samples(self, selector, since, until):
        """{frozenset(labels): [(time, value)]}: every raw sample of SELECTOR's series between the two times."""
        window = max(1, int(until - since) + 1)
        data = self._get("/api/v1/query", query=f"{selector}[{window}s]", time=f"{until:.3f}")
        return {frozenset(item["metric"].items()): [(float(t), float(v)) for t, v in item["values"] if float(t) >= since]
                for item in data["result"]}

    def total(self, expr, at=None):
        """The one value of a sum()-like query (0 when it has none)."""
        result = self.query(expr, at)
        assert len(result) <= 1, result
        return result[0][1] if result else 0.0

    def targets(self):
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_for_scrape_after(self, moment, timeout=60):
        """Wait until every target was scraped after MOMENT (Unix seconds) and the result is stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamps = self.query("timestamp(up)")
            if stamps and min(value for _, value in stamps) > moment:
                return time.time()
            time.sleep(0.5)
        raise AssertionError(f"not every target was scraped within {timeout}s after {moment}: {stamps}")

    def firing(self, alertname):
        """Labels of each firing alert of that name."""
        return [alert["labels"] for alert in self._get("/api/v1/alerts")["alerts"]
                if alert["labels"].get("alertname") == alertname and alert["state"] == "firing"]


def increase_without_resets(series):
    """What a counter's raw samples add up to, a reset (a value below the one before) counted as a fresh start
    from zero, as Prometheus's increase() reads it; and the number of resets."""
    added, resets = 0.0, 0
    for (_, before), (_, after) in zip(series, series[1:]):
        if after >= before:
            added += after - before
        else:
            added += after
            resets += 1
    return added, resets
