"""Run the benchmark suite and write its report: ``python -m benchmarks.run``.

Side by side, on one ``celery worker`` (prefork, 2 processes) and one broker:
Tasktronaut processes of each shape, the same shapes as hand-written canvas,
and N independent ``delay()`` calls (the ceiling). For every case: build time,
enqueue time, end-to-end time, tasks per second and its ratio to the ceiling,
the number, total and largest size of the messages published, and the peak
memory of the client and of the worker. The worker is restarted for each case
so that its memory figure is that case's own.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import celery
import kombu
import redis

from tasktronaut_celery import CeleryBackend
from tasktronaut_celery.plan import encode_plan, plan_process

from . import shapes
from .app import STATS_KEY, STATS_URL, make_app

REPOSITORY = Path(__file__).resolve().parents[1]
BROKERS = {"redis": "redis://127.0.0.1:6379/5", "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//"}
# Plain chains carry their whole remainder in every message: 10,000 steps take
# about an hour on this machine (see DESIGN.md), so hand-written chains stop at 1,000.
HAND_WRITTEN_CHAIN_LIMIT = 1_000
CASE_TIMEOUT = 900.0
# A run of the predecessor failed once in a full benchmark run (exit 1, cause unseen):
# its error is now printed, and it is tried again.
RQ_ATTEMPTS = 3


@dataclass
class Case:
    """What one benchmark case measured."""

    broker: str
    shape: str
    n: int
    variant: str
    build: float | None
    enqueue: float
    total: float | None
    messages: int
    message_bytes: int
    largest: int
    client_mb: float
    worker_mb: float

    @property
    def per_second(self) -> float | None:
        return self.n / self.total if self.total else None


def stats() -> redis.Redis:
    return redis.Redis.from_url(STATS_URL)


def reset_counters(key: str) -> None:
    stats().delete(STATS_KEY, key)


def counted(key: str) -> int:
    return int(stats().get(key) or 0)


_clients: dict[str, tuple[celery.Celery, CeleryBackend]] = {}


def client(broker: str) -> tuple[celery.Celery, CeleryBackend]:
    """The client side of the benchmark app on ``broker``, and its backend."""
    if broker not in _clients:
        app = make_app(BROKERS[broker])
        _clients[broker] = app, CeleryBackend(app)
    return _clients[broker]


@contextmanager
def worker(broker: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``celery -A benchmarks.app worker -P prefork -c 2`` on ``broker``, answering pings."""
    name = f"bench-{uuid.uuid4().hex[:6]}@localhost"
    environment = {**os.environ, "BENCH_BROKER": BROKERS[broker], "PYTHONPATH": str(REPOSITORY)}
    command = [
        sys.executable, "-m", "celery", "-A", "benchmarks.app", "worker", "-P", "prefork",
        "-c", "2", "-n", name, "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPOSITORY, env=environment)
    try:
        for _ in range(60):
            if client(broker)[0].control.ping(destination=[name], timeout=1.0):
                break
        else:
            raise RuntimeError("the benchmark worker did not start")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def worker_peak_mb(process: subprocess.Popen[bytes]) -> float:
    """The largest peak resident memory among the worker's processes, in MB."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    peaks = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def wait_for(
    condition: Callable[[], bool], timeout: float = CASE_TIMEOUT, pause: float = 0.01
) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return True


Starter = Callable[[str], tuple[Callable[[], bool], float | None]]


def heap_peak_mb(prepare: Callable[[], object]) -> float:
    """The Python heap peak while ``prepare`` builds what the client would send, in MB.

    Measured in a pass of its own: tracing allocations slows them several-fold,
    so the timed pass runs without it.
    """
    tracemalloc.start()
    try:
        prepare()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(
    broker: str,
    shape: str,
    n: int,
    variant: str,
    start: Starter,
    prepare: Callable[[], object],
    timeout: float = CASE_TIMEOUT,
) -> Case:
    """Run one case on a fresh worker; ``start`` sends it and returns a 'finished?' check.

    A case not finished after ``timeout`` seconds has no total.
    """
    key = f"bench:done:{uuid.uuid4().hex}"
    client_mb = heap_peak_mb(prepare)
    with worker(broker) as process:
        reset_counters(key)
        began = time.perf_counter()
        finished, build = start(key)
        enqueued = time.perf_counter()
        done = wait_for(finished, timeout)
        ended = time.perf_counter()
        message_stats = {k.decode(): int(v) for k, v in stats().hgetall(STATS_KEY).items()}
        return Case(
            broker=broker,
            shape=shape,
            n=n,
            variant=variant,
            build=build,
            enqueue=enqueued - began - (build or 0.0),
            total=ended - began if done else None,
            messages=message_stats.get("count", 0),
            message_bytes=message_stats.get("bytes", 0),
            largest=message_stats.get("largest", 0),
            client_mb=client_mb,
            worker_mb=worker_peak_mb(process),
        )


def ceiling(broker: str, n: int, timeout: float = CASE_TIMEOUT) -> Case:
    """N independent ``delay()`` calls of the same work."""
    app, _ = client(broker)

    def start(key: str) -> tuple[Callable[[], bool], None]:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.tasks["bench.work"].apply_async(kwargs={"key": key}, producer=producer)
        return (lambda: counted(key) >= n), None

    def prepare() -> object:
        return [app.tasks["bench.work"].s(key="x") for _ in range(n)]

    return measure(broker, "independent", n, "delay()", start, prepare, timeout)


def tasktronaut(broker: str, shape: str, n: int, timeout: float = CASE_TIMEOUT) -> Case:
    """The shape as a Tasktronaut process, built, enqueued and followed to the end."""
    _, backend = client(broker)

    def start(key: str) -> tuple[Callable[[], bool], float]:
        began = time.perf_counter()
        process = shapes.SHAPES[shape].build(n=n, key=key)
        build = time.perf_counter() - began
        run = process.enqueue(backend)

        def succeeded() -> bool:
            record = run.record
            if record.settled_at is None:
                return False
            if record.state.value != "SUCCESS":
                raise RuntimeError(
                    f"{shape} run {run.id} ended {record.state.value}: {record.error}"
                )
            return True

        return succeeded, build

    def prepare() -> object:
        process = shapes.SHAPES[shape].build(n=n, key="x")
        return encode_plan(
            plan_process(process, backend.canvas_limit, chords=backend.canvas_chords), "json"
        )

    return measure(broker, shape, n, "tasktronaut", start, prepare, timeout)


def hand_written(broker: str, shape: str, n: int) -> Case | None:
    """The shape as hand-written canvas, where plain canvas can finish in reasonable time."""
    is_chain = shape not in ("concurrent", "each-concurrent")
    if is_chain and n > HAND_WRITTEN_CHAIN_LIMIT:
        return None
    app, _ = client(broker)

    def start(key: str) -> tuple[Callable[[], bool], float]:
        began = time.perf_counter()
        canvas = shapes.hand_written(app, shape, n, key)
        build = time.perf_counter() - began
        canvas.apply_async()
        return (lambda: counted(key) >= n), build

    return measure(
        broker, shape, n, "canvas", start, lambda: shapes.hand_written(app, shape, n, "x")
    )


RQ_VENV = REPOSITORY / "benchmarks" / ".venv-rq"


def rq_environment() -> Path:
    """The Python of a virtual environment with tasktronaut 0.3.0 and rq 2.12.0.

    It needs one of its own: the predecessor has this project's distribution
    name. rq is pinned: under rq 3.0, tasktronaut 0.3's processes stall.
    """
    python = RQ_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(RQ_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "tasktronaut==0.3.0", "rq==2.12.0"],
            check=True,
        )
    return python


def rq_predecessor(shape: str, n: int) -> Case:
    """The shape on tasktronaut 0.3 with two RQ workers (Redis only)."""
    import json

    command = [
        str(rq_environment()),
        str(REPOSITORY / "benchmarks" / "rq_bench.py"),
        shape,
        str(n),
    ]
    for attempt in range(1, RQ_ATTEMPTS + 1):
        output = subprocess.run(
            command,
            cwd=REPOSITORY / "benchmarks",
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT + 120,
        )
        if output.returncode == 0:
            break
        print(f"rq 0.3 {shape} {n}, attempt {attempt} failed:\n{output.stderr}", flush=True)
    else:
        raise RuntimeError(f"rq 0.3 {shape} {n} failed {RQ_ATTEMPTS} times")
    measured = json.loads(output.stdout.strip().splitlines()[-1])
    return Case(
        broker="redis",
        shape=shape,
        n=n,
        variant="rq 0.3",
        build=measured["build"],
        enqueue=measured["enqueue"],
        total=measured["total"],
        messages=0,
        message_bytes=0,
        largest=0,
        client_mb=measured["client_mb"],
        worker_mb=measured["worker_mb"],
    )


def build_cost(n: int) -> tuple[float, float, int]:
    """Seconds to build and to plan+encode a sequential each of ``n`` steps, and plan bytes."""
    began = time.perf_counter()
    process = shapes.EachSequential.build(n=n, key="unused")
    built = time.perf_counter()
    encoded = encode_plan(
        plan_process(
            process, client("redis")[1].canvas_limit, chords=client("redis")[1].canvas_chords
        ),
        "json",
    )
    return built - began, time.perf_counter() - built, len(encoded.body)


def run_all(
    brokers: list[str],
    sizes: list[int],
    shape_names: list[str],
    rq_sizes: list[int],
    rabbitmq_sizes: list[int],
    save: Callable[[list[Case]], None],
) -> list[Case]:
    cases: list[Case] = []

    def add(case: Case | None) -> None:
        if case is not None:
            cases.append(case)
            print(describe(case), flush=True)
            save(cases)  # a run cut short still leaves its report so far

    for broker in brokers:
        for n in rabbitmq_sizes if broker == "rabbitmq" else sizes:
            add(ceiling(broker, n))
            for shape in shape_names:
                add(tasktronaut(broker, shape, n))
                add(hand_written(broker, shape, n))
                if broker == "redis" and n in rq_sizes:
                    add(rq_predecessor(shape, n))
    return cases


def describe(case: Case) -> str:
    total = f"{case.total:.2f} s" if case.total else "timeout"
    return f"{case.broker:8} {case.shape:16} {case.n:>6} {case.variant:12} enqueue {case.enqueue:.3f} s, total {total}"


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(
    cases: list[Case], build_costs: dict[int, tuple[float, float, int]], command: str
) -> str:
    """The results as an RST page, with the machine and versions."""
    ceilings = {(c.broker, c.n): c.per_second for c in cases if c.variant == "delay()"}
    canvas = {(c.broker, c.shape, c.n): c.total for c in cases if c.variant == "canvas"}
    rows = []
    for c in cases:
        ceiling_rate = ceilings.get((c.broker, c.n))
        ratio = c.per_second / ceiling_rate if c.per_second and ceiling_rate else None
        hand = canvas.get((c.broker, c.shape, c.n)) if c.variant == "tasktronaut" else None
        vs_canvas = c.total / hand if hand and c.total else None
        rows.append(
            [
                c.broker, c.shape, f"{c.n:,}", c.variant, fmt(c.build, 3), fmt(c.enqueue, 3),
                fmt(c.total), fmt(c.per_second, 0), fmt(ratio), fmt(vs_canvas),
                *message_cells(c),
                fmt(c.client_mb, 1), fmt(c.worker_mb, 1),
            ]
        )  # fmt: skip
    header = [
        "broker", "shape", "N", "variant", "build s", "enqueue s", "total s", "tasks/s",
        "x ceiling", "x canvas", "messages", "KB sent", "largest B", "client MB", "worker MB",
    ]  # fmt: skip
    redis_version = redis.Redis.from_url(STATS_URL).info()["redis_version"]
    lines = [
        "Results",
        "-------",
        "",
        f"Measured {datetime.date.today().isoformat()} with ``{command}`` on "
        f"{platform.machine()} with {os.cpu_count()} cores ({_cpu_model()}), Python "
        f"{platform.python_version()}, Celery {celery.__version__}, kombu {kombu.__version__}, "
        f"Redis {redis_version}. One worker, ``celery worker -P prefork -c 2``, restarted for "
        "each case; results in Redis. The machine is shared and noisy: compare ratios within "
        "one run, not absolute times across runs.",
        "",
        "*x ceiling* is tasks/s divided by that of N independent ``delay()`` calls of the same "
        "work on the same worker; *x canvas* is Tasktronaut's end-to-end time divided by that "
        "of the same shape written by hand as Celery canvas (*n/a*: plain canvas was not run, "
        f"because a chain of more than {HAND_WRITTEN_CHAIN_LIMIT:,} steps takes about an hour). "
        "Messages are counted and sized (headers and body as JSON) as they are published, by "
        "the client and the worker alike; *client MB* is the Python heap peak while building "
        "(measured in a separate, untimed pass); *worker MB* the peak resident memory of the "
        "busiest worker process.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
    ]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    lines += [
        "",
        "Build and compile cost of a sequential ``each``, without running it:",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - steps",
        "     - build s",
        "     - plan + encode s",
        "     - plan KB",
    ]
    for n, (built, planned, size) in sorted(build_costs.items()):
        lines += [
            f"   * - {n:,}",
            f"     - {built:.3f}",
            f"     - {planned:.3f}",
            f"     - {size / 1024:,.0f}",
        ]
    return "\n".join(lines) + "\n"


def message_cells(case: Case) -> list[str]:
    """Message count, KB and largest size; RQ keeps jobs in Redis hashes, not messages."""
    if case.variant == "rq 0.3":
        return ["n/a", "n/a", "n/a"]
    return [f"{case.messages:,}", f"{case.message_bytes / 1024:,.0f}", f"{case.largest:,}"]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--shapes", default=",".join(shapes.SHAPES))
    parser.add_argument("--build-sizes", default="1000,10000,100000")
    parser.add_argument(
        "--rq-sizes", default="", help="also run tasktronaut 0.3 on RQ at these sizes"
    )
    parser.add_argument("--rabbitmq-sizes", default="100,1000")
    parser.add_argument("--output", default=str(REPOSITORY / "docs" / "benchmarks-results.rst"))
    arguments = parser.parse_args()
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:])
    build_costs = {n: build_cost(n) for n in map(int, arguments.build_sizes.split(","))}

    def numbers(text: str) -> list[int]:
        return [int(n) for n in text.split(",") if n]

    def save(cases: list[Case]) -> None:
        Path(arguments.output).write_text(report(cases, build_costs, command.strip()))

    run_all(
        arguments.brokers.split(","),
        numbers(arguments.sizes),
        arguments.shapes.split(","),
        numbers(arguments.rq_sizes),
        numbers(arguments.rabbitmq_sizes),
        save,
    )
    print(f"report written to {arguments.output}")


if __name__ == "__main__":
    main()
