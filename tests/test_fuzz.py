"""Fuzzing the command line's contract (issue 14 item 8): whatever scenario file or flag a
user gives, ``ketasim`` either exits 0 with its results, or exits 2 with exactly one line
on stderr, nothing on stdout and nothing written in ``--out``; never a traceback.

Scenario files are the examples/ scenarios mutated by hypothesis (values replaced by wrong
types, huge, negative, NaN and infinite numbers, unicode, dates, deep nesting, bad units;
keys removed; unknown keys added), written as TOML and given to ``ketasim run FILE --out
DIR``. Most of them fail validation, which is cheap. A scenario that passes is run for real
through :func:`ketasim.run`, the measurement model, the summary and the result files, with
two or fewer subjects per arm and an engine that returns the burn-in state at every output
time (the integration is what costs; the engines' own error paths are tested in
test_solver_failure.py); runs with the real engines are in the ``slow`` profile.

The default suite runs a bounded number of examples; ``pytest -m slow`` runs the long
profile (more examples, every example scenario as a base, real engines).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import tomllib
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import ketasim as ks
from ketasim.cli import app
from ketasim.engine.base import OK, Trajectories
from ketasim.experiments import run as run_module
from scenario_text import KETAMINE_VS_SALINE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASES = {p.stem: tomllib.loads(p.read_text(encoding="utf-8"))
         for p in sorted(EXAMPLES.glob("*.toml"))}
# cheap bases for the default profile: few compounds, short schedules, both species kinds
QUICK_BASES = ("li2011_cus", "predictors_open_label", "repeated_infusions", "seed_crossover",
               "gerhard2020_wild_type")
QUICK = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_SUBJECTS = 2  # per arm (per study in a crossover) when a fuzzed scenario is run

runner = CliRunner()


# ------------------------------------------------------------------------ TOML writer


def toml_key(key: str) -> str:
    return toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML forbids raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") \
            if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_text(data: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())


def test_toml_writer_round_trips() -> None:
    for data in BASES.values():
        assert tomllib.loads(toml_text(data)) == data
    odd = {"a\x7f\n\"é": [1, -0.0, 1e308, "\x00\t", {"k": dt.date(1, 2, 3)}], "b": math.inf}
    assert tomllib.loads(toml_text(odd)) == odd


# ------------------------------------------------------------------------- strategies

UNIT_TEXT = ["40 min", "0 h", "-40 min", "7 d", "1e6 d", "1e400 h", "nan h", "inf d", "-inf h",
             "1 furlong", "1 parsec", "h", "min", "", " ", "40", "40 minutes", "2 weeks",
             "1e-300 s", "0.5 mg/kg", "mg/kg", "1e308 mg/kg", "-1 mg/kg", "nan mg",
             "0.5 mg/L", "0.5 mg/kg/min", "10 %", "50 percent", "1 kg", "1 m", "5 nmol/kg",
             "1e-320 ug", "0x10 mg", "1_000 mg", "½ mg", "0.5 ㎎/kg", "40 мин", "1,5 mg",
             "1 mg * 2", "(1 mg", "1 mg)", "1 ** 400 mg", "2 ** 2000 h", "1e999999 d"]
NAMES = ["ketamine", "esketamine", "saline", "hnk", "norketamine", "midazolam", "rapamycin",
         "nbqx", "human", "rat", "mouse", "crossover", "parallel", "single_group", "trd",
         "cus", "naive", "fast", "batched", "reference", "auto", "iv_infusion", "ip",
         "intranasal", "madrs", "response", "plasma.ketamine", "brain.unobtainium"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 10**5, 10**5 + 1, 2**31, 2**63 - 1, -(2**63), 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, math.nan, math.inf, -math.inf, 0.5]),
    st.booleans(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(UNIT_TEXT + NAMES),
    st.datetimes(), st.dates(), st.times(),
)
keys = st.one_of(st.sampled_from(["size", "mean", "sd", "amount", "at", "drug", "x", ""]),
                 st.text(st.characters(exclude_categories=["Cs"]), max_size=8))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(keys, kids, max_size=3), max_leaves=6)


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def _draw_path(draw: Callable[..., Any], data: dict[str, Any]) -> list[Any]:
    """A path to a node of ``data`` (a random walk that may stop at any depth)."""
    path: list[Any] = []
    node: Any = data
    while _children(node):
        path.append(draw(st.sampled_from(_children(node))))
        node = node[path[-1]]
        if draw(st.booleans()):
            break
    return path


def _nest(value: Any, depth: int, kinds: list[bool]) -> Any:
    for k in range(depth):
        value = [value] if kinds[k % len(kinds)] else {"x": value}
    return value


def _mutate(draw: Callable[..., Any], data: dict[str, Any]) -> None:
    path = _draw_path(draw, data)
    parent: Any = data
    for p in path[:-1]:
        parent = parent[p]
    if not path:
        data[draw(keys)] = draw(values)  # an unknown top-level key
        return
    last, current = path[-1], parent[path[-1]]
    op = draw(st.sampled_from(["replace", "replace", "delete", "unknown_key", "nest",
                               "units", "number"]))
    if op == "replace":
        parent[last] = draw(values)
    elif op == "delete":
        del parent[last]
    elif op == "unknown_key" and isinstance(current, dict):
        current[draw(keys)] = draw(values)
    elif op == "nest":
        depth = draw(st.integers(1, 60))
        parent[last] = _nest(current, depth, draw(st.lists(st.booleans(), min_size=1)))
    elif op == "units" and isinstance(current, str):
        number = current.split(" ", 1)[0]
        parent[last] = f"{number} {draw(st.sampled_from(UNIT_TEXT)).split(' ')[-1]}"
    elif op == "number":
        if isinstance(current, str) and " " in current:
            unit = current.split(" ", 1)[1]
            number = draw(st.sampled_from(["-1", "0", "1e308", "1e-308", "nan", "inf",
                                           "-0", "1e5", "2.5e-3", "1e20"]))
            parent[last] = f"{number} {unit}"
        elif isinstance(current, int | float) and not isinstance(current, bool):
            parent[last] = draw(st.sampled_from([-1, 0, -current, current * 10**6,
                                                 current + 0.5, math.nan, math.inf, 2**64]))
        else:
            parent[last] = draw(values)
    else:
        parent[last] = draw(values)


@st.composite
def scenarios(draw: Callable[..., Any], bases: tuple[str, ...] = QUICK_BASES) -> str:
    """The TOML text of an example scenario with zero to three mutations."""
    data = json.loads(json.dumps(BASES[draw(st.sampled_from(bases))]))  # a deep copy
    for _ in range(draw(st.integers(0, 3))):
        _mutate(draw, data)
    return toml_text(data)


# ------------------------------------------------------------------ running the CLI


def _fake_engine() -> Any:
    """An engine that returns each subject's starting state at every output time."""

    class Steady:
        @staticmethod
        def simulate(model: Any, P: np.ndarray, y0: np.ndarray, protocol: Any,
                     t_out: np.ndarray, t0: float, rtol: float = 0.0, atol: float = 0.0,
                     method: str = "", progress: Any = None) -> Trajectories:
            n = y0.shape[1]
            y = np.repeat(np.asarray(y0, float).T[:, :, None], len(t_out), axis=2)
            if callable(progress):
                progress(n)
            return Trajectories(np.asarray(t_out, float), y, np.full(n, OK, dtype=object),
                                np.full(n, "", dtype=object))

    return Steady


