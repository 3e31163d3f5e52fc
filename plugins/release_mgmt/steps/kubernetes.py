"""The ``kubernetes`` step: set a container's image in a Deployment and wait for the rollout.

Talks to the cluster through the cncf-kubernetes provider's KubernetesHook and connection. The
image running before the change is remembered first, so a rollback step of the same type
without ``image`` restores it. A rollout is complete when the controller observed the new
generation and every replica is updated and available; one that exceeds its progress deadline
(condition Progressing=False, reason ProgressDeadlineExceeded) or the step's own time limit fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome


class KubernetesStep(StepModel):
    """Set ``image`` on ``container`` of Deployment ``namespace/deployment`` and wait until it rolled out."""

    type: Literal["kubernetes"]
    connection: str = Field(default="kubernetes_default", description="Airflow Kubernetes connection id.")
    namespace: str = Field(min_length=1)
    deployment: str = Field(min_length=1)
    container: str = Field(min_length=1)
    image: str | None = Field(
        default=None,
        description="New image, templated (e.g. registry/app:{{ version }}); in a rollback step, "
        "leave it out to restore the image that ran before the deploy.",
    )
    timeout_seconds: float = Field(default=600, gt=0, le=86400, description="Time limit of the rollout.")
    poll_seconds: float = Field(default=2, gt=0, le=300)

    templated: ClassVar[tuple[str, ...]] = ("connection", "namespace", "deployment", "container", "image")

    @property
    def target(self) -> str:
        return f"deployment {self.namespace}/{self.deployment} container {self.container}"

    def describe(self) -> str:
        return f"set {self.target} to {self.image or 'the image before the deploy'} and wait for the rollout"

    def _apps(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.connection).apps_v1_client

    def run(self, ctx: StepContext, sleep: Callable[[float], None] = time.sleep) -> StepOutcome:
        key = f"kubernetes:{self.namespace}/{self.deployment}/{self.container}"
        try:
            apps = self._apps()
            current = self._image(apps.read_namespaced_deployment(self.deployment, self.namespace))
            image = self.image
            if image is None:
                image = ctx.recall(key)
                if not image:
                    raise StepError(
                        f"{ctx.action} of {ctx.component} in {ctx.environment}: no image recorded for "
                        f"{self.target} before the deploy; set image in the rollback step"
                    )
            if ctx.action == "deploy":
                ctx.remember(key, current)
            ctx.log.info("%s: %s -> %s", self.target, current, image)
            body = {"spec": {"template": {"spec": {"containers": [{"name": self.container, "image": image}]}}}}
            generation = apps.patch_namespaced_deployment(self.deployment, self.namespace, body).metadata.generation
            left = (  # a rollout cannot be half-undone: it is recorded and left to Kubernetes
                f"rollout of {image} left to Kubernetes (it keeps going or rolls back by its own rules); the next "
                "run's current_version check sees what it became"
            )
            with ctx.stopper.while_running(f"{self.target}", lambda: left):
                self._wait(apps, generation, ctx, sleep)
        except StepError:
            raise
        except Exception as exc:
            raise StepError(
                f"{ctx.action} of {ctx.component} in {ctx.environment}: {self.target}: {_explain(exc, self.connection)}"
            ) from exc
        return StepOutcome(output=image)

    def _image(self, deployment: Any) -> str:
        for container in deployment.spec.template.spec.containers:
            if container.name == self.container:
                return str(container.image)
        names = ", ".join(c.name for c in deployment.spec.template.spec.containers)
        raise StepError(f"{self.target}: no such container; the deployment has: {names}")

    def _wait(self, apps: Any, generation: int, ctx: StepContext, sleep: Callable[[float], None]) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            dep = apps.read_namespaced_deployment(self.deployment, self.namespace)
            status, wanted = dep.status, dep.spec.replicas if dep.spec.replicas is not None else 1
            for cond in status.conditions or []:
                if cond.type == "Progressing" and cond.status == "False" and cond.reason == "ProgressDeadlineExceeded":
                    raise StepError(
                        f"{ctx.action} of {ctx.component} in {ctx.environment}: rollout of {self.target} "
                        f"exceeded its progress deadline: {cond.message or ''}".rstrip(": ")
                    )
            updated, available = status.updated_replicas or 0, status.available_replicas or 0
            observed = status.observed_generation or 0
            ctx.log.info(
                "rollout: generation %s/%s, updated %s/%s, available %s/%s",
                observed,
                generation,
                updated,
                wanted,
                available,
                wanted,
            )
            if observed >= generation and updated == wanted and available == wanted:
                return
            if time.monotonic() + self.poll_seconds > deadline:
                raise StepError(
                    f"{ctx.action} of {ctx.component} in {ctx.environment}: rollout of {self.target} "
                    f"did not complete within {self.timeout_seconds:g}s (updated {updated}/{wanted}, "
                    f"available {available}/{wanted})"
                )
            sleep(self.poll_seconds)


def _explain(exc: Exception, connection: str) -> str:
    from airflow.sdk.exceptions import AirflowNotFoundException

    status = getattr(exc, "status", None)
    if isinstance(exc, AirflowNotFoundException):
        return f"no Airflow connection {connection!r}; add a Kubernetes connection with this id"
    if status == 404:
        return "not found (check namespace and deployment name)"
    if status in (401, 403):
        return f"HTTP {status}: not allowed; check the connection's credentials and the RBAC rules"
    if status is not None:
        return f"HTTP {status}: {getattr(exc, 'reason', '')} {str(getattr(exc, 'body', ''))[:200]}".strip()
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"cannot reach the cluster API ({text}); check the connection's kube_config and server address"
