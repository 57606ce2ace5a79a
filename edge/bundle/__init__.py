"""Bundles: a folder holding ``bundle.json`` and the model files it names."""

from edge.bundle.io import (
    BUNDLE_FILE,
    BUNDLE_SCHEMA,
    COLORS,
    DTYPES,
    LAYOUTS,
    NEEDS_KEYS,
    RESIZES,
    SCHEMA_VERSION,
    TASKS,
    Bundle,
    InputSpec,
    Thresholds,
    load_bundle,
    provenance,
    sha256_file,
    write_bundle,
)

__all__ = ["BUNDLE_FILE", "BUNDLE_SCHEMA", "COLORS", "DTYPES", "LAYOUTS", "NEEDS_KEYS", "RESIZES", "SCHEMA_VERSION",
           "TASKS", "Bundle", "InputSpec", "Thresholds", "load_bundle", "provenance", "sha256_file", "write_bundle"]
