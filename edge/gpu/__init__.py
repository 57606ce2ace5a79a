"""GPU pre- and post-processing with pycuda kernels, for the TensorRT backend.

Importing this package imports neither pycuda nor CUDA: :class:`edge.gpu.cuda.CudaContext` does, when a
GPU path is actually used. The CPU implementations (:mod:`edge.preprocess`, :mod:`edge.decoders.segmentation`)
are the reference these kernels are tested against.
"""
