"""``python -m tools.fuzz_definitions``: a seeded mutation fuzzer of release definitions.

Each case is a valid definition of the corpus (``include/releases``, ``tests/definition/corpus``) changed by one
to three mutations, on the data (delete, duplicate, retype or swap keys and values, unicode, huge numbers, long
text, deep nesting, reserved names, template junk) or on the text (YAML damage: characters, lines, indentation,
anchors and alias bombs, control characters, truncation). Case ``n`` of seed ``s`` is the same on every machine.

Every case runs the path a definition takes in Airflow (tools/definition_path.py: read, validate, plan, build,
serialize, timetable, window decisions) in a worker process with a time limit (``--timeout``, a hang) and a
memory limit (``--memory-mb`` over the worker's own size). Outcomes are counted and printed: ``accepted``,
``error`` (a clean error message), ``crash`` (grouped by signature) and ``hang``. For each crash signature and
hang the smallest reproducing case found (lines removed while the signature stays) is written to ``--out``:
make it a regression case in tests/definition/invalid with its expected message once it is fixed.

    python -m tools.fuzz_definitions --cases 50000 --seed 7 --workers 2      # the long run (about an hour)
    python -m tools.fuzz_definitions --target notify --cases 20000           # the directory and shared rules
    python -m tools.fuzz_definitions --target train --cases 20000            # a train file over the corpus

The short run (2,000 cases) is a test: tests/definition/test_fuzz.py. Exit status 1 when anything crashed or hung.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Airflow must know the plugin's timetable to serialize scheduled releases, as the DAG processor does
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
CORPUS = (REPO / "include" / "releases", REPO / "tests" / "definition" / "corpus")
CALENDARS = REPO / "include" / "calendars"


def corpus() -> list[tuple[str, str]]:
    """(file name, text) of every valid definition the mutations start from."""
    return [(p.name, p.read_text()) for folder in CORPUS for p in sorted(folder.glob("*.yaml")) if _is_release(p)]


def _is_release(path: Path) -> bool:
    return any(line.startswith("name:") for line in path.read_text().splitlines())


# ---------------------------------------------------------------------------------------------------------------
# mutations


WEIRD_TEXT = (
    "",
    " ",
    "\u202eevil",
    "e\u0301\u0301\u0301",
    "\u200b",
    "😀" * 20,
    "x" * 300,
    "y" * 25_000,
    "{{",
    "{{ version ",
    "{{ vars.values }}",
    "{{ nosuch }}",
    "{% for x in range(10**9) %}{% endfor %}",
    "$(reboot)",
    "'; DROP TABLE x; --",
    "preflight",
    "summary",
    "break_glass",
    "release_x",
    "FREQ=DAILY;INTERVAL=0",
    "FREQ=SECONDLY",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "* * * * * * *",
    "0 0 30 2 *",
    "Mars/Olympus",
    "../../../../etc/passwd",
    "/dev/zero",
    "9999-12-31 23:59",
    "0001-01-01 00:00",
    "true",
    "no",
    "null",
)
WEIRD_NUMBERS = (
    "0",
    "-1",
    "0.5",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "9" * 30,
    "0x1f",
    "1_000",
    "0.0000001s",
    "0.5s",
    "99999999999d",
    "1.5m",
    "401d",
)


def mutate(text: str, rng: random.Random) -> str:
    """One to three mutations of ``text``: on its data when it still reads as YAML, else on its text."""
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.6:
            data = _data(text)
            if isinstance(data, dict):
                _mutate_data(data, rng)
                text = _dump(data)
                continue
        text = _mutate_text(text, rng)
    return text


def _data(text: str) -> Any:
    import yaml

    from release_mgmt.definition import yaml_io

    try:
        return yaml_io.parse(text)[0]
    except (yaml.YAMLError, yaml_io.LimitError, RecursionError, ValueError, TypeError):
        return None


def _dump(data: Any) -> str:
    import yaml

    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return "name: unprintable\n"


def _slots(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, Any]]:
    """(container, key) of every value inside ``data``."""
    found: list[tuple[Any, Any]] = []
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            found.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    return found


def _value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(WEIRD_TEXT)
    if roll < 0.6:
        return rng.choice(WEIRD_NUMBERS)
    if roll < 0.7:
        return rng.choice([True, False, None])
    if roll < 0.8:
        return rng.choice([[], {}, [None], {"a": None}, ["x", {"y": []}]])
    if roll < 0.9:
        deep: Any = "leaf"
        for _ in range(rng.choice([5, 20, 33, 60, 200])):
            deep = rng.choice([[deep], {"k": deep}])
        return deep
    return "".join(
        chr(rng.choice([rng.randint(32, 126), rng.randint(0x80, 0x2FFF)])) for _ in range(rng.randint(1, 40))
    )


def _mutate_data(data: dict[str, Any], rng: random.Random) -> None:
    slots = _slots(data)
    if not slots:
        return
    container, key = rng.choice(slots)
    action = rng.choice(("delete", "duplicate", "retype", "swap", "set", "rename", "grow"))
    if action == "delete":
        del container[key]
    elif action == "duplicate" and isinstance(container, list):
        container.insert(key, container[key])
    elif action == "swap":
        other, other_key = rng.choice(slots)
        with contextlib.suppress(KeyError, IndexError):  # the other slot was inside the one just swapped
            container[key], other[other_key] = other[other_key], container[key]
    elif action == "retype":
        value = container[key]
        container[key] = [value] if not isinstance(value, list) else {"x": value}
    elif action == "rename" and isinstance(container, dict):
        value = container.pop(key)
        container[rng.choice((str(key) + "s", str(key)[:-1], str(key).upper(), "x-" + str(key), "<<"))] = value
    elif action == "grow" and isinstance(container[key], list) and container[key]:
        container[key] = container[key] * rng.choice((2, 30, 150))
    else:
        container[key] = _value(rng)


TEXT_CHARS = "\x00\x01\x07\x1b\t\r\n {}[]:,&*!|>%@`'\"#-?\\\u2028\ufeff"


def _mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    at = rng.randrange(len(lines))
    action = rng.choice(("char", "delete", "line", "swap", "indent", "anchor", "bomb", "truncate"))
    if action == "char":
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(TEXT_CHARS) + text[pos:]
    if action == "delete" and text:
        pos = rng.randrange(len(text))
        return text[:pos] + text[pos + rng.randint(1, 20) :]
    if action == "line":
        lines.insert(at, lines[at])
    elif action == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif action == "indent":
        lines[at] = rng.choice(("  ", "\t", " ")) + lines[at] if rng.random() < 0.5 else lines[at].lstrip()
    elif action == "anchor":
        lines.insert(at, "x-a: &a {type: command, command: x}\n")
        lines.append(rng.choice(("x-b: *a\n", "x-c: [*a, *a, *a]\n", "x-d: {<<: *a}\n", "x-e: *nosuch\n")))
    elif action == "bomb":
        lines.append("x-b0: &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
        lines += [f"x-b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, rng.randint(2, 12))]
    else:
        return text[: rng.randrange(len(text) + 1)]
    return "".join(lines)


def case_text(seed: int, index: int, sources: list[tuple[str, str]]) -> str:
    """The text of case ``index`` of campaign ``seed`` (the same on every machine)."""
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - reproducible cases, not secrets
    _, text = rng.choice(sources)
    return mutate(text, rng)


# ---------------------------------------------------------------------------------------------------------------
# running


@dataclass
class Campaign:
    seed: int
    cases: int
    counts: Counter[str] = field(default_factory=Counter)
    #: signature -> (case index, smallest reproducing text)
    findings: dict[str, tuple[int, str]] = field(default_factory=dict)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [
            f"fuzzed {self.cases} cases (seed {self.seed}) in {self.seconds:.0f}s: "
            + ", ".join(f"{k} {self.counts[k]}" for k in ("accepted", "error", "crash", "hang"))
        ]
        lines += [f"  {sig}: case {index}" for sig, (index, _) in sorted(self.findings.items())]
        return "\n".join(lines)


def _worker(conn: Connection, memory_mb: int, target: str = "definition") -> None:
    """Run cases sent as (index, text) and answer (index, kind, signature). ``target`` "notify": the text is the
    directory (even cases) or a shared notification rules file (odd cases), used by a notifying definition."""
    from tools.definition_path import Crash, exercise, exercise_notify, exercise_train

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    limit = (own + memory_mb) * 1024 * 1024 * 4  # address space: a process maps several times what it uses
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (folder / "releases").mkdir()
    path = folder / "releases" / "case.yaml"
    groups = REPO / "tests" / "definition" / "corpus" / "groups.yaml"
    (folder / "corpus").mkdir()
    (folder / "corpus" / "groups.yaml").write_text(groups.read_text())
    (folder / "invalid").mkdir()
    (folder / "notify-case").mkdir()
    while True:
        try:
            index, text = conn.recv()
        except EOFError:
            return
        try:
            if target == "notify":
                outcome = exercise_notify(folder / "notify-case", text, as_directory=index % 2 == 0)
            elif target == "train":
                outcome = exercise_train(folder, text)
            else:
                path.write_text(text, encoding="utf-8", errors="surrogatepass")
                outcome = exercise(path, CALENDARS)
            conn.send((index, outcome.kind, ""))
        except Crash as exc:
            conn.send((index, "crash", exc.signature))
        except BaseException as exc:  # noqa: BLE001 - MemoryError and the like: the fuzzer's verdict, not ours
            conn.send((index, "crash", f"{type(exc).__name__}@harness"))


class Pool:
    """Worker processes with a per-case time limit: a worker that does not answer in time is killed (a hang)."""

    def __init__(self, workers: int, timeout: float, memory_mb: int, target: str = "definition") -> None:
        self.timeout, self.memory_mb, self.target = timeout, memory_mb, target
        self.context = multiprocessing.get_context("fork")
        self.slots = [self._start() for _ in range(workers)]

    def _start(self) -> tuple[Any, Connection]:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, self.memory_mb, self.target), daemon=True)
        process.start()
        child.close()
        return process, parent

    def run(self, jobs: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
        """(index, kind, signature) of every job, in any order."""
        results: list[tuple[int, str, str]] = []
        queue = list(reversed(jobs))
        busy: dict[int, tuple[int, float]] = {}
        while queue or busy:
            for slot, (_, conn) in enumerate(self.slots):
                if slot not in busy and queue:
                    index, text = queue.pop()
                    conn.send((index, text))
                    busy[slot] = (index, time.monotonic())
            for slot, (index, started) in list(busy.items()):
                process, conn = self.slots[slot]
                if conn.poll(0.01):
                    try:
                        results.append(conn.recv())
                    except (EOFError, OSError):
                        results.append((index, "crash", "worker-died@harness"))
                        self._replace(slot)
                    del busy[slot]
                elif not process.is_alive():
                    results.append((index, "crash", f"worker-died(exit {process.exitcode})@harness"))
                    self._replace(slot)
                    del busy[slot]
                elif time.monotonic() - started > self.timeout:
                    results.append((index, "hang", "hang"))
                    self._replace(slot)
                    del busy[slot]
        return results

    def _replace(self, slot: int) -> None:
        process, conn = self.slots[slot]
        process.kill()
        process.join(5)
        conn.close()
        self.slots[slot] = self._start()

    def close(self) -> None:
        for process, conn in self.slots:
            conn.close()
            process.join(5)
            if process.is_alive():
                process.kill()


def minimize(pool: Pool, text: str, signature: str, attempts: int = 120, index: int = 0) -> str:
    """The smallest text found (whole lines, then runs of lines, removed) that still gives ``signature``."""
    lines = text.splitlines(keepends=True)
    chunk = max(len(lines) // 2, 1)
    while chunk >= 1 and attempts > 0:
        start, changed = 0, False
        while start < len(lines) and attempts > 0:
            candidate = lines[:start] + lines[start + chunk :]
            attempts -= 1
            [(_, kind, sig)] = pool.run([(index, "".join(candidate))])
            if (sig if kind == "crash" else kind) == signature and candidate:
                lines, changed = candidate, True
            else:
                start += chunk
        if not changed:
            chunk //= 2
    return "".join(lines)


def notify_corpus() -> list[tuple[str, str]]:
    """What the notification campaign mutates: the directory (even cases) and a shared rules file (odd)."""
    from tools.definition_path import NOTIFY_RULES

    return [("directory.yaml", (REPO / "include" / "directory.yaml").read_text()), ("oncall.yaml", NOTIFY_RULES)]


def train_corpus() -> list[tuple[str, str]]:
    """What the train campaign mutates: a train of the definition corpus's releases."""
    from tools.definition_path import TRAIN

    return [("train.yaml", TRAIN)]


