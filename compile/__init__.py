"""Model compilation: PyTorch → ONNX → bundle, and bundle → TensorRT engine (``compile.engine``).

Submodules import their heavy dependencies (torch, tensorrt) themselves, so importing this package is cheap
and works on a device without PyTorch.
"""