def _small(sc: Any) -> Any:
    """The scenario with at most :data:`MAX_SUBJECTS` subjects per arm."""
    data = sc.as_dict()
    pop = data["population"]
    pop["size"] = min(int(pop["size"]), MAX_SUBJECTS)
    pop["confirm_large"] = False
    return ks.load_scenario(data)


@contextmanager
def tiny_runs(real_engine: bool = False) -> Iterator[None]:
    """``ketasim.run`` (as the commands call it) on a tiny copy of the scenario; without
    ``real_engine`` the integration is replaced by :func:`_fake_engine`."""
    real_run = ks.run

    def run(sc: Any, *args: Any, **kwargs: Any) -> Any:
        return real_run(_small(sc), *args, **kwargs)

    with mock.patch.object(ks, "run", run):
        if real_engine:
            yield
        else:
            with mock.patch.object(run_module, "get_engine", lambda name: _fake_engine()):
                yield


def check_contract(res: Result, out: Path | None) -> None:
    """Exit 0, or exit 2 with one line on stderr, nothing on stdout, nothing in ``out``."""
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(res.exception))
                             + f"\nstderr: {res.stderr}")
    if res.exit_code == 0:
        return
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), res.stderr
    assert res.stdout == "", res.stdout
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def run_file(text: str | bytes, *flags: str) -> tuple[Result, Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "scenario.toml", Path(tmp) / "out"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        res = runner.invoke(app, ["run", str(path), "--out", str(out), "--format", "json",
                                  *flags])
        check_contract(res, out)
        if res.exit_code == 0:
            assert (out / "summary.csv").is_file() and (out / "manifest.json").is_file()
        return res, out


# ------------------------------------------------------------------------------ tests


def variant(base: str, path: tuple[Any, ...], value: Any) -> str:
    """The TOML text of example ``base`` with the value at ``path`` replaced."""
    data = json.loads(json.dumps(BASES[base]))
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return toml_text(data)


CHUNKED = ("--chunk-size", "1")  # streamed: the summary merged from one-subject chunks


@QUICK
@given(scenarios(), st.sampled_from([(), CHUNKED]))
# found by the fuzzer, each once a traceback:
@example(variant("li2011_cus", ("seed",), 2**64), CHUNKED)  # OverflowError in subject_keys
@example(variant("li2011_cus", ("design", "follow_up"), "1e308 d"), ())  # inf hours
@example(variant("li2011_cus", ("arms", 1, "doses", 0, "amount"), "1e308 g"), ())  # inf ug
def test_fuzzed_scenario_files_fail_in_one_line_or_run(text: str, flags: tuple[str, ...]
                                                        ) -> None:
    with tiny_runs():
        run_file(text, *flags)


@pytest.mark.slow
@LONG
@given(scenarios(tuple(BASES)), st.sampled_from([(), CHUNKED]))
def test_fuzzed_scenario_files_long(text: str, flags: tuple[str, ...]) -> None:
    with tiny_runs():
        run_file(text, *flags)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fuzzed_scenario_files_on_the_real_engines(text: str) -> None:
    with tiny_runs(real_engine=True):
        run_file(text)


# ------------------------------------------------------------- files that are not TOML

DEEP = 5000  # deeper than tomllib's recursion can go


@st.composite
def corrupted_files(draw: Callable[..., Any]) -> bytes:
    """An example scenario's bytes cut, spliced with random bytes, or nested deeply."""
    text = toml_text(BASES[draw(st.sampled_from(QUICK_BASES))]).encode()
    op = draw(st.sampled_from(["cut", "splice", "nest", "prefix"]))
    if op == "cut":
        return text[:draw(st.integers(0, len(text)))]
    if op == "splice":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(max_size=12)) + text[at:]
    if op == "prefix":  # a byte order mark, NUL, invalid UTF-8
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"\x80"])) + text
    depth = draw(st.integers(1, DEEP))
    open_, close = draw(st.sampled_from([("[", "]"), ("{a = ", "}")]))
    return text + f"deep = {open_ * depth}1{close * depth}\n".encode()


