"""Compile-time tools, PyTorch → ONNX → bundle; they import torch, so edge/ and streams/ never import them."""
