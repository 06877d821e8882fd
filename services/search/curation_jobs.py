"""Curation runs started over HTTP: one at a time per search replica, in a thread, reported by id.

A run belongs to the tenant whose key started it; its manifest is written under the service's home and
served only to that tenant. A replica that restarts forgets its runs (the work folder stays, so starting
the same run again resumes it)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import ClipstreamError, Conflict
from services.common.vectors import SegmentStore
from services.curation.job import CurationConfig, CurationJob


class Busy(Conflict):
    """Another curation run is going on in this replica: a 409."""

    reason = "busy"


@dataclass
class Run:
    id: str
    tenant: str
    config: CurationConfig
    manifest: Path
    state: str = "running"  # running | done | failed
    step: str = ""
    progress: float = 0.0
    error: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "step": self.step,
            "progress": round(self.progress, 3),
            "error": self.error,
            "report": self.report,
            "config": {k: v for k, v in asdict(self.config).items() if k != "tenant"},
            "manifest_url": f"/v1/curation/{self.id}/manifest" if self.state == "done" else None,
        }


class CurationRuns:
    def __init__(self, store: SegmentStore, home: Path) -> None:
        self.store = store
        self.home = home / "curation"
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def start(self, config: CurationConfig) -> Run:
        with self._lock:
            if any(r.state == "running" for r in self._runs.values()):
                raise Busy("a curation run is going on; try again when it is done")
            run_id = uuid.uuid4().hex
            run = Run(run_id, config.tenant, config, self.home / config.tenant / f"{run_id}.parquet")
            self._runs[run_id] = run
        threading.Thread(target=self._run, args=(run,), name=f"curation-{run_id[:8]}", daemon=True).start()
        return run

    def get(self, run_id: str, tenant: str) -> Run | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.tenant == tenant else None

    def _run(self, run: Run) -> None:
        def progress(step: str, done: float) -> None:
            run.step, run.progress = step, done

        try:
            report = CurationJob(self.store, run.config, self.home / "work", progress).run(run.manifest)
            run.report = asdict(report) | {"manifest": run.manifest.name}
            run.state = "done"
        except ClipstreamError as exc:
            run.state, run.error = "failed", f"{exc.reason}: {exc.detail}"
        except Exception as exc:  # a run must end reported, never vanish with its thread
            run.state, run.error = "failed", f"internal_error: {type(exc).__name__}: {exc}"
