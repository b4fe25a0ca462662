"""Bad input to ``deltaprop explain`` and ``deltaprop graph``: every case ends with exit
status 2 and one sentence naming the file or key, never a traceback; the spec parser, fuzzed
with hypothesis, raises nothing but SpecError."""

from __future__ import annotations

import copy
import subprocess

import pytest
from explain_helpers import MAZUR, cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltaprop.explain import SpecError, explain_spec, load_spec, parse_spec, render
from deltaprop.explain.spec import estimate_bytes


def one_sentence(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("command", ["explain", "graph"])
def test_a_spec_that_is_not_utf8(tmp_path, command):
    (tmp_path / "g.toml").write_bytes(bytes(range(128, 256)) * 16)
    one_sentence(cli(command, "g.toml", cwd=tmp_path), "g.toml", "not UTF-8")


@pytest.mark.parametrize("command", ["explain", "graph"])
def test_a_directory_is_named_as_such(tmp_path, command):
    (tmp_path / "somedir").mkdir()
    one_sentence(cli(command, "somedir", cwd=tmp_path), "somedir", "is a directory")


def test_steps_that_cannot_fit_are_refused_with_the_figure(tmp_path):
    text = MAZUR.read_text().replace("steps = 1", "steps = 100000000000")
    (tmp_path / "big.toml").write_text(text)
    r = cli("explain", "big.toml", cwd=tmp_path)
    one_sentence(
        r,
        "big.toml: steps:",
        "100000000000 steps would need about",
        "is available",
        "explain at most",
    )
    spec = load_spec(MAZUR)
    assert estimate_bytes(spec) * 100000000000 > 2**50  # petabytes: the figure is not a guess
    r = cli("explain", str(MAZUR), cwd=tmp_path)  # the one-step example still runs
    assert r.returncode == 0


@pytest.mark.parametrize(
    "text, words",
    [
        ("loss = \n", ["not valid TOML"]),
        ('loss = "mse_half"\nlr = 1e400\n', ["lr: expected a finite number"]),
        ('loss = "mse_half"\nlr = inf\n', ["lr: expected a finite number"]),
        ('loss = "mse_half"\nlr = 0.1\nsteps = -1\n', ["steps: expected an integer >= 1"]),
        ('[circuit]\nexpression = "x +"\nvalues = {x = 1.0}\n', ["cannot parse"]),
    ],
)
def test_malformed_specs(tmp_path, text, words):
    (tmp_path / "s.toml").write_text(text)
    one_sentence(cli("explain", "s.toml", cwd=tmp_path), *words)


def test_values_that_overflow_are_one_sentence(tmp_path):
    (tmp_path / "huge.toml").write_text(
        'loss = "mse_half"\nlr = 0.5\n[[layers]]\nweights = [[1e200, 1e200]]\nbiases = [0.0]\n'
        "[data]\ninputs = [[1e200, 1.0]]\ntargets = [[0.0]]\n"
    )
    one_sentence(
        cli("explain", "huge.toml", cwd=tmp_path),
        "huge.toml: step 1:",
        "not a finite number",
        "use smaller weights, inputs or lr",
    )
    from deltaprop import nn
    from deltaprop.explain import trace

    model = nn.Sequential(nn.Linear(1, 1)).double()
    with pytest.raises(SpecError, match="update of layer 1 overflows"):
        trace(model, [[1e10]], [[-1e10]], lr=1e300)


# ----------------------------------------------------------------------------------------------
# fuzzing: only SpecError escapes the parser
# ----------------------------------------------------------------------------------------------

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([10**400, -(10**400), 2**63, 1e308, -0.0])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "linear",
            "conv2d",
            "maxpool2d",
            "avgpool2d",
            "layernorm",
            "batchnorm",
            "dropout",
            "sigmoid",
            "softmax",
            "mse_half",
            "ce",
            "bce",
            "mean",
            "sum",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

RAW = [
    {
        "loss": "mse_half",
        "lr": 0.5,
        "layers": [
            {
                "weights": [[0.15, 0.2], [0.25, 0.3]],
                "biases": [0.35, 0.35],
                "activation": "sigmoid",
            },
            {"type": "layernorm", "gamma": [1.0, 2.0], "eps": 1e-5},
            {"type": "dropout", "p": 0.5},
            {"weights": [[0.4, 0.45]], "biases": [0.6], "activation": "sigmoid"},
        ],
        "data": {"inputs": [[0.05, 0.1], [0.2, 0.3]], "targets": [[0.01], [0.99]]},
    },
    {
        "loss": "ce",
        "lr": 0.1,
        "batch_size": 2,
        "layers": [
            {"type": "conv2d", "weights": [[1.0, -1.0], [0.5, 2.0]], "stride": 1},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
            {"type": "batchnorm"},
            {"weights": [[0.1], [0.4]], "biases": [0.0, 0.0], "activation": "softmax"},
        ],
        "data": {
            "inputs": [[[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, -1.0, 1.0]]] * 2,
            "targets": [0, 1],
        },
    },
    {"circuit": {"expression": "q = x + y; f = q * z", "values": {"x": 1.0}}},
]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _parse_only_spec_errors(raw) -> None:
    try:
        parse_spec(raw, source="fuzz.toml")
    except SpecError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "loss",
                "lr",
                "steps",
                "layers",
                "data",
                "sizes",
                "seed",
                "batch_size",
                "reduction",
                "circuit",
                "activation",
                "dtype",
                "title",
                "train_biases",
            ]
        ),
        values,
        max_size=8,
    )
)
def test_fuzz_random_documents(raw):
    _parse_only_spec_errors(raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RAW) - 1), st.data(), values)