@QUICK
@given(corrupted_files())
@example(b"deep = " + b"[" * DEEP + b"]" * DEEP)  # was a RecursionError traceback
@example(b'name = "x"\ndeep = ' + b"{a = " * DEEP + b"1" + b"}" * DEEP)  # the same
@example(b"\xef\xbb\xbfname = 1")
def test_files_that_are_not_scenarios_fail_in_one_line(raw: bytes) -> None:
    with tiny_runs():
        run_file(raw)


# ------------------------------------------------------------------ command-line flags

FLAG_SCENARIO = """
name = "flag fuzz"
species = "human"
seed = 1

[population]
size = 2

[design]
type = "parallel"
follow_up = "1 d"

""" + KETAMINE_VS_SALINE + """
[outputs]
times = ["4 h", "1 d"]
readouts = ["madrs", "madrs.change", "response"]
"""


class Reached(Exception):
    """Raised by the stub simulation: the command accepted its flags."""


texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                max_size=12)
ints = st.one_of(st.integers(-(2**70), 1), st.sampled_from([2**31, 2**63, 10**30]))
counts = st.one_of(ints, st.integers(1, 4))  # replicates, sizes: small ones may run (stub)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), texts,
                    st.sampled_from(["0.05", "0", "1", "-0.5", "nan", "inf", "1e-300"]))
anything = st.one_of(texts, ints.map(str), numbers)
engines = st.one_of(st.sampled_from(["auto", "reference", "batched", "fast", "FAST", "",
                                     "numba", "batched "]), texts)
