"""Image classification: class scores ``[1, C]`` → the top k classes, best first.

``decoder_args``: ``topk`` (default 5); ``softmax`` (default true: the outputs are logits, as torchvision
classifiers give; false when the model already outputs probabilities). Given a detector
(``needs.detector``), the model runner classifies each detected box's crop instead of the frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, register
from edge.preprocess import Transform
from edge.results import Classification


@register
class SoftmaxTopK(Decoder):
    name = "softmax-topk"
    task = "classification"
    accepts = ("detector",)

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.output = self.output_named("output", next(iter(self.outputs)))
        shape = self.outputs[self.output].shape
        if len(shape) != 2 or not isinstance(shape[1], int):
            raise self.bad(f"expected an output [1, classes], got {list(shape)}")
        self.topk = min(int(self.arg("topk", 5)), shape[1])
        self.softmax = bool(self.arg("softmax", True))

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Classification:
        scores = outputs[self.output][0].astype(np.float32)
        if self.softmax:
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        top = np.argpartition(-scores, self.topk - 1)[:self.topk]
        top = top[np.argsort(-scores[top], kind="stable")]
        return Classification(top.astype(np.int64), scores[top])
