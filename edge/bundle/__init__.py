"""Bundles: a folder holding ``bundle.json`` and the model files it names.

:mod:`~edge.bundle.spec`: what a bundle says, as frozen values (no I/O; what decoders import).
:mod:`~edge.bundle.fields`: typed sections (``needs``, each decoder's ``decoder_args``) checked with "did you mean".
:mod:`~edge.bundle.schema`: the ``bundle.json`` schema. :mod:`~edge.bundle.io`: loading and writing folders.
:mod:`~edge.bundle.create`: ``edge bundle create`` (imported on its own: it opens the model to check it).
"""

from edge.bundle.io import load_bundle, provenance, sha256_file, write_bundle
from edge.bundle.schema import BUNDLE_SCHEMA, SCHEMA_VERSION
from edge.bundle.spec import (
    BUNDLE_FILE,
    COLORS,
    DTYPES,
    LAYOUTS,
    NEEDS_KEYS,
    RESIZES,
    TASKS,
    Bundle,
    InputSpec,
    Needs,
    Thresholds,
    class_label,
)

__all__ = ["BUNDLE_FILE", "BUNDLE_SCHEMA", "COLORS", "DTYPES", "LAYOUTS", "NEEDS_KEYS", "RESIZES", "SCHEMA_VERSION",
           "TASKS", "Bundle", "InputSpec", "Needs", "Thresholds", "class_label", "load_bundle", "provenance",
           "sha256_file", "write_bundle"]
