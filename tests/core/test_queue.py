"""core.queue: services enqueue Celery work by task name, after commit, without failing."""

from __future__ import annotations

import pytest
from celery import current_app

from core import queue


@pytest.fixture
def sent(monkeypatch):
    """Record what the registered task (or send_task, for unknown names) would publish."""
    from core.tasks import ping

    calls: list[tuple] = []
    monkeypatch.setattr(ping, "delay", lambda *args: calls.append(("delay", args)))
    monkeypatch.setattr(
        ping, "apply_async", lambda args, producer=None: calls.append(("apply_async", args))
    )
    monkeypatch.setattr(
        current_app,
        "send_task",
        lambda name, args=(), producer=None: calls.append(("send_task", name, args)),
    )
    return calls


@pytest.mark.django_db
def test_enqueue_on_commit__sent_by_the_registered_task_after_commit(
    sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queue.enqueue_on_commit("core.ping", "t1")
    assert sent == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert sent == [("delay", ("t1",))]


@pytest.mark.django_db
def test_enqueue_many_on_commit__one_message_per_args(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_many_on_commit("core.ping", [("a",), ("b",)])
        queue.enqueue_many_on_commit("core.ping", [])
    assert sent == [("apply_async", ("a",)), ("apply_async", ("b",))]


@pytest.mark.django_db
def test_enqueue_on_commit__unregistered_name__sent_by_name(
    sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_on_commit("elsewhere.task", 1, 2)
    assert sent == [("send_task", "elsewhere.task", (1, 2))]


@pytest.mark.django_db
def test_enqueue_on_commit__broker_down__on_error_called_not_raised(
    monkeypatch, django_capture_on_commit_callbacks
):
    from core.tasks import ping

    def down(*args):
        raise ConnectionError("broker down")

    monkeypatch.setattr(ping, "delay", down)
    errors: list[Exception] = []
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_on_commit("core.ping", "t", on_error=errors.append)
    assert [str(e) for e in errors] == ["broker down"]


def test_task_names_used_by_services__are_registered():
    from comms import services
    from support import services as support_services

    assert services.SEND_DELIVERY_TASK in current_app.tasks
    assert support_services.CHECK_DOC_LINK_TASK in current_app.tasks
