"""--qat: quantization-aware distillation with ModelOpt on the user's frames, exported as opset-17 Q/DQ that the
lint passes and the runtime runs (a few steps: the point is the path, the benchmark measures the gain)."""

from __future__ import annotations

import onnx
import pytest

pytest.importorskip("modelopt.torch.quantization")
pytest.importorskip("onnx2torch")

from calibration.dataset import calibration_set  # noqa: E402
from calibration.equalize import equalize  # noqa: E402
from calibration.gate import Gate  # noqa: E402
from calibration.lint import lint_qdq  # noqa: E402
from calibration.ptq import convert_opset  # noqa: E402
from calibration.qat import quantization_aware_distillation  # noqa: E402
from calibration.qdq_edit import quantized_layers  # noqa: E402

HIGHWAY = "videos/bgslibrary_highway_traffic_320x240.avi"


@pytest.mark.slow
def test_qat_of_yolox_exports_qdq_the_lint_and_the_gate_take(yolox_bundle, assets, tmp_path):
    found = calibration_set(yolox_bundle.input, [str(assets / HIGHWAY)], 8, 8, tmp_path / "cache")
    source = convert_opset(yolox_bundle.file("model"), tmp_path / "opset.onnx")
    source, _ = equalize(source, tmp_path / "equalized.onnx", list(found.batches()), yolox_bundle.input.name)
    result = quantization_aware_distillation(source, yolox_bundle, found.tensors, 2, tmp_path)
    assert result.steps == 2 and len(result.losses) == 1
    exported = onnx.load(str(result.quantized))
    assert exported.opset_import[0].version == 17 and lint_qdq(exported) > 400
    assert len(quantized_layers(exported)) == 113  # every convolution of YOLOX-nano
    assert [o.name for o in exported.graph.output] == ["output"]
    gate = Gate(yolox_bundle, found.holdout, max_drop=0.01)
    assert gate.score(result.quantized).score > 0.9  # the detections survive training and export
    assert gate.score(result.weights).score > 0.9
