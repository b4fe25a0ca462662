"""One small model per ONNX mapping (each converter and its options, every supported opset), and
the refusals: an unsupported op, a model that does not run on ``args``, bad names and axes, an
output path that cannot be written."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install '.[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="ONNX export tests need onnxruntime: pip install '.[onnx]'"
)

from onnx_helpers import assert_close, check_batches, export_bytes, session  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop import nn  # noqa: E402
from deltaprop.errors import ExportError, InputError  # noqa: E402
from deltaprop.nn import functional as F  # noqa: E402
from deltaprop.onnx.builder import MAX_OPSET, MIN_OPSET  # noqa: E402
from deltaprop.tensor import Function  # noqa: E402


class Fn(nn.Module):
    """A module whose forward is ``fn(x, *params)``: parameters make the ops record."""

    def __init__(self, fn, *param_shapes):
        super().__init__()
        self.fn = fn
        rng = np.random.default_rng(3)
        for i, shape in enumerate(param_shapes):
            value = rng.standard_normal(shape).astype(np.float32)
            self.register_parameter(f"p{i}", nn.Parameter(value))

    def forward(self, x):
        return self.fn(x, *[getattr(self, f"p{i}") for i in range(len(self._parameters))])


def _x(shape, low=-2.0, high=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return lambda n: rng.uniform(low, high, (n, *shape)).astype(np.float32)


# (id, forward, parameter shapes, sample shape, input range)
OPS = [
    ("add-sub-mul-div", lambda x, w: (x + w) * (x - 1.5) / (w * w + 1), [(5,)], (5,), None),
    ("pow-neg-abs", lambda x, w: (-x).abs() ** 1.5 + x**2 + x ** w.abs(), [(5,)], (5,), (0.1, 2)),
    ("exp-log-sqrt", lambda x: x.exp().log() + x.sqrt() + x**0.5, [], (6,), (0.1, 3)),
    ("tanh-sigmoid", lambda x: x.tanh() + x.sigmoid() * 2, [], (2, 5), None),
    ("relu-leaky", lambda x: F.relu(x) - F.leaky_relu(x, 0.2), [], (7,), None),
    ("gelu", lambda x: F.gelu(x) + F.gelu(x * 2, approximate="tanh"), [], (9,), (-6, 6)),
    ("softmax", lambda x: F.softmax(x, dim=-1) + F.log_softmax(x, dim=1), [], (3, 4), None),
    ("max-min", lambda x, w: dp.maximum(x, w) - dp.minimum(x, 0.5), [(4,)], (4,), None),
    (
        "clamp-where",
        lambda x: (
            x.clamp(-0.5, 1.0) + dp.where(dp.tensor([True, False] * 3), x, 0.0) + x.clamp(max=0.3)
        ),
        [],
        (6,),
        None,
    ),
    ("cast-clone", lambda x: x.double().float() + x.clone(), [], (3,), None),
    (
        "sum-mean",
        lambda x: x.sum(1, keepdim=True) + x.mean(-1, keepdim=True) + x.sum(),
        [],
        (3, 4),
        None,
    ),
    ("amax-max", lambda x: x.amax(1) + x.max(dim=1)[0] - x.amin(dim=1), [], (3, 4), None),
    (
        "var-std",
        lambda x: x.var(1) + x.std(1, correction=0) + x.var((1, 2), keepdim=True)[:, 0],
        [],
        (3, 4),
        None,
    ),
    (
        "matmul",
        lambda x, w: x @ w + (x.transpose(1, 2) @ x).sum(1, keepdim=True),
        [(4, 4)],
        (3, 4),
        None,
    ),
    ("linear-3d", lambda x, w, b: F.linear(x, w, b), [(6, 4), (6,)], (2, 4), None),
    ("linear-nobias", lambda x, w: F.linear(x, w), [(6, 4)], (4,), None),
    (
        "permute-expand",
        lambda x: x.permute(0, 2, 1) + x.sum(1, keepdim=True).expand(-1, 4, 3).transpose(1, 2),
        [],
        (4, 3),
        None,
    ),
    ("getitem", lambda x: x[:, 1:3, ::2] * x[:, -1:, 1::2] + x[:, 0, None, ::2], [], (4, 6), None),
    (
        "getitem-ellipsis",
        lambda x: x[..., 2] + x[:, :, [0, 3]].sum(-1) + x[:, ::-1, -1],
        [],
        (3, 5),
        None,
    ),
    (
        "stack-cat",
        lambda x: dp.stack([x, x * 2], dim=1).flatten(1) + dp.cat([x, x], 1),
        [],
        (3,),
        None,
    ),
    (
        "reshape-unsqueeze",
        lambda x: (
            x.reshape(x.shape[0], 2, 3).unsqueeze(1).squeeze(1).view(-1, 6)
            + x.unsqueeze(0).squeeze(0)
        ),
        [],
        (6,),
        None,
    ),
    (
        "reshape-batch-merged",  # the batch flattened with the axes behind it, then split again
        lambda x, w: (
            (x.reshape(-1, 4) @ w).reshape(x.shape[0], 3, 4)
            + x.reshape(-1).reshape(x.shape[0], -1).reshape(x.shape)
            + x.reshape(x.shape[0] * 3, 2, 2).unsqueeze(0).squeeze(0).reshape(x.shape)
        ),
        [(4, 4)],
        (3, 4),
        None,
    ),
    (
        "conv-stride-dilation",
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=(1, 2), dilation=(2, 1)),
        [(4, 2, 3, 3), (4,)],
        (2, 9, 8),
        None,
    ),
    (
        "conv-same-groups",
        lambda x, w: F.conv2d(x, w, padding="same", groups=2),
        [(4, 1, 4, 2)],
        (2, 7, 6),
        None,
    ),
    (
        "maxpool-pad-dil-ceil",
        lambda x: F.max_pool2d(x, 3, 2, padding=1, dilation=2, ceil_mode=True) + 0,
        [],
        (2, 9, 9),
        None,
    ),
    (
        "avgpool-pad",
        lambda x: (
            F.avg_pool2d(x, 3, 2, padding=1)
            + F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)
        ),
        [],
        (2, 8, 8),
        None,
    ),
    (
        "avgpool-ceil-divisor",
        lambda x: (
            F.avg_pool2d(x, 2, 2, ceil_mode=True)[..., :2, :2]
            + F.avg_pool2d(x, 2, divisor_override=3)
        ),
        [],
        (1, 5, 5),
        None,
    ),
    (
        "pools-ceil-last-window",  # ceil mode: partial last windows, one starting in the padding
        lambda x: (
            F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False)
            + F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True)
            + F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True)
            + F.avg_pool2d(x, 2, 2, padding=1, ceil_mode=True)[..., :4, :4]
            + F.max_pool2d(x, 2, 2, padding=1, ceil_mode=True)[..., :4, :4]
        ),
        [],
        (2, 6, 7),
        None,
    ),
    (
        "layernorm",
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b) + F.layer_norm(x, 4),
        [(3, 4), (3, 4)],
        (3, 4),
        None,
    ),
    (
        "batchnorm-eval",
        lambda x, w, b: (
            F.batch_norm(x, dp.tensor([0.5, -1.0, 0.0]), dp.tensor([2.0, 0.5, 1.0]), w, b, False)
            + F.batch_norm(x, dp.zeros(3), dp.ones(3))
        ),
        [(3,), (3,)],
        (3, 2, 2),
        None,
    ),
    ("dropout-functional", lambda x: F.dropout(x, 0.5, training=False) * 2, [], (4,), None),
]


@pytest.mark.parametrize(
    "fn,params,shape,span", [case[1:] for case in OPS], ids=[case[0] for case in OPS]
)
def test_op_mappings(fn, params, shape, span):
    low, high = span or (-2.0, 2.0)
    check_batches(Fn(fn, *params), _x(shape, low, high), batches=(2, 5))


@pytest.mark.parametrize("opset", range(MIN_OPSET, MAX_OPSET + 1))
def test_every_opset(opset):
    """LayerNormalization and Gelu are decomposed below opsets 17 and 20; reductions take
    their axes as an input from opset 18."""
    dp.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8),
        nn.LayerNorm(8),
        nn.GELU(),
        nn.Linear(8, 8),
        nn.GELU("tanh"),
        nn.BatchNorm1d(8),
        nn.Linear(8, 3),
        nn.LogSoftmax(dim=1),
    )
    wrapped = Fn(
        lambda x, w: model(x) + x.mean(1, keepdim=True) * w + x.amax(1, keepdim=True), (3,)
    )
    wrapped.model = model
    data = check_batches(wrapped, _x((6,)), opset_version=opset)
    proto = onnx.load_from_string(data)
    assert proto.opset_import[0].version == opset
    ops = {n.op_type for n in proto.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert ("Gelu" in ops) == (opset >= 20)


def test_float64_models_match_closely():
    """In float64 the mapping itself is checked to ~1e-12 (float32 rounding hides little)."""
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.LeakyReLU(0.1), nn.Tanh(), nn.Linear(7, 3)).double()
    x = np.random.default_rng(0).standard_normal((4, 5))
    sess = session(export_bytes(model, x))
    model.eval()
    ref = model(dp.tensor(x)).data
    assert_close(sess.run(None, {"input": x})[0], ref, rtol=1e-12)


def test_several_inputs_and_outputs():
    class TwoInTwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)

        def forward(self, x, z):
            h = self.a(x) + self.b(z)
            return h, F.softmax(h, dim=1)

    dp.manual_seed(0)
    model = TwoInTwoOut()
    rng = np.random.default_rng(0)

    def make(n):
        return (
            rng.standard_normal((n, 3)).astype(np.float32),
            rng.standard_normal((n, 2)).astype(np.float32),
        )

    data = check_batches(model, make)
    proto = onnx.load_from_string(data)
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_output_that_is_an_input_or_repeated():
    class Passthrough(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            y = self.fc(x)
            return y, y, x

    model = Passthrough()
    x = np.ones((2, 2), np.float32)
    sess = session(export_bytes(model, x))
    y1, y2, same = sess.run(None, {"input": x})
    model.eval()
    assert_close(y1, model(dp.tensor(x))[0].data)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(same, x)


def test_dynamic_axes_list_form_and_named_outputs():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    data = export_bytes(
        model,
        np.zeros((2, 3, 4), np.float32),
        input_names=["images"],
        output_names=["scores"],
        dynamic_axes={"images": [0], "scores": [0]},
    )
    proto = onnx.load_from_string(data)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "images_dynamic_axes_1"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "scores_dynamic_axes_1"
    sess = session(data)
    assert sess.run(None, {"images": np.zeros((9, 3, 4), np.float32)})[0].shape == (9, 3)


def test_without_dynamic_axes_the_shape_is_fixed():
    model = nn.Sequential(nn.Linear(3, 2))
    proto = onnx.load_from_string(export_bytes(model, np.zeros((4, 3), np.float32)))
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [4, 2]


# ----------------------------------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------------------------------


class CubeFunction(Function):
    """A user-defined op: y = x^3, dy/dx = 3 x^2 (no ONNX mapping)."""

    def forward(self, x):
        return x**3

    def backward(self, gy):
        (x,) = self.saved_inputs()
        return (gy * 3 * x * x,)


class Cube(nn.Module):
    def forward(self, x):
        return CubeFunction().apply(x)


def test_unsupported_op_is_named_with_its_module():
    model = nn.Sequential(nn.Linear(3, 2), Cube())
    with pytest.raises(ExportError, match=r"op Cube \(CubeFunction\), used in module '1' \(Cube\)"):
        export_bytes(model, np.zeros((2, 3), np.float32))


def test_unsupported_op_in_a_forward_outside_submodules():
    model = Fn(lambda x, w: CubeFunction().apply(x * w), (3,))
    with pytest.raises(
        ExportError, match=r"op Cube .*the forward of Fn \(outside its submodules\)"
    ):
        export_bytes(model, np.zeros((2, 3), np.float32))


def test_model_that_does_not_run_on_args():
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ExportError, match=r"does not run on args \(shapes \(2, 3\)\).*linear"):
        export_bytes(model, np.zeros((2, 3), np.float32))


@pytest.mark.parametrize(
    "where,message",
    [
        ("missing/model.onnx", "does not exist"),
        ("", "is a directory"),
    ],
)
def test_unwritable_output_path(tmp_path, where, message):
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ExportError, match=message):
        dp.onnx.export(model, np.zeros((1, 3), np.float32), tmp_path / where)
    assert list(tmp_path.iterdir()) == []


def test_output_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file, not a directory"):
        dp.onnx.export(nn.Sequential(nn.Linear(3, 2)), dp.ones(1, 3), tmp_path / "file" / "m.onnx")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_output_path_where_writing_fails():
    """/proc takes no new files, even for root: the write itself fails, with the path named."""
    with pytest.raises(ExportError, match="cannot write the ONNX file '/proc/deltaprop.onnx'"):
        dp.onnx.export(nn.Sequential(nn.Linear(3, 2)), dp.ones(1, 3), "/proc/deltaprop.onnx")


def test_output_path_of_a_read_only_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("running as a user who may write read-only files (root)")
    with pytest.raises(ExportError, match="permission denied"):
        dp.onnx.export(nn.Sequential(nn.Linear(3, 2)), np.zeros((1, 3), np.float32), path)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"opset_version": 12}, "opset_version 12 is not supported; choose 13 to 21"),
        ({"input_names": ["a", "b"]}, "input_names has 2 names but the model has 1"),
        ({"input_names": ["x"], "output_names": ["x"]}, "share"),
        ({"dynamic_axes": {"nope": [0]}}, "neither an input"),
        ({"dynamic_axes": {"input": {5: "b"}}}, "out of range"),
        ({"dynamic_axes": {"input": 0}}, "must be a dict"),
        ({"output_names": ["0.weight"]}, r"names \['0.weight'\] are already the names"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ExportError, match=message):
        export_bytes(nn.Sequential(nn.Linear(3, 2)), np.zeros((2, 3), np.float32), **kwargs)


def test_bad_args_and_errors_are_input_errors():
    with pytest.raises(ExportError, match="floating point"):
        export_bytes(nn.Sequential(nn.Linear(3, 2)), np.zeros((2, 3), np.int64))
    with pytest.raises(ExportError, match="Tensors or NumPy arrays"):
        export_bytes(nn.Sequential(nn.Linear(3, 2)), [[1.0, 2.0, 3.0]])
    assert issubclass(ExportError, InputError)


def test_output_computed_outside_the_graph():
    model = Fn(lambda x: dp.tensor(x.detach().numpy() * 2) + 0)
    with pytest.raises(ExportError, match="does not depend on any input"):
        export_bytes(model, np.zeros((2, 3), np.float32))


def test_batch_norm_in_training_mode_is_refused():
    model = Fn(lambda x, w: F.batch_norm(x, None, None, w, None, training=True), (3,))
    with pytest.raises(ExportError, match="training mode"):
        export_bytes(model, np.ones((4, 3), np.float32))


def test_where_with_a_condition_from_the_input_is_refused():
    """Also when the second trace cannot run (a model that checks its input's domain): the
    condition spans the dynamic batch axis, so it cannot be a constant of the model."""

    def forward(x, w):
        if float(x.data.min()) < 0:
            raise ValueError("expects non-negative inputs")
        return dp.where(x > 0.5, x * w, 0.0)

    with pytest.raises(ExportError, match="comparisons are not recorded"):
        export_bytes(Fn(forward, (3,)), np.ones((2, 3), np.float32), dynamic_axes={"input": [0]})


def test_reshape_that_cannot_keep_the_batch_free_is_refused():
    model = Fn(lambda x, w: dp.cat([x, x * w], 0).reshape(-1), (3,))  # sliced/concatenated batch
    with pytest.raises(ExportError, match="cannot be followed"):
        export_bytes(model, np.ones((2, 3), np.float32), dynamic_axes={"input": [0]})
    model = Fn(lambda x, w: (x * w).reshape(-1), (3, 4))  # two dynamic axes merged
    with pytest.raises(ExportError, match="moves several dynamic axes"):
        export_bytes(model, np.ones((2, 3, 4), np.float32), dynamic_axes={"input": [0, 1]})


@pytest.mark.parametrize(
    "forward",
    [
        lambda x, w: dp.where(x > 0, x * w, 0.0),  # a comparison
        lambda x, w: (x * w)[:, dp.argmax(x, dim=1)],  # an index computed from the input
        lambda x, w: x * w + dp.tensor(x.detach().numpy() ** 2),  # a tensor rebuilt from .numpy()
    ],
    ids=["comparison", "index", "numpy"],
)
def test_values_computed_from_the_input_outside_the_graph_are_refused(forward):
    with pytest.raises(ExportError, match="reads a value computed from the input outside"):  # noqa: PT012
        x = np.array(
            [[0.01, 0.02, -0.01], [-0.02, 0.0, 0.015]], np.float32
        )  # signs, order: fragile
        export_bytes(Fn(forward, (3,)), x)


@pytest.mark.parametrize(
    "forward,message",
    [
        (lambda x, w: x * w + dp.zeros(x.shape[0], 3), "sized by the input's shape"),
        (lambda x, w: x * w.reshape(1, 3).expand(x.shape[0], -1), "expand"),
    ],
    ids=["new-tensor", "expand"],
)
def test_sizes_taken_from_the_batch_are_refused_with_a_dynamic_batch(forward, message):
    model, x = Fn(forward, (3,)), np.ones((2, 3), np.float32)
    export_bytes(model, x)  # a fixed batch: nothing to follow
    with pytest.raises(ExportError, match=message):
        export_bytes(model, x, dynamic_axes={"input": [0]})


def test_random_values_in_the_forward_are_not_mistaken_for_input_values():
    model = Fn(lambda x, w: x * w + dp.randn(3), (3,))  # frozen noise, the same in both traces
    export_bytes(model, np.ones((2, 3), np.float32))


def test_control_flow_on_values_warns():
    def forward(x, w):
        return (x * w).relu() if float(x[0, 0]) == 1.0 else (x * w).tanh()

    x = np.ones((2, 3), np.float32)
    with pytest.warns(UserWarning, match="ran other ops for another input"):
        export_bytes(Fn(forward, (3,)), x)


def test_boolean_mask_indexing_is_refused():
    model = Fn(lambda x, w: (x * w)[:, np.array([True, False, True])], (3,))
    with pytest.raises(ExportError, match="boolean mask"):
        export_bytes(model, np.ones((2, 3), np.float32))


def test_detached_input_stays_an_input():
    model = Fn(lambda x, w: x.detach() * w, (3,))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    sess = session(export_bytes(model, x))
    got = sess.run(None, {"input": x + 1})[0]
    assert_close(got, (x + 1) * model.p0.data)


def test_pytorch_options(capsys):
    model, x = nn.Sequential(nn.Linear(3, 2)), np.ones((2, 3), np.float32)
    buf = io.BytesIO()
    dp.onnx.export(model, x, buf, opset_version=None, do_constant_folding=False, verbose=True)
    assert onnx.load_from_string(buf.getvalue()).opset_import[0].version == 17
    assert "Gemm" in capsys.readouterr().out
    with pytest.raises(ExportError, match="export_params=False is not supported"):
        dp.onnx.export(model, x, io.BytesIO(), export_params=False)


def test_buffer_is_readable_as_bytes():
    buf = io.BytesIO()
    dp.onnx.export(nn.Sequential(nn.Linear(3, 2)), dp.ones(1, 3), buf)
    assert onnx.load_from_string(buf.getvalue()).producer_name == "deltaprop"


def test_running_statistics_keep_their_buffer_names():
    class Standardise(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("centre", dp.tensor([0.5, -1.0, 2.0]))
            self.register_buffer("spread", dp.tensor([1.0, 4.0, 0.25]))

        def forward(self, x):
            return F.batch_norm(self.fc(x), self.centre, self.spread)

    model = Standardise()
    data = check_batches(model, _x((3,)), batches=(2, 4))
    names = {i.name for i in onnx.load_from_string(data).graph.initializer}
    assert {"centre", "spread", "fc.weight", "fc.bias"} <= names


@pytest.mark.parametrize(
    "forward",
    [
        lambda x, w: (x * w).var(0) + (x * w).std((0, 2), correction=0, keepdim=True)[0],
        lambda x, w: (x * w).var() + (x * w).mean(0).sum(),
        lambda x, w: (x * w)[1:].sum(0) + (x * w)[-2:, :, ::2].amax((0, 2))[:, None],
        lambda x, w: (x * w)[0] + (x * w)[-1] + (x * w)[[0, 1]].mean(0),
        lambda x, w: (x * w)[None, :, 1].sum(1) + (x * w)[::-1][0, 0],
    ],
    ids=["var-std", "all", "slices", "ints-gather", "none-reversed"],
)
@pytest.mark.parametrize("opset", [13, 18])
def test_reductions_and_indexing_along_the_dynamic_axis(forward, opset):
    """Outputs without the batch axis: a reduction over it, or an element picked from it."""
    model, make = Fn(forward, (4,)), _x((3, 4))
    data = export_bytes(model, make(3), dynamic_axes={"input": [0]}, opset_version=opset)
    sess = session(data)
    for n in (3, 6):
        x = make(n)
        assert_close(sess.run(None, {"input": x})[0], model(dp.tensor(x)).data)
