"""Long-lived `kustomize build` processes: the kustomize CLI's own build command, run many times in one process.

Why: a `kustomize build` process costs about 17 ms of CPU for a ten-object stack, most of it start-up
(kustomize loads its OpenAPI schema every time); a build in a running worker about 3.7 ms. A push to a
base that a fleet's 1,000 stacks include re-renders all of them. The worker
(`devcluster/gotools/kustomize-worker`, installed by `make build` as `kustomize-worker`) is built from the
same kustomize module as the pinned CLI and runs its `build` command, so output, errors and warnings are
the CLI's byte for byte (`tests/pipeline/test_kustomize_workers.py`). Flux's kustomize-controller builds
in process the same way.

kustomize keeps its OpenAPI schema and its flags in process-wide state, so a worker builds one stack at
a time, with a new build command each time, and resets the schema after a build whose kustomization set
its own (`openapi:`): each build starts as a new CLI process would (tested). Up to
`size` workers, started when a build finds none idle. A build over its timeout kills its worker (one
thread per pool watches every build's deadline); a worker
that exits is replaced by the next build. A worker ends itself after a minute without a build (and when
its stdin closes), so an engine dropped without `close()` leaves no process behind for long. Where no
worker is installed the CLI runs, as before. An environment's builds are written to a worker several at
once (`build_all`), so it builds them back to back instead of waking for each.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

WORKER = "kustomize-worker"
WORKER_GOGC = "400"
"""Go's GC target for a worker (GOGC, unless the environment sets one): a worker's live heap is mostly
kustomize's OpenAPI schema, marked again by every collection. Measured on this project's 2-core
machine, a ten-object stack built 400 times in one worker, runs alternating: 5.9-7.5 ms of CPU a
build at Go's default 100, 4.9-5.7 ms at 200, for a peak RSS of 22-23 MiB instead of 18-19; again later
(a fleet stack with its base, three rounds): 3.45-3.67 ms at 200, 3.12-3.30 ms at 400 and 2.95-3.15 ms at
800, for a peak RSS of 21-22, 29-30 and 46 MiB. 400 saves about two thirds of what 800 does, for a third of
its extra memory."""
PIPELINED_BYTES = 16 * 1024
"""At most this much of requests is written to a worker before its answers are read (a pipe holds 64 KiB)."""
RENDER_PARALLEL_WORKERS = max(2, min(4, os.cpu_count() or 2))
"""Workers in a process's shared pool, and builds an environment's render starts at once: a build is CPU,
so more than the cores only hold memory (about 29 MiB a worker at its peak)."""


@dataclass(frozen=True)
class BuildOutput:
    """What `kustomize build` would have returned and printed (named as subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


class WorkerExited(RuntimeError):
    """The worker process ended during a build without a timeout (killed from outside, or crashed)."""


class KustomizeWorkers:
    """A pool of `kustomize-worker` processes, shared by every thread (and engine) that renders."""

    def __init__(self, binary: str, size: int = RENDER_PARALLEL_WORKERS) -> None:
        self.binary = binary
        self.size = size
        self._idle: list[subprocess.Popen] = []
        self._workers: set[subprocess.Popen] = set()  # idle or building
        self._lock = threading.Condition()
        self._deadlines = _Deadlines()

    @classmethod
    def installed(cls, size: int = RENDER_PARALLEL_WORKERS) -> KustomizeWorkers | None:
        """A new pool of the worker on PATH ($RECONCILER_KUSTOMIZE_WORKER names another; "" turns it off),
        or None."""
        binary = _worker_binary()
        return cls(binary, size) if binary else None

    @classmethod
    def shared(cls) -> KustomizeWorkers | None:
        """The process's pool (None without a worker installed): every engine of a process builds in the same
        few workers, so a daemon of 100 environments (or a test session of hundreds of engines) runs
        `RENDER_PARALLEL_WORKERS` of them, not a pool per engine. A pool holds no state a build depends on:
        the output is a function of the arguments."""
        return _shared_pool(_worker_binary())

    def build(self, args: list[str], timeout_s: float) -> BuildOutput:
        """`kustomize build ARGS` in a worker. Raises subprocess.TimeoutExpired after `timeout_s` (the worker
        is killed), WorkerExited if a new worker ended otherwise. An idle worker that had exited (a worker
        ends itself after a minute without a build) is replaced and the build asked again."""
        (answer,) = self.build_all([args], timeout_s)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def build_all(self, requests: list[list[str]], timeout_s: float) -> list[BuildOutput | Exception]:
        """Several builds, written to one worker at once: it builds them back to back, never waiting for
        this process between two. Measured on this project's 2-core machine, a fleet stack built 500 times
        with 10 ms between requests: 6.2-6.5 ms of the worker's CPU a build one at a time, 4.9-5.2 ms five at
        a time (4.7 ms with no pause at all): a Go process woken for every build pays for each waking.
        Each answer is what `build` returns or raises for its request (the exception returned, not raised);
        each build has `timeout_s` from when the worker starts it. After a build that timed out or whose
        worker ended, the rest are built in another worker."""
        results: list[BuildOutput | Exception] = []
        while len(results) < len(requests):
            worker, reused = self._take()
            answers: list[BuildOutput] = []
            failure: Exception | None = WorkerExited(f"{WORKER} was not asked")
            try:
                answers, failure = self._ask_all(worker, requests[len(results):], timeout_s)
            finally:
                self._give_back(worker, failure is None)
            results.extend(answers)
            if failure is not None and not (reused and not answers and isinstance(failure, WorkerExited)):
                results.append(failure)  # as `build` raises it; an idle worker found gone is asked of another
        return results

    def pids(self) -> set[int]:
        """The worker processes this pool has running, idle or building."""
        with self._lock:
            return {worker.pid for worker in self._workers if worker.poll() is None}

    def close(self) -> None:
        """End the idle workers (those in a build end when it returns and finds the pool closed)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._workers.difference_update(idle)
            self.size = 0
        for worker in idle:
            _end(worker)

    def _take(self) -> tuple[subprocess.Popen, bool]:
        """An idle worker (True: it has built before), else a new one once fewer than `size` run."""
        with self._lock:
            while True:
                if self._idle:
                    return self._idle.pop(), True
                if len(self._workers) < max(self.size, 1):
                    worker = subprocess.Popen([self.binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
                                              env={"GOGC": WORKER_GOGC, **os.environ})
                    self._workers.add(worker)
                    return worker, False
                self._lock.wait()

    def _give_back(self, worker: subprocess.Popen, healthy: bool) -> None:
        with self._lock:
            keep = healthy and worker.poll() is None and len(self._workers) <= self.size
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._lock.notify()
        if not keep:
            _end(worker)

    def _ask_all(self, worker: subprocess.Popen, requests: list[list[str]], timeout_s: float
                 ) -> tuple[list[BuildOutput], Exception | None]:
        """The answers of the first requests (as many as `PIPELINED_BYTES` of them hold, at least one), and
        why the next was not answered (None: all were). Written before any answer is read: more than a pipe
        holds could leave both processes waiting to write."""
        lines: list[str] = []
        written = 0
        for args in requests:
            line = json.dumps(args) + "\n"
            written += len(line)
            if lines and written > PIPELINED_BYTES:
                break
            lines.append(line)
        try:
            worker.stdin.write("".join(lines))
            worker.stdin.flush()
        except OSError:
            pass  # it ended: the read below says how
        answers: list[BuildOutput] = []
        for args in requests[:len(lines)]:
            build = self._deadlines.arm(worker, timeout_s)
            try:
                line = worker.stdout.readline()
            except OSError:
                line = ""
            finally:
                expired = self._deadlines.disarm(build)
            if not line:
                code = worker.wait()
                if expired:
                    return answers, subprocess.TimeoutExpired([WORKER, *args], timeout_s)
                return answers, WorkerExited(f"{WORKER} exited with code {code} during the build")
            answer = json.loads(line)
            answers.append(BuildOutput(int(answer["code"]), answer["stdout"], answer["stderr"]))
        return answers, None


class _Deadlines:
    """One thread that kills each worker whose build outlived its timeout. A `threading.Timer` per build
    cost about 0.2 ms of CPU to start and cancel (a thread each): 0.2 CPU-s for a fleet push's 1,000
    builds. The thread ends after a minute with no build running and starts again with the next."""

    IDLE_S = 60.0

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, subprocess.Popen]] = {}  # build -> (deadline, its worker)
        self._expired: set[int] = set()
        self._builds = 0
        self._running = False
        self._wake_at = self._last_armed = 0.0  # when the thread looks next; when a build last started
        self._changed = threading.Condition()

    def arm(self, worker: subprocess.Popen, timeout_s: float) -> int:
        """Kill `worker` in `timeout_s` seconds unless `disarm` comes first; returns the build's number. The
        thread is woken only for a deadline earlier than the one it waits for (never, with equal timeouts)."""
        with self._changed:
            self._builds += 1
            self._last_armed = time.monotonic()
            deadline = self._last_armed + timeout_s
            self._due[self._builds] = (deadline, worker)
            if not self._running:
                self._running, self._wake_at = True, deadline
                threading.Thread(target=self._watch, name="kustomize-deadlines", daemon=True).start()
            elif deadline < self._wake_at:
                self._changed.notify()
            return self._builds

    def disarm(self, build: int) -> bool:
        """The build is over; whether its deadline had passed (its worker killed) first."""
        with self._changed:
            self._due.pop(build, None)
            if build in self._expired:
                self._expired.discard(build)
                return True
            return False

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for build, (deadline, worker) in list(self._due.items()):
                    if deadline <= now:
                        del self._due[build]
                        self._expired.add(build)
                        worker.kill()
                if not self._due and now - self._last_armed >= self.IDLE_S:
                    self._running = False
                    return
                self._wake_at = min((deadline for deadline, _ in self._due.values()),
                                    default=self._last_armed + self.IDLE_S)
                self._changed.wait(max(0.0, self._wake_at - now))


def without_workers() -> str | None:
    """What a daemon says at start when no kustomize worker is installed, else None. Measured on the fleet
    benchmark (100 environments of 10 stacks, 2 cores): a push's p95 took 94 s with a `kubectl kustomize`
    process per build, 165 CPU-s of them, against 7-8 s in workers."""
    if _worker_binary():
        return None
    return (f"no {WORKER} installed: every render starts a kustomize process of its own; a push that renders "
            "many stacks takes many times as long")


def _worker_binary() -> str | None:
    """$RECONCILER_KUSTOMIZE_WORKER when set ("" for none), else the worker on PATH."""
    configured = os.environ.get("RECONCILER_KUSTOMIZE_WORKER")
    return configured if configured is not None else shutil.which(WORKER)


@functools.lru_cache(maxsize=None)
def _shared_pool(binary: str | None) -> KustomizeWorkers | None:
    return KustomizeWorkers(binary) if binary else None


def _end(worker: subprocess.Popen) -> None:
    """Closing its stdin ends a worker between builds; kill one that does not go."""
    try:
        worker.stdin.close()
        worker.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        worker.kill()
        worker.wait()
