"""Model compilation: PyTorch → ONNX → bundle (the TensorRT engine is built on the device:
:mod:`edge.backends.builder`).

Submodules import their heavy dependencies (torch) themselves, so importing this package is cheap
and works on a device without PyTorch.
"""
