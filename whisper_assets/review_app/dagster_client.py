"""Start and follow the training job through the Dagster GraphQL API of a running instance."""

from __future__ import annotations

import threading

import httpx

ACTIVE = frozenset({"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED"})
_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""
_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { runId status startTime endTime } ... on PythonError { message } }
}"""
_LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId, limit: 500) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message timestamp level }
        ... on ExecutionStepFailureEvent { error { message } }
        ... on RunFailureEvent { error { message } }
      }
    }
  }
}"""

_SPLITS = """
query Splits {
  assetOrError(assetKey: {path: ["splits"]}) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { metadataEntries { label ... on IntMetadataEntry { intValue } } } }
  }
}"""


class DagsterError(RuntimeError):
    pass


class TrainingLauncher:
    """Launches `train_and_evaluate` at most once at a time: a second request returns the active run."""

    def __init__(self, graphql_url: str, location: str = "whisper_assets", job: str = "train_and_evaluate"):
        self.graphql_url = graphql_url
        self.location = location
        self.job = job
        self.run_id: str | None = None
        self._lock = threading.Lock()

    def _query(self, query: str, variables: dict) -> dict:
        try:
            response = httpx.post(self.graphql_url, json={"query": query, "variables": variables}, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DagsterError(f"Dagster is not reachable at {self.graphql_url}: {exc}") from exc
        body = response.json()
        if body.get("errors"):
            raise DagsterError("; ".join(e.get("message", "?") for e in body["errors"]))
        return body["data"]

    def launch(self, training_config: dict) -> dict:
        with self._lock:  # a double click: the second request waits, then sees the first run
            if self.run_id and (current := self.status())["status"] in ACTIVE:
                return current | {"already_running": True}
            params = {
                "selector": {
                    "repositoryLocationName": self.location,
                    "repositoryName": "__repository__",
                    "jobName": self.job,
                },
                "runConfigData": {"ops": {"whisper_model": {"config": training_config}}},
                "executionMetadata": {"tags": [{"key": "whisper_assets/launched_by", "value": "review_app"}]},
            }
            result = self._query(_LAUNCH, {"params": params})["launchRun"]
            if result["__typename"] != "LaunchRunSuccess":
                errors = result.get("errors") or [{"message": result.get("message", result["__typename"])}]
                raise DagsterError("; ".join(e["message"] for e in errors))
            self.run_id = result["run"]["runId"]
            return {"run_id": self.run_id, "status": result["run"]["status"], "already_running": False}

    def status(self) -> dict:
        if not self.run_id:
            return {"run_id": None, "status": "NONE"}
        run = self._query(_STATUS, {"runId": self.run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise DagsterError(run.get("message", run["__typename"]))
        return {
            "run_id": run["runId"],
            "status": run["status"],
            "start_time": run.get("startTime"),
            "end_time": run.get("endTime"),
        }

    def split_sizes(self) -> dict[str, int] | None:
        """Items per split in the latest `splits` materialization (the ratios themselves live in settings)."""
        asset = self._query(_SPLITS, {})["assetOrError"]
        if asset["__typename"] != "Asset" or not asset["assetMaterializations"]:
            return None
        entries = asset["assetMaterializations"][0]["metadataEntries"]
        sizes = {
            e["label"].removesuffix("_items"): e.get("intValue")
            for e in entries
            if e["label"].endswith("_items")
        }
        return {name: sizes.get(name) or 0 for name in ("train", "validation", "test")}

    def logs(self) -> list[dict]:
        if not self.run_id:
            return []
        connection = self._query(_LOGS, {"runId": self.run_id})["logsForRun"]
        events = []
        for event in connection.get("events", []):
            if (event.get("error") or {}).get("message"):  # failures carry the reason in their error
                event = event | {"message": f"{event.get('message', '')} {event['error']['message']}".strip()}
            if event.get("message"):
                events.append(event)
        return events
