"""``deltaprop.onnx``: export a model to ONNX, as ``torch.onnx.export``.

:func:`export` runs the model once on example inputs, reads the graph the engine recorded and
writes it as an ONNX file that ONNX Runtime (or any ONNX consumer) runs::

    import deltaprop as dp

    dp.onnx.export(model, dp.randn(1, 1, 28, 28), "model.onnx",
                   input_names=["input"], output_names=["logits"],
                   dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

Any model works, not only a ``Sequential``: the graph is what the forward computed (skip
connections, concatenation, reshapes, functional ops). :data:`SUPPORTED_OPS` lists the ops with
an ONNX mapping; another op is refused with its name and the module it ran in. Writing needs
the ``onnx`` package (``pip install 'deltaprop[onnx]'``); running the file needs
``onnxruntime``. The command line does the same for a training run: ``deltaprop export --run
DIR --out model.onnx``.
"""

from deltaprop.errors import ExportError
from deltaprop.onnx.export import SUPPORTED_OPS, export

__all__ = ["export", "ExportError", "SUPPORTED_OPS"]