def fuzz(
    seed: int,
    cases: int,
    *,
    workers: int = 2,
    timeout: float = 15.0,
    memory_mb: int = 2048,
    out: Path | None = None,
    target: str = "definition",
) -> Campaign:
    """Run a campaign on definitions (or, ``target`` "notify", on the directory and shared notification rules);
    findings minimized and, with ``out``, written there."""
    import tools.definition_path  # noqa: F401 - imported once here, shared by the forked workers
    from release_mgmt.dag import builder  # noqa: F401

    sources = {"definition": corpus, "notify": notify_corpus, "train": train_corpus}[target]()
    campaign = Campaign(seed, cases)
    started = time.monotonic()
    pool = Pool(workers, timeout, memory_mb, target)
    texts: dict[int, str] = {}
    try:
        batch = 200
        for first in range(0, cases, batch):
            numbers = range(first, min(first + batch, cases))
            if target in ("notify", "train"):  # the source follows the case's parity, as the worker reads it
                pick = [sources[i % len(sources)][1] for i in numbers]
                jobs = [(i, mutate(text, random.Random(f"{seed}:{i}"))) for i, text in zip(numbers, pick, strict=True)]  # noqa: S311
            else:
                jobs = [(i, case_text(seed, i, sources)) for i in numbers]
            texts = dict(jobs)
            for index, kind, signature in pool.run(jobs):
                campaign.counts[kind] += 1
                key = signature if kind == "crash" else kind
                if kind in ("crash", "hang") and key not in campaign.findings:
                    campaign.findings[key] = (index, texts[index])
        for key, (index, text) in list(campaign.findings.items()):
            campaign.findings[key] = (index, minimize(pool, text, key, index=index))
    finally:
        pool.close()
    campaign.seconds = time.monotonic() - started
    if out is not None and campaign.findings:
        out.mkdir(parents=True, exist_ok=True)
        for key, (index, text) in campaign.findings.items():
            name = "".join(c if c.isalnum() else "_" for c in key)[:80]
            (out / f"{name}.case{index}.yaml").write_text(
                f"# {key} (seed {seed}, case {index})\n" + text, encoding="utf-8", errors="surrogatepass"
            )
    return campaign


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--cases", type=int, default=2000)
    args.add_argument("--seed", type=int, default=1)
    args.add_argument("--workers", type=int, default=max((os.cpu_count() or 2), 1))
    args.add_argument("--timeout", type=float, default=15.0, help="seconds per case before it counts as a hang")
    args.add_argument("--memory-mb", type=int, default=2048, help="memory a case may use")
    args.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where minimized findings go")
    args.add_argument(
        "--target",
        choices=("definition", "notify", "train"),
        default="definition",
        help="definition files, or the notification directory and shared rules files",
    )
    ns = args.parse_args(argv)
    settings = {"workers": ns.workers, "timeout": ns.timeout, "memory_mb": ns.memory_mb, "out": ns.out}
    campaign = fuzz(ns.seed, ns.cases, target=ns.target, **settings)
    print(campaign.report())
    return 1 if campaign.counts["crash"] or campaign.counts["hang"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "plugins"))
    sys.exit(main())
