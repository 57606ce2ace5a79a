"""Image classification: class scores ``[1, C]`` → the top k classes, best first (decoder ``topk``, which
bundles made before it was renamed call ``softmax-topk``: the softmax is optional).

``decoder_args``: ``topk`` (default 5); ``softmax`` (default true: the outputs are logits, as torchvision
classifiers give; false when the model already outputs probabilities). Given a detector
(``needs.detector``), the model runner classifies each detected box's crop instead of the frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edge.decoders.base import Decoder, OutputArgs
from edge.geometry import Transform
from edge.results import Classification


@dataclass(frozen=True)
class TopKArgs(OutputArgs):
    topk: int = field(default=5, metadata={"minimum": 1})
    softmax: bool = True


class TopKDecoder(Decoder, key="topk", aliases=("softmax-topk",), task="classification", accepts=("detector",),
                  args=TopKArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        shape = self.output_shape("[1, classes]", rank=2, static=(1,))
        self.check_labels(shape[1])
        self.topk = min(self.args.topk, shape[1])

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Classification:
        scores = outputs[self.args.output][0].astype(np.float32)
        if self.args.softmax:
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        top = np.argpartition(-scores, self.topk - 1)[:self.topk]
        top = top[np.argsort(-scores[top], kind="stable")]
        return Classification(top.astype(np.int64), scores[top])
