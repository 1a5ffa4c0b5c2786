"""`environments/<env>.yaml`: the schema, loaded and validated with errors naming file, field and fix.

The schema is declared once with pydantic (unknown keys are errors, so a typo never silently turns
a setting off); cross-field checks (dependsOn, cycles, paths inside the repository, overlays that
exist) run after it. See README "Configuration reference" for every field.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal


from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reconciler.errors import ConfigError
from reconciler.yamlfile import load_yaml_file
from reconciler.graph import GraphError, check_graph

_ONE_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")  # `90`, `5m`, `5 m`
_GO_DURATION = re.compile(r"^\s*((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_STACK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def leaves_repository(path: str) -> bool:
    """An absolute path, or one with `..`: written to reach outside the repository it names a place in."""
    pure = PurePosixPath(path)
    return pure.is_absolute() or ".." in pure.parts


def parse_duration(value: object) -> float:
    """`90` (seconds), `90s`, `5m`, `1h`, `250ms`, and Go's compound durations as Flux and Argo CD write them
    (`1m0s`, `1h30m`) -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    single = _ONE_UNIT.match(text)
    if single:
        return float(single.group(1)) * _UNIT_SECONDS[single.group(2) or "s"]
    if not _GO_DURATION.match(text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or 1h30m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class VerifyConfig(_Strict):
    mode: Literal["head"] = "head"
    keys: str = Field(..., description="trusted public keys, OpenPGP (*.asc, *.gpg) and SSH (*.pub): a folder, "
                                       "or `secret:<namespace>/<name>` whose data entries are the key files")


class SourceConfig(_Strict):
    url: str = Field("", description="Git URL or local path; empty = the repository holding this file")
    branch: str = "main"
    path: str = Field("", description="subdirectory of the repository that stack paths are relative to")
    environment: str | None = Field(None, description="the environment file in the source repository whose stacks, "
                                                      "sync and policy settings each pass follows at its commit")
    verify: VerifyConfig | None = Field(None, description="refuse a head commit not signed by a trusted key")
    timeout_s: float = Field(120.0, alias="timeout", description="a clone, fetch or ls-remote that takes longer fails")

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("path", "environment")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value and leaves_repository(value):
            raise ValueError(f"{value!r} leads outside the repository; use a path inside it, without '..'")
        return value


class ClusterConfig(_Strict):
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = Field(False, alias="inCluster")


class MassPruneConfig(_Strict):
    """When a pass refuses to prune: more than `maxPercent` of a stack's objects, and at least `minObjects`."""

    max_percent: float = Field(50.0, alias="maxPercent", ge=0, le=100,
                               description="a pass pruning more than this share of a stack's objects stops (100: off)")
    min_objects: int = Field(5, alias="minObjects", ge=1, description="fewer prunes than this are never refused")


class SyncWindowConfig(_Strict):
    """An allow or deny window (Argo CD's `syncWindows`): from each cron start, for `duration`, in `timeZone`."""

    kind: Literal["allow", "deny"]
    schedule: str = Field(..., description="cron expression (5 fields) of each window's start")
    duration_s: float = Field(..., alias="duration", gt=0, description="how long each window lasts (1h, 30m)")
    time_zone: str = Field("UTC", alias="timeZone", description="IANA time zone the schedule is read in")
    manual_sync: bool = Field(False, alias="manualSync",
                              description="a manual sync (CLI, API) may go through while this window holds passes")
    stacks: list[str] = Field(default_factory=list, description="the stacks it covers (empty: every stack)")

    @field_validator("duration_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _readable(self) -> "SyncWindowConfig":
        cron_trigger(self.schedule, self.time_zone)
        return self


@functools.lru_cache(maxsize=256)
def cron_trigger(schedule: str, time_zone: str):
    """(Parsed once per schedule and zone: windows are asked per stack, per pass and per edge.)
    APScheduler's trigger for a 5-field cron expression in a time zone, read as cron reads it (Argo CD's
    robfig/cron too): days of the week counted from Sunday (0 or 7), and a restricted day of the month OR a
    restricted day of the week. ValueError naming what is wrong."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r} (use an IANA name such as Europe/Berlin)") from None
    try:
        fields = schedule.split()
        if len(fields) != 5:
            raise ValueError(f"it has {len(fields)} fields")
        minute, hour, day, month, weekday = [("*" if f == "?" else f) for f in fields]
        weekdays = crontab_weekdays(weekday)
        if day != "*" and weekday != "*":  # cron runs on either day, APScheduler only where both hold
            return OrTrigger([CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=zone),
                              CronTrigger(minute=minute, hour=hour, month=month, day_of_week=weekdays, timezone=zone)])
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays, timezone=zone)
    except ValueError as exc:
        raise ValueError(f"schedule {schedule!r} is not a 5-field cron expression: {exc}") from None


_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_weekdays(field: str) -> str:
    """A cron day-of-week field as APScheduler 3 reads one: the days by name. Cron counts from Sunday (0, and
    7), APScheduler from Monday, and its `CronTrigger.from_crontab` passes the numbers on unchanged, so `1-5`
    (Monday to Friday) opened windows Tuesday to Saturday. Names mean the same day to both."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} in {field!r} is not a positive number")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (_cron_weekday(end, field) for end in span.split("-", 1))
        else:  # `N/step`: from N to Saturday, as cron reads it
            first = _cron_weekday(span, field)
            last = 6 if step_text else first
        if first > last:
            raise ValueError(f"day-of-week range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_WEEKDAYS[day] for day in sorted(days))


def _cron_weekday(token: str, field: str) -> int:
    name = token.strip().lower()
    if name in _CRON_WEEKDAYS:
        return _CRON_WEEKDAYS.index(name)
    if name.isdigit() and int(name) <= 7:
        return int(name)
    raise ValueError(f"day of week {token!r} in {field!r} is not 0-7 or sun-sat")


class SyncConfig(_Strict):
    interval_s: float = Field(60.0, alias="interval")
    prune: bool = True
    correct_drift: bool = Field(True, alias="correctDrift")
    wait_for_health: bool = Field(True, alias="waitForHealth")
    health_timeout_s: float = Field(300.0, alias="healthTimeout")
    render_timeout_s: float = Field(120.0, alias="renderTimeout",
                                    description="a kustomize build taking longer fails its stack (a hung remote base)")
    service_account: str | None = Field(None, alias="serviceAccountName",
                                        description="default `<namespace>/<name>` every stack is applied as")
    mass_prune: MassPruneConfig = Field(MassPruneConfig(), alias="massPrune",
                                        description="the mass-prune guard: refuse a pass that would delete most of a stack")
    allow_remote_charts: bool = Field(False, alias="allowRemoteCharts",
                                      description="a helmCharts entry whose chart is not vendored may be pulled "
                                                  "from its repo at render time (uncached)")
    default_namespace: str | None = Field(None, alias="defaultNamespace",
                                          description="namespace of namespaced objects that name none (every stack)")
    auto_rollback: bool = Field(False, alias="autoRollback",
                                description="a stack failing its health gate after a Git change goes back to its "
                                            "last healthy commit (with its dependents) and is pinned there")

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        return StackConfig._service_account(value)

    @field_validator("interval_s", "health_timeout_s", "render_timeout_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class RollbackConfig(_Strict):
    history: int = Field(10, ge=1, le=50, description="commits kept per stack (commit, result, health)")
    unpin_on_new_commit: bool = Field(False, alias="unpinOnNewCommit",
                                      description="a new commit on the branch lifts a rollback's pin")


class PolicyConfig(_Strict):
    mode: Literal["enforce", "warn", "off"] | None = None
    directory: str = "policies"

    @field_validator("mode", mode="before")
    @classmethod
    def _unquoted_off(cls, value: Any) -> Any:
        """PyYAML reads YAML 1.1, where an unquoted `off` is the boolean false: `mode: off`, as the README and
        the error that asks for it write it, means off (it was refused as "should be 'enforce', 'warn' or 'off'")."""
        return "off" if value is False else value


class SecretRefConfig(_Strict):
    name: str
    namespace: str = Field("healthflow-system", description="where the Secret lives (the daemon's namespace)")


class DecryptionConfig(_Strict):
    """Where the private keys for SOPS-encrypted Secrets are (Flux's `spec.decryption`); local only."""

    provider: Literal["sops"] = "sops"
    secret_ref: SecretRefConfig | None = Field(None, alias="secretRef",
                                               description="a Secret whose `*.agekey` / `*.asc` entries are the keys")
    key_file: str | None = Field(None, alias="keyFile",
                                 description="a file of age identities and/or armored PGP secret keys (relative "
                                             "to the environment file)")

    @model_validator(mode="after")
    def _one_source(self) -> "DecryptionConfig":
        if (self.secret_ref is None) == (self.key_file is None):
            raise ValueError("give exactly one of secretRef and keyFile")
        return self


class CommitStatusConfig(_Strict):
    """Where the daemon sets a status on each commit it applied (local only: the token goes there)."""

    provider: Literal["github", "gitlab", "gitea"]
    repository: str = Field(..., description="owner/name (GitLab: the project's path, group/project)")
    api_url: str = Field("", alias="apiUrl", description="API base; default https://api.github.com or "
                                                         "https://gitlab.com; required for Gitea")
    context: str = Field("", description="the status's name; default healthflow/<env>@<cluster context>")

    @model_validator(mode="after")
    def _api(self) -> "CommitStatusConfig":
        if not self.api_url:
            default = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}.get(self.provider)
            if default is None:
                raise ValueError("apiUrl is required for gitea (e.g. https://gitea.example.com)")
            object.__setattr__(self, "api_url", default)
        return self


def compile_cel(text: str):
    """The compiled CEL program of one expression; ValueError naming the syntax error when it does not compile."""
    import cel  # the `common-expression-language` package: loaded only where health rules are used

    try:
        return cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(" ".join(str(exc).split())) from None


class HealthCheckExpr(_Strict):
    """Health of one custom kind as CEL expressions over the live object (Flux's `healthCheckExprs`)."""

    api_version: str = Field(..., alias="apiVersion", description="the kind's group and version; any version of the group matches")
    kind: str
    current: str = Field(..., description="holds when the object is ready")
    in_progress: str | None = Field(None, alias="inProgress", description="holds while it is still progressing")
    failed: str | None = Field(None, description="holds when it has failed")

    @model_validator(mode="after")
    def _compiles(self) -> "HealthCheckExpr":
        for name, text in (("current", self.current), ("inProgress", self.in_progress), ("failed", self.failed)):
            if text is not None:
                try:
                    compile_cel(text)
                except ValueError as exc:
                    raise ValueError(f"the {name} expression for {self.kind} ({self.api_version}) does not "
                                     f"compile: {exc}") from None
        return self


class StackConfig(_Strict):
    name: str
    path: str
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")
    health_timeout_s: float | None = Field(None, alias="healthTimeout")
    prune_namespaces: bool = Field(False, alias="pruneNamespaces")
    recreate_on_immutable: bool = Field(False, alias="recreateOnImmutable")
    allow_adoption: bool = Field(False, alias="allowAdoption")
    service_account: str | None = Field(None, alias="serviceAccountName",
                                        description="`<namespace>/<name>` the stack is applied as (impersonated)")
    default_namespace: str | None = Field(None, alias="defaultNamespace",
                                          description="namespace of the stack's namespaced objects that name none")

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") != 1 or not all(value.split("/"))):
            raise ValueError(f"{value!r} is not `<namespace>/<name>` of a ServiceAccount")
        return value

    @field_validator("health_timeout_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _STACK_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid stack name; use lowercase letters, digits and '-'")
        return value


class EnvironmentConfig(_Strict):
    name: str
    description: str = ""
    source: SourceConfig = SourceConfig()
    cluster: ClusterConfig = ClusterConfig()
    sync: SyncConfig = SyncConfig()
    policy: PolicyConfig = PolicyConfig()
    rollback: RollbackConfig = RollbackConfig()
    stacks: list[StackConfig] = Field(default_factory=list)
    decryption: DecryptionConfig | None = Field(None, description="keys for SOPS-encrypted Secrets (local only)")
    commit_status: CommitStatusConfig | None = Field(None, alias="commitStatus",
                                                     description="set a status on each applied commit (local only)")
    sync_windows: list[SyncWindowConfig] = Field(default_factory=list, alias="syncWindows",
                                                 description="when automatic passes may apply (allow/deny windows)")
    health_check_exprs: list[HealthCheckExpr] = Field(default_factory=list, alias="healthCheckExprs",
                                                     description="health rules per group/kind as CEL expressions")
    file: str = Field("", exclude=True, description="where this environment was loaded from")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        """The name is part of Kubernetes object names (the inventory ConfigMap, the writer Lease, labels)."""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
            raise ValueError(f"environment name {name!r} must be lowercase letters, digits and '-', start and end "
                             "with a letter or digit, at most 63 characters (it names the inventory and the lease)")
        return name

    def stack(self, name: str) -> StackConfig:
        for stack in self.stacks:
            if stack.name == name:
                return stack
        raise ConfigError(f"{self.file}: environment {self.name!r} has no stack {name!r}",
                          fix="use one of: " + ", ".join(s.name for s in self.stacks))

    @property
    def dependencies(self) -> dict[str, list[str]]:
        return {s.name: list(s.depends_on) for s in self.stacks}

    def service_account_user(self, stack: StackConfig) -> str | None:
        """The user a stack's requests impersonate: `system:serviceaccount:<ns>:<name>`, or None (the daemon's own)."""
        account = stack.service_account or self.sync.service_account
        return "system:serviceaccount:" + account.replace("/", ":") if account else None

    def default_namespace(self, stack: StackConfig) -> str | None:
        """Where a namespaced object that names no namespace goes (Flux's targetNamespace, for those only)."""
        return stack.default_namespace or self.sync.default_namespace

    def health_timeout(self, stack: StackConfig) -> float:
        return stack.health_timeout_s if stack.health_timeout_s is not None else self.sync.health_timeout_s

    def in_repository(self, path: str) -> str:
        """A path the file gives relative to `source.path` (a stack's, the policy folder) as the repository
        names it."""
        root = self.source.path.strip("/")
        return f"{root}/{path}" if root else path


def _field_path(location: tuple) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _fix_for(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or check its spelling against the configuration reference in README.md"
    if kind == "missing":
        return "add the field"
    return "see the configuration reference in README.md"


def _schema_error(file: Path, exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    field = _field_path(first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(f"{file}: field {field}: {first['msg']}{more}", fix=_fix_for(first))


def repository_root(file: Path) -> Path:
    """The repository that holds an environments file: the nearest parent with `.git`, else its parent's parent."""
    for parent in file.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return file.resolve().parent.parent


def _check_stack_paths(file: Path, env: EnvironmentConfig, repo_root: Path | None) -> None:
    names = [s.name for s in env.stacks]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"{file}: stack {sorted(duplicates)[0]!r} is declared twice", fix="give each stack a unique name")
    for index, stack in enumerate(env.stacks):
        where = f"{file}: stacks[{index}] ({stack.name}).path"
        if leaves_repository(stack.path) or not stack.path.strip():
            raise ConfigError(f"{where}: {stack.path!r} is outside the repository",
                              fix="use a path relative to the repository root, without '..'")
        if repo_root is not None:
            overlay = repo_root / env.source.path / stack.path
            if not (overlay / "kustomization.yaml").is_file() and not (overlay / "kustomization.yml").is_file():
                raise ConfigError(f"{where}: no kustomization.yaml in {stack.path!r}",
                                  fix="create the overlay or correct the path")


def _check_graph(file: Path, env: EnvironmentConfig) -> None:
    try:
        check_graph(env.dependencies)
    except GraphError as exc:
        raise ConfigError(f"{file}: stacks: {exc}", fix="remove the dependsOn entry that closes the cycle"
                          if exc.path else "list only stacks declared in this file in dependsOn") from exc


def load_environment(path: Path, *, check_overlays: bool = True) -> EnvironmentConfig:
    """Load and validate one environment. Overlays are checked in the local checkout when the source
    is this repository (a remote source is checked per commit at render time instead)."""
    raw = load_yaml_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with name, source, stacks", fix="see environments/dev.yaml")
    raw.setdefault("name", path.stem)
    following = (raw.get("source") or {}).get("environment") if isinstance(raw.get("source"), dict) else None
    if "stacks" not in raw and not following:
        raise ConfigError(f"{path}: field stacks: Field required",
                          fix="add the stacks, or follow an environment file in Git with source.environment")
    try:
        env = EnvironmentConfig.model_validate({**raw, "file": str(path)})
    except ValidationError as exc:
        raise _schema_error(path, exc) from exc
    _check_graph(path, env)
    local_repo = repository_root(path) if check_overlays and not env.source.url else None
    _check_stack_paths(path, env, local_repo)
    return env


def load_environments(directory: Path) -> list[EnvironmentConfig]:
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        raise ConfigError(f"{directory}: no environment files (*.yaml)", fix="add environments/<env>.yaml")
    envs = [load_environment(f) for f in files]
    names = [e.name for e in envs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{directory}: environment {name!r} is defined twice", fix="give each file a unique name")
    return envs


def source_url(env: EnvironmentConfig) -> str:
    """The Git URL to clone: the configured one, or the repository that holds the environment file."""
    return env.source.url or str(repository_root(Path(env.file)))
