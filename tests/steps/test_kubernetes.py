"""The kubernetes step: the real Kubernetes client and provider hook over HTTP against a local apps/v1 server.

Against a real cluster (kind or k3d): create an Airflow connection ``k8s_test`` whose kube_config
is your cluster's, create a Deployment, and run the same steps (see README, Kubernetes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext


def _ctx(tmp_path: Path, action: str = "deploy", store: dict | None = None) -> StepContext:
    store = {} if store is None else store
    return StepContext(
        release="shop",
        environment="prod",
        component="api",
        version="1.3.0",
        action=action,
        workdir=str(tmp_path),
        log=logging.getLogger("test.k8s"),
        remember=store.__setitem__,
        recall=store.get,
    )


def _step(**fields):
    return STEP_ADAPTER.validate_python(
        {
            "type": "kubernetes",
            "connection": "k8s_test",
            "namespace": "shop",
            "deployment": "api",
            "container": "app",
            "poll_seconds": 0.1,
            **fields,
        }
    )


def test_sets_image_waits_for_rollout_and_rollback_restores(kubernetes, tmp_path: Path) -> None:
    """Deploy patches the image and waits; a rollback step without image restores the one recorded before."""
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    store: dict = {}
    _step(image="registry/api:1.3.0").run(_ctx(tmp_path, "deploy", store))
    assert kubernetes.image("shop", "api") == "registry/api:1.3.0"
    assert store == {"kubernetes:shop/api/app": "registry/api:1.2.0"}
    assert kubernetes.patches[0] == {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry/api:1.3.0"}]}}}
    }
    _step().run(_ctx(tmp_path, "rollback", store))
    assert kubernetes.image("shop", "api") == "registry/api:1.2.0"


def test_progress_deadline_exceeded_fails(kubernetes, tmp_path: Path) -> None:
    """A rollout that never completes fails when the Deployment reports ProgressDeadlineExceeded."""
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    kubernetes.stuck_images.add("registry/api:9.9.9")
    with pytest.raises(StepError, match="exceeded its progress deadline"):
        _step(image="registry/api:9.9.9", timeout_seconds=10).run(_ctx(tmp_path))


def test_own_time_limit(kubernetes, tmp_path: Path) -> None:
    """Without a deadline condition, the step's own timeout_seconds ends the wait."""
    kubernetes.deadline_seconds = 60
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    kubernetes.stuck_images.add("registry/api:9.9.9")
    with pytest.raises(StepError, match=r"did not complete within 0.5s \(updated 1/3, available 2/3\)"):
        _step(image="registry/api:9.9.9", timeout_seconds=0.5).run(_ctx(tmp_path))


def test_missing_deployment_and_container(kubernetes, tmp_path: Path) -> None:
    """A wrong name says what was not found."""
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    with pytest.raises(StepError, match="not found"):
        _step(deployment="nope", image="x:1").run(_ctx(tmp_path))
    with pytest.raises(StepError, match="no such container; the deployment has: app"):
        _step(container="sidecar", image="x:1").run(_ctx(tmp_path))


def test_rollback_without_recorded_image(kubernetes, tmp_path: Path) -> None:
    """A rollback with no image and nothing recorded says what to set."""
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    with pytest.raises(StepError, match="no image recorded"):
        _step().run(_ctx(tmp_path, "rollback"))


def test_bad_token_and_unknown_connection(kubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused token is reported as not allowed (without the token); an unknown connection names itself."""
    kubernetes.add("shop", "api", "registry/api:1.2.0")
    kubernetes.token = "rotated"
    with pytest.raises(StepError, match="HTTP 401: not allowed") as info:
        _step(image="x:1").run(_ctx(tmp_path))
    assert "t0ken" not in str(info.value)
    with pytest.raises(StepError, match="no Airflow connection 'nope'"):
        _step(connection="nope", image="x:1").run(_ctx(tmp_path))
