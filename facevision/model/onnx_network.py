"""The CPU inference network as an ONNX graph run by ONNX Runtime: ``predict`` on a CPU never imports torch
(faster to start and to run than :mod:`facevision.model.inference`; README, "Fast start").

:func:`export_onnx` (needs torch and ``onnx``) turns the eager generator into ONNX bytes; :class:`OnnxNetwork`
runs them with the generator's interface on numpy arrays (units of :mod:`facevision.model.outputs`). An ONNX
file holds operators and tensors, no Python code; where it may come from is :mod:`facevision.model.inference_cache`'s
job.
"""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["OPSET", "META_KEY", "export_onnx", "OnnxNetwork"]

OPSET = 17
META_KEY = "facevision.json"  # the metadata_props entry holding export_onnx's ``metadata`` as JSON
_NAMES = ("depth", "corr", "mask_logits")


def export_onnx(model: Any, size: int, metadata: dict[str, Any] | None = None) -> bytes:
    """The eager generator ``model`` (torch, on the CPU) as ONNX file bytes for (B, 3, size, size) inputs."""
    import io
    import warnings

    import onnx
    import torch

    model = model.eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning and the exporter's deprecation notes
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buf, dynamo=False, opset_version=OPSET,
                          input_names=["rgb"], output_names=list(_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in ("rgb", *_NAMES)})
    proto = onnx.load_from_string(buf.getvalue())
    if metadata:
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(metadata)
    return proto.SerializeToString()


class OnnxNetwork:
    """ONNX file bytes -> the generator's interface on numpy arrays: (B, 3, S, S) float32 RGB in [0, 1] ->
    ``(depth, corr, mask_logits)``, each (B, C, S, S); ``config.image_size`` is S. Holds an ONNX Runtime session.
    threads: CPU threads of one call (None = ONNX Runtime's default). ValueError for bytes ONNX Runtime cannot load
    or a graph without the generator's input and outputs."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        if hasattr(ort, "disable_telemetry_events"):  # no usage events from a library run on users' photos
            ort.disable_telemetry_events()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 0 if threads is None else max(1, int(threads))
        opts.inter_op_num_threads = 1
        # threads that spin-wait between calls take the cores the rest of the pipeline (fit, mesh) needs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad file
            raise ValueError(f"ONNX Runtime cannot load the network ({type(exc).__name__}: {exc})") from None
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or outputs != list(_NAMES):
            raise ValueError(f"not a facevision generator graph (inputs {[i.name for i in inputs]}, outputs {outputs})")
        self.input_name = inputs[0].name
        self.metadata: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map.get(META_KEY,
                                                                                                        "{}"))
        size = self.metadata.get("image_size", inputs[0].shape[2])
        self.config = SimpleNamespace(image_size=int(size))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 3, S, S) float32 RGB in [0, 1] -> ``(depth, corr, mask_logits)`` numpy arrays."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        s = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"network input must be (B, 3, {s}, {s}), got {x.shape}")
        depth, corr, logits = self.session.run(None, {self.input_name: x})
        return depth, corr, logits
