"""The Helm chart at helm/outpost, rendered offline and checked.

No cluster and no helm binary: helm-python-sdk renders with Helm's own Go
library and kubernetes-validate checks every manifest against the Kubernetes
1.33 OpenAPI schemas (strict: unknown fields fail). Each values set is
rendered once per module. These tests need neither Django nor a database.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "outpost"
PRODUCTION_VALUES = CHART / "ci" / "values-production.yaml"
KUBE_VERSION = "1.33.0"
RELEASE = "outpost"
NAMESPACE = "outpost"
SECRET = "outpost-secrets"
BASE_VALUES: dict[str, Any] = {"existingSecret": SECRET}
# Kinds whose schemas come from CRDs, not from Kubernetes itself.
CRD_KINDS = {"ServiceMonitor"}

Doc = dict[str, Any]


def _render(chart: helm.Chart, values: dict[str, Any], **options: Any) -> list[Doc]:
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, **options)
    return [doc for path, text in out.items() if path.endswith(".yaml") for doc in yaml.safe_load_all(text) if doc]


def _with(values: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    merged = copy.deepcopy(values)
    merged.update(overrides)
    return merged


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _component(docs: list[Doc], kind: str, component: str) -> list[Doc]:
    return [d for d in _of_kind(docs, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]


def _one(items: list[Doc]) -> Doc:
    assert len(items) == 1, [d["metadata"]["name"] for d in items]
    return items[0]


def _web(docs: list[Doc]) -> Doc:
    return _one(_component(docs, "Deployment", "web"))


def _workers(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["labels"]["outpost/worker"]: d for d in _component(docs, "Deployment", "worker")}


def _migration_job(docs: list[Doc]) -> Doc:
    return _one(_of_kind(docs, "Job"))


def _pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    ]


def _container(doc: Doc) -> Doc:
    return _one(doc["spec"]["template"]["spec"]["containers"])


def _arg_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def production_values() -> dict[str, Any]:
    with PRODUCTION_VALUES.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def default_docs(chart) -> list[Doc]:
    return _render(chart, BASE_VALUES)


@pytest.fixture(scope="module")
def production_docs(chart, production_values) -> list[Doc]:
    return _render(chart, production_values, revision=7)


@pytest.fixture(params=["default", "production"])
def rendered(request, chart, production_values) -> tuple[list[Doc], dict[str, Any]]:
    """(manifests, effective values) for each values set, rendered once."""
    if request.param == "default":
        return request.getfixturevalue("default_docs"), chart.merge_values(BASE_VALUES)
    return request.getfixturevalue("production_docs"), chart.merge_values(production_values)


# -- lint and schema ------------------------------------------------------------------


def test_lint_has_no_errors(production_values):
    for values in (None, BASE_VALUES, production_values):
        report = helm.lint(str(CHART), values)
        assert not report["errors"], report
        assert not [m for m in report["messages"] if m["severity"] >= 3], report


def test_manifests_pass_strict_kubernetes_validation(rendered):
    docs, _ = rendered
    assert docs
    for doc in docs:
        assert doc["kind"] not in CRD_KINDS
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_render_without_existing_secret_fails_with_a_clear_message(chart):
    for values in ({}, {"existingSecret": ""}):
        with pytest.raises(helm.HelmRenderError, match="existingSecret is required"):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    "values",
    [
        {"existingSecret": 42},
        {"existingSecret": SECRET, "wrokers": []},
        {"existingSecret": SECRET, "web": {"replica": 3}},
        {"existingSecret": SECRET, "beat": {"replicas": 2}},
        {"existingSecret": SECRET, "workers": [{"name": "x"}]},
        {"existingSecret": SECRET, "workers": [{"name": "Bad_Name", "queues": ["q"]}]},
        {"existingSecret": SECRET, "workers": [{"name": "x", "queues": ["q"], "queue": "q"}]},
    ],
)
def test_schema_rejects_typos_and_bad_types(chart, values):
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_duplicate_worker_names_fail(chart):
    workers = [{"name": "twin", "queues": ["a"]}, {"name": "twin", "queues": ["b"]}]
    with pytest.raises(helm.HelmRenderError, match="used twice"):
        chart.render(_with(BASE_VALUES, workers=workers), name=RELEASE, namespace=NAMESPACE)


# -- web --------------------------------------------------------------------------------


def test_web_probes(rendered):
    docs, _ = rendered
    container = _container(_web(docs))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_web_probes_send_a_host_that_allowed_hosts_accepts(rendered):
    # The kubelet would send the pod IP as Host, which host validation rejects.
    docs, _ = rendered
    container = _container(_web(docs))
    allowed = _one(_of_kind(docs, "ConfigMap"))["data"]["ALLOWED_HOSTS"].split(",")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
        assert headers["Host"] in allowed, (probe, headers, allowed)


def test_web_runs_the_image_default_command(rendered):
    docs, _ = rendered
    container = _container(_web(docs))
    assert "command" not in container
    assert "args" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PORT"] == "8000"
    assert int(env["WEB_CONCURRENCY"]) >= 1


def test_web_service_and_topology_spread(rendered):
    docs, _ = rendered
    service = _one(_of_kind(docs, "Service"))
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    web = _web(docs)
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    spread = web["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} >= {"kubernetes.io/hostname"}
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_web_hpa_and_pdb(production_docs, production_values):
    web = _web(production_docs)
    assert "replicas" not in web["spec"], "the HPA owns replicas"
    hpa = _one(
        [
            h
            for h in _of_kind(production_docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"] == web["metadata"]["name"]
        ]
    )
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["minReplicas"] == production_values["web"]["autoscaling"]["minReplicas"]
    pdb = _one(_component(production_docs, "PodDisruptionBudget", "web"))
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_default_web_has_pdb_and_fixed_replicas(default_docs):
    assert _web(default_docs)["spec"]["replicas"] == 2
    assert _component(default_docs, "PodDisruptionBudget", "web")
    assert not _component(default_docs, "HorizontalPodAutoscaler", "web")


def test_ingress_serves_hosts_and_wildcard_with_tls(production_docs, production_values):
    ingress = _one(_of_kind(production_docs, "Ingress"))
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    expected = production_values["ingress"]["hosts"] + [production_values["ingress"]["wildcardHost"]]
    assert hosts == expected
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert set(ingress["spec"]["tls"][0]["hosts"]) == set(expected)
    config = _one(_of_kind(production_docs, "ConfigMap"))["data"]
    assert config["OUTPOST_BASE_DOMAIN"] == "outpost.example.com"
    assert ".outpost.example.com" in config["ALLOWED_HOSTS"].split(",")


# -- workers and beat -------------------------------------------------------------------


def test_one_worker_deployment_per_entry_with_its_queues(rendered):
    docs, values = rendered
    workers = _workers(docs)
    assert list(workers) == [w["name"] for w in values["workers"]]
    for entry in values["workers"]:
        args = _container(workers[entry["name"]])["args"]
        assert args[:4] == ["celery", "-A", "config", "worker"]
        assert _arg_after(args, "-Q") == ",".join(entry["queues"])
        assert _arg_after(args, "--hostname") == f"{entry['name']}@%h"
        expected = entry.get("concurrency", values["workerDefaults"]["concurrency"])
        assert _arg_after(args, "--concurrency") == str(expected)
        assert _arg_after(args, "-O") == "fair"


def test_default_worker_groups_consume_every_queue_the_application_routes_to(chart):
    from config.settings.celery import ALL_QUEUES

    queues = {w["name"]: w["queues"] for w in chart.values["workers"]}
    assert queues["platform"] == ["platform"]
    consumed = [queue for group in queues.values() for queue in group]
    assert sorted(consumed) == sorted(ALL_QUEUES), "every queue has exactly one worker group"


def test_every_worker_has_a_celery_ping_probe(rendered):
    docs, _ = rendered
    for name, worker in _workers(docs).items():
        container = _container(worker)
        for probe in ("livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:2] == ["sh", "-c"], command
            script = command[2]
            assert "celery -A config inspect ping" in script, script
            assert f'-d "{name}@${{HOSTNAME}}"' in script, script
            assert container[probe]["timeoutSeconds"] >= 10


def test_worker_entries_override_defaults_key_by_key(production_docs, production_values):
    workers = _workers(production_docs)
    acme = _container(workers["dedicated-acme"])
    assert acme["livenessProbe"]["periodSeconds"] == 120
    defaults = production_values["workerDefaults"]
    assert acme["livenessProbe"]["failureThreshold"] == 3
    assert acme["args"][-2:] == defaults["extraArgs"]
    enterprise = _container(workers["tenant-enterprise"])
    assert enterprise["resources"]["requests"]["cpu"] == "500m"
    assert workers["tenant-free"]["spec"].get("replicas") is None  # autoscaled
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in _component(production_docs, "HorizontalPodAutoscaler", "worker")
    }
    assert scaled == {"outpost-worker-tenant-free", "outpost-worker-tenant-paid"}


def test_worker_replicas_zero_is_kept(chart):
    docs = _render(chart, _with(BASE_VALUES, workers=[{"name": "idle", "queues": ["q"], "replicas": 0}]))
    assert _workers(docs)["idle"]["spec"]["replicas"] == 0


def test_workers_have_pdbs(rendered):
    docs, _ = rendered
    pdbs = {p["metadata"]["name"] for p in _component(docs, "PodDisruptionBudget", "worker")}
    assert pdbs == {w["metadata"]["name"] for w in _workers(docs).values()}


def test_exactly_one_beat_with_recreate(rendered):
    docs, _ = rendered
    beat = _one(_component(docs, "Deployment", "beat"))
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    args = _container(beat)["args"]
    assert args[:4] == ["celery", "-A", "config", "beat"]
    assert _arg_after(args, "--schedule") == "/tmp/celerybeat-schedule"
    assert not _component(docs, "PodDisruptionBudget", "beat")
    assert not _component(docs, "HorizontalPodAutoscaler", "beat")


# -- migrations -------------------------------------------------------------------------


def _migration_script(job: Doc) -> str:
    return " ".join(_container(job)["args"])


def test_migration_job_is_a_hook_by_default(default_docs):
    job = _migration_job(default_docs)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "helm.sh/hook-weight" in annotations
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    script = _migration_script(job)
    assert "python manage.py migrate_schemas --shared --noinput" in script
    assert "python manage.py migrate_tenants --parallel 4" in script
    assert script.index("migrate_schemas") < script.index("migrate_tenants")
    spec = job["spec"]
    assert spec["backoffLimit"] >= 0
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_migration_hook_carries_its_settings_inline(default_docs):
    # A pre-install hook runs before the release's ConfigMap exists.
    container = _container(_migration_job(default_docs))
    assert not [s for s in container["envFrom"] if "configMapRef" in s]
    env = {e["name"]: e.get("value") for e in container["env"]}
    config = _one(_of_kind(default_docs, "ConfigMap"))["data"]
    assert env.items() >= config.items()


def test_migration_job_is_plain_when_not_a_hook(chart, production_docs):
    job = _migration_job(production_docs)
    assert not any(k.startswith("helm.sh/hook") for k in job["metadata"].get("annotations", {}))
    assert job["metadata"]["name"] == "outpost-migrate-7"
    assert "migrate_tenants --parallel 8" in _migration_script(job)

    docs = _render(chart, _with(BASE_VALUES, migrations={"asHook": False}), revision=3)
    job = _migration_job(docs)
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["metadata"]["name"] == "outpost-migrate-3"


# -- security ---------------------------------------------------------------------------


def test_every_pod_is_restricted(rendered):
    docs, _ = rendered
    pods = _pod_specs(docs)
    assert len(pods) >= 3
    for where, pod in pods:
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True, where
        assert ctx["runAsUser"] == 10001, where
        assert "fsGroup" in ctx, where
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
        assert tmp, where
        assert "emptyDir" in tmp[0], where
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
            assert container.get("resources", {}).get("requests"), where


def test_secret_is_referenced_and_never_rendered(rendered):
    docs, values = rendered
    assert not _of_kind(docs, "Secret")
    for where, pod in _pod_specs(docs):
        for container in pod["containers"]:
            refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert refs == [values["existingSecret"]], where


def test_service_account_does_not_mount_a_token(default_docs):
    account = _one(_of_kind(default_docs, "ServiceAccount"))
    assert account["automountServiceAccountToken"] is False


# -- configuration ----------------------------------------------------------------------


def test_config_map_settings(default_docs):
    config = _one(_of_kind(default_docs, "ConfigMap"))["data"]
    assert config["DJANGO_SETTINGS_MODULE"] == "config.settings.prod"
    assert config["LOG_FORMAT"] == "json"
    assert config["SENTRY_RELEASE"] == "0.1.0"  # the image tag (appVersion)
    assert config["RATELIMIT_FAIL_OPEN"] == "false"
    for key in ("ALLOWED_HOSTS", "OUTPOST_BASE_DOMAIN", "LOG_LEVEL", "SENTRY_ENVIRONMENT", "CSRF_TRUSTED_ORIGINS"):
        assert key in config
    assert all(isinstance(v, str) for v in config.values())
    for where, pod in _pod_specs(default_docs):
        if "Job/" in where:
            continue
        refs = [s["configMapRef"]["name"] for s in pod["containers"][0]["envFrom"] if "configMapRef" in s]
        assert refs == ["outpost-config"], where


def test_sentry_release_follows_the_image_tag(chart):
    docs = _render(chart, _with(BASE_VALUES, image={"tag": "2024.06.1"}))
    assert _one(_of_kind(docs, "ConfigMap"))["data"]["SENTRY_RELEASE"] == "2024.06.1"
    assert _container(_web(docs))["image"] == "outpost:2024.06.1"


def _checksums(docs: list[Doc]) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for d in _of_kind(docs, "Deployment")
    }


def test_config_checksum_rolls_pods_when_config_changes(chart, default_docs):
    before = _checksums(default_docs)
    assert len(set(before.values())) == 1
    assert _checksums(_render(chart, BASE_VALUES)) == before
    changed = _checksums(_render(chart, _with(BASE_VALUES, config={"logLevel": "DEBUG"})))
    assert changed.keys() == before.keys()
    for name in before:
        assert changed[name] != before[name], name
    extra = _checksums(_render(chart, _with(BASE_VALUES, config={"extra": {"FOO": "bar"}})))
    assert set(extra.values()).isdisjoint(before.values())


# -- metrics ----------------------------------------------------------------------------


def test_service_monitor_only_when_enabled(chart, default_docs, production_docs):
    assert not _of_kind(default_docs, "ServiceMonitor")
    assert not _of_kind(production_docs, "ServiceMonitor")
    docs = _render(chart, _with(BASE_VALUES, serviceMonitor={"enabled": True, "labels": {"release": "prom"}}))
    monitor = _one(_of_kind(docs, "ServiceMonitor"))
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    endpoint = _one(monitor["spec"]["endpoints"])
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"] == {"name": SECRET, "key": "METRICS_TOKEN"}
    service = _one(_of_kind(docs, "Service"))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


# -- labels -----------------------------------------------------------------------------


def test_standard_labels_on_every_object(rendered):
    docs, _ = rendered
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert labels.get(key), (doc["kind"], doc["metadata"]["name"], key)
        assert doc["metadata"]["namespace"] == NAMESPACE