times = st.one_of(st.sampled_from(UNIT_TEXT), texts)
sizes = st.one_of(st.lists(counts, min_size=0, max_size=3).map(
    lambda xs: ",".join(map(str, xs))), texts, st.sampled_from(["10,10", "1", "2,", ",", ""]))
not_local = texts.filter(lambda t: not t.startswith("local:"))

FLAGS: dict[str, dict[str, st.SearchStrategy[str] | None]] = {
    "run": {"--engine": engines, "--format": st.one_of(st.sampled_from(["table", "json"]),
                                                        texts),
            "--jobs": ints.map(str), "--chunk-size": st.one_of(ints, counts).map(str),
            "--subjects": None, "--no-subjects": None, "--confirm-large": None,
            "--verbose": None, "--resume": None, "--overwrite": None,
            "--cluster": not_local, "--nope": None, "-x": anything},
    "power": {"--n": sizes, "--replicates": counts.map(str), "--endpoint": st.one_of(
        st.sampled_from(["madrs.change", "madrs", "response", "remission", "relapse_free",
                         "cadss", "fst.immobility", "plasma.ketamine", "brain.x"]), texts),
              "--time": times, "--alpha": numbers, "--engine": engines,
              "--batch": st.one_of(ints, counts).map(str), "--jobs": ints.map(str),
              "--format": texts, "--confirm-large": None, "--cluster": not_local},
    "predictors": {"--bootstrap": st.one_of(ints, counts).map(str),
                   "--subjects": st.one_of(ints, counts).map(str), "--format": texts,
                   "--confirm-large": None, "--extra": anything},
    "validate": {"--case": texts, "--jobs": ints.map(str), "--cluster": not_local,
                 "--overwrite": None},
    "export-sbml": {"--cohort": st.one_of(st.sampled_from(["0", "1", "2", "-1", "ketamine",
                                                           "saline", "ketamine-saline"]),
                                          texts, ints.map(str)),
                    "--subject": st.one_of(ints, counts).map(str), "--overwrite": None},
    "drugs": {"--nope": None},
}


@st.composite
def command_lines(draw: Callable[..., Any]) -> list[str]:
    command = draw(st.sampled_from(sorted(FLAGS)))
    flags = FLAGS[command]
    args = [command]
    for flag in draw(st.lists(st.sampled_from(sorted(flags)), max_size=4, unique=True)):
        value = flags[flag]
        args += [flag] if value is None else [flag, draw(value)]
    if command == "validate" and "--case" not in args:
        args += ["--case", draw(texts)]  # a name that is no case: nothing is run
    if command == "drugs":
        args += draw(st.lists(st.one_of(st.sampled_from(NAMES), texts), max_size=2))
    return args


def _unreachable(*args: Any, **kwargs: Any) -> Any:
    raise Reached


@QUICK
@given(command_lines())
@example(["run", "--jobs", "abc"])  # was a usage panel of many lines
@example(["run", "--format", "xml"])  # the same
@example(["power", "--alpha", "nan"])
@example(["predictors", "--subjects", "-3"])
@example(["validate", "--case", ""])
def test_fuzzed_flags_fail_in_one_line_or_reach_the_simulation(args: list[str]) -> None:
    from ketasim import validation

    known = {c.id for c in validation.load_cases()}
    with tempfile.TemporaryDirectory() as tmp:
        scenario, out = Path(tmp) / "s.toml", Path(tmp) / "out"
        scenario.write_text(FLAG_SCENARIO, encoding="utf-8")
        if args[0] == "validate":
            line = [*args, "--out", str(out)]
            if known & set(line):
                return  # a real case would run
        elif args[0] == "drugs":
            line, out = args, None
        else:
            line = [args[0], str(scenario), *args[1:]]
            if args[0] in ("run", "export-sbml"):
                out = out if args[0] == "run" else Path(tmp) / "model.xml"
                line += ["--out", str(out)]
        with tiny_runs(), mock.patch.object(ks, "run", _unreachable):
            res = runner.invoke(app, line)
        if isinstance(res.exception, Reached):
            return  # the flags were accepted; the run itself is tested elsewhere
        check_contract(res, out if out is None or out.suffix != ".xml" else None)
        if res.exit_code == 2 and out is not None and out.suffix == ".xml":
            assert not out.exists()  # a failed export writes no file
        assert res.exit_code == 2 or args[0] in ("drugs", "export-sbml"), (line, res.output)
