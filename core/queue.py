"""Enqueue Celery work by task name, after the transaction commits.

Tasks import services (a task is a thin wrapper around one service), so services never import
task modules: they name the task instead, e.g. `enqueue_on_commit("support.check_doc_link", 7)`.
The message is sent by the registered task itself (`task.delay` / `task.apply_async`), so its
queue, time limits and other options are exactly the task's own; each app imports its tasks
in `AppConfig.ready()`, so every process (web too) has them registered. A name that is not
registered here still goes out, through `app.send_task`, to the default queue.

A broker that is down never fails the caller: the error goes to `on_error` (or the log), and
the periodic sweeps of each app pick up what was not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

OnError = Callable[[Exception], None]


def _report(task_name: str, exc: Exception, on_error: OnError | None) -> None:
    if on_error is not None:
        on_error(exc)
    else:
        logger.warning("task.enqueue_failed task=%s", task_name, exc_info=exc)


def send(task_name: str, *args: Any, on_error: OnError | None = None) -> None:
    """Publish one `task_name(*args)` message now."""
    app = current_app
    try:
        task = app.tasks.get(task_name)  # `tasks` finalizes the app: shared tasks are bound
        if task is not None:
            task.delay(*args)
        else:
            app.send_task(task_name, args=args)
    except Exception as exc:  # noqa: BLE001 - the sweeps are the durable path
        _report(task_name, exc, on_error)


def send_many(
    task_name: str, args_list: Iterable[Sequence[Any]], *, on_error: OnError | None = None
) -> None:
    """Publish one `task_name` message per argument tuple now, over one broker connection."""
    app = current_app
    try:
        task = app.tasks.get(task_name)
        with app.producer_or_acquire() as producer:
            for args in args_list:
                if task is not None:
                    task.apply_async(tuple(args), producer=producer)
                else:
                    app.send_task(task_name, args=tuple(args), producer=producer)
    except Exception as exc:  # noqa: BLE001 - the sweeps are the durable path
        _report(task_name, exc, on_error)


def enqueue_on_commit(task_name: str, *args: Any, on_error: OnError | None = None) -> None:
    """Send `task_name(*args)` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(task_name, *args, on_error=on_error))


def enqueue_many_on_commit(
    task_name: str, args_list: Iterable[Sequence[Any]], *, on_error: OnError | None = None
) -> None:
    """Send one `task_name` message per argument tuple after commit, in one batch."""
    batch = [tuple(args) for args in args_list]
    if batch:
        transaction.on_commit(lambda: send_many(task_name, batch, on_error=on_error))
