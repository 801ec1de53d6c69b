"""Long bulk operations (backfill, bulk resend, resend-latest) as tasks with progress.

A task runs on a thread of its own, chunk by chunk; the request that starts it waits a few
seconds and answers with the result when the task is done by then (most are), or with the
task's id and progress, which `GET /api/v1/tasks/{id}` serves until an hour after it ends.
Tasks live in the process that runs them: poll the replica that answered.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from analytics.control.scope import visible
from analytics.errors import AnalyticsError, NotFound, RateLimited
from disparo.access import ApiKey
from disparo.schemas import now_utc

log = logging.getLogger(__name__)
KEEP_S = 3600.0
MAX_RUNNING = 4  # per process; more answer 429 until one ends
State = Literal["running", "done", "failed"]


@dataclass
class Task:
    """One bulk operation: what it did so far, and its result or error once it ended."""

    kind: str
    account_id: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: State = "running"
    progress: dict[str, int] = field(default_factory=dict)
    note: str = ""  # what it is doing now (e.g. waiting for the account's resend limit)
    result: dict[str, Any] | None = None
    error: AnalyticsError | None = None
    started_at: str = field(default_factory=lambda: now_utc().isoformat())
    ended: threading.Event = field(default_factory=threading.Event)
    ended_at: float = 0.0

    def count(self, **amounts: int) -> None:
        """Add to the progress counters."""
        for name, n in amounts.items():
            self.progress[name] = self.progress.get(name, 0) + n

    def public(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": dict(self.progress),
            "note": self.note or None,
            "started_at": self.started_at,
            "result": self.result,
            "error": str(self.error) if self.error else None,
            "status_url": f"/api/v1/tasks/{self.id}",
        }


class Tasks:
    """The tasks of this process."""

    def __init__(self, max_running: int = MAX_RUNNING) -> None:
        self.max_running = max_running
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def start(
        self, kind: str, account_id: str | None, work: Callable[[Task], dict[str, Any]]
    ) -> Task:
        """Run `work(task)` on a thread; it returns the result and updates the progress."""
        task = Task(kind, account_id)
        with self._lock:
            self._forget_old()
            running = sum(1 for t in self._tasks.values() if t.state == "running")
            if running >= self.max_running:
                raise RateLimited(f"{running} bulk tasks are running here; try again soon", 5)
            self._tasks[task.id] = task
        threading.Thread(target=self._run, args=(task, work), name=task.id, daemon=True).start()
        return task

    def get(self, task_id: str, key: ApiKey) -> Task:
        """A task this key may see (its own account's, or any for a platform key)."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or not visible(key, task.account_id):
            raise NotFound(f"no task {task_id!r} in this process (tasks are kept an hour)")
        return task

    def _run(self, task: Task, work: Callable[[Task], dict[str, Any]]) -> None:
        try:
            task.result = work(task)
            task.state = "done"
        except AnalyticsError as exc:
            task.error, task.state = exc, "failed"
        except Exception as exc:  # a bug: the task says so instead of vanishing
            log.exception("task %s failed", task.id)
            task.error, task.state = AnalyticsError(f"the task failed: {exc}"), "failed"
        finally:
            task.note = ""
            task.ended_at = time.monotonic()
            task.ended.set()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for task_id in [
            t.id for t in self._tasks.values() if t.ended_at and now - t.ended_at > KEEP_S
        ]:
            del self._tasks[task_id]


def answer(task: Task, wait_s: float) -> dict[str, Any]:
    """The task's result if it ends within `wait_s` (its error raised, as if done inline),
    else its progress and where to poll it."""
    if task.ended.wait(wait_s):
        if task.error is not None:
            raise task.error
        return task.result or {}
    return task.public()