def test_fuzz_mutated_valid_specs(which, data, value):
    raw = copy.deepcopy(RAW[which])
    paths = list(_paths(raw))[1:]
    path = data.draw(st.sampled_from(paths))
    target = raw
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()):
        target[path[-1]] = value
    elif isinstance(target, dict):
        del target[path[-1]]
    else:
        target.pop(path[-1])
    _parse_only_spec_errors(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.toml"
    path.write_bytes(blob)
    try:
        load_spec(path)
    except SpecError:
        pass


@pytest.mark.parametrize("key", ["lr", "steps", "seed", "batch_size", "weights"])
def test_integers_beyond_float64(key):
    raw = copy.deepcopy(RAW[0])
    if key == "weights":
        raw["layers"][0]["weights"][0][0] = 10**400
    else:
        raw[key] = 10**400
    try:
        parse_spec(raw, source="big.toml")
    except SpecError as e:
        assert str(e).startswith("big.toml: ")


finite = st.floats(min_value=-1e300, max_value=1e300) | st.sampled_from([0.0, 1e300, 1e-300])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), st.data(), finite)
def test_fuzz_running_specs_with_extreme_numbers(which, data, value):
    """Specs that parse also run and render, or stop with one SpecError (overflow)."""
    raw = copy.deepcopy(RAW[which])
    floats = [p for p in _paths(raw) if p and isinstance(_get(raw, p), float)]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(floats))
        _get(raw, path[:-1])[path[-1]] = value
    try:
        tr = explain_spec(parse_spec(raw, source="fuzz.toml"))
    except SpecError as e:
        assert str(e).startswith("fuzz.toml: ")
        return
    for fmt in ("text", "markdown", "latex", "html", "json"):
        assert render(tr, fmt)


def _get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def test_the_unmutated_fuzz_seeds_are_valid():
    for raw in RAW:  # so that the mutations reach past the first check
        parse_spec(copy.deepcopy(raw))


@pytest.mark.parametrize("out", ["somedir", "afile/x.html", "/proc/x.html", "nodir/x.html"])
def test_out_that_cannot_be_written(tmp_path, out):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "afile").write_text("x")
    r = cli("explain", str(MAZUR), "--out", out, cwd=tmp_path)
    one_sentence(r, "--out")
    r = cli("graph", str(MAZUR), "--view", "neurons", "--out", out, cwd=tmp_path)
    one_sentence(r, "--out")
