"""The bundle's typed sections: decoder arguments and ``needs`` are declared as dataclasses and checked when the
bundle loads, so a misspelt or mistyped key is one line with the nearest valid key, never silently ignored;
decoders depend on the spec only, never on bundle I/O."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edge import crops
from edge.bundle import Needs, class_label, load_bundle
from edge.bundle.fields import FieldError, parse, schema_of
from edge.cli import main
from edge.decoders import DECODERS
from edge.errors import BadInputError
from edge.results import Detections

DECODER_MODULES = sorted((Path(__file__).parents[1] / "edge/decoders").glob("*.py"))


@dataclass(frozen=True)
class Example:
    count: int = field(default=3, metadata={"minimum": 1})
    scale: float = 1.0
    pair: tuple[float, float] = (0.0, 1.0)
    name: str | None = None


def test_parse_makes_typed_values():
    parsed = parse(Example, {"count": 4, "scale": 2, "pair": [1, 2]})
    assert parsed == Example(count=4, scale=2.0, pair=(1.0, 2.0))
    assert isinstance(parsed.scale, float) and isinstance(parsed.pair, tuple)
    assert schema_of(Example)["properties"]["name"] == {"type": ["string", "null"]}


@pytest.mark.parametrize(("values", "field_name", "problem"), [
    ({"cuont": 1}, "cuont", "unknown key; did you mean 'count'?"),
    ({"zzz": 1}, "zzz", "unknown key (keys: count, scale, pair, name)"),
    ({"count": "three"}, "count", "'three' is not of type 'integer'"),
    ({"count": 0}, "count", "0 is less than the minimum of 1"),
    ({"count": True}, "count", "True is not of type 'integer'"),
    ({"pair": [1, 2, 3]}, "pair", "is too long"),
])
def test_parse_names_the_field_and_the_problem(values, field_name, problem):
    with pytest.raises(FieldError) as error:
        parse(Example, values, "decoder_args")
    assert error.value.field == f"decoder_args.{field_name}" and problem in error.value.problem


@pytest.mark.parametrize("module", DECODER_MODULES, ids=lambda p: p.name)
def test_decoders_import_the_bundle_spec_not_its_io(module):
    """Decoders are loaded by bundle loading, so they may read what a bundle says but never load one."""
    imported = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    from_bundle = {name for name in imported if name == "edge.bundle" or name.startswith("edge.bundle.")}
    assert from_bundle <= {"edge.bundle.spec", "edge.bundle.fields"}, from_bundle


def test_every_decoder_declares_args_that_have_a_schema():
    for name, decoder in DECODERS.items():
        schema = schema_of(decoder.Args)
        assert schema["additionalProperties"] is False, name
        parse(decoder.Args, {})  # every argument has a default


def test_old_decoder_names_still_load():
    assert DECODERS["softmax-topk"] is DECODERS["topk"]


@pytest.fixture
def bundle_copy(yolox_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(yolox_bundle.root, folder)
    return folder


def edit(folder, **changes):
    doc = json.loads((folder / "bundle.json").read_text())
    doc.update(changes)
    (folder / "bundle.json").write_text(json.dumps(doc))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("args", "message"), [
    ({"ouput": "output"}, "field 'decoder_args.ouput': unknown key; did you mean 'output'?"),
    ({"output": 3}, "field 'decoder_args.output': 3 is not of type 'string', 'null'"),
])
def test_a_wrong_decoder_arg_is_one_line_naming_bundle_json(capsys, bundle_copy, assets, tmp_path, args, message):
    edit(bundle_copy, decoder_args=args)
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", bundle_copy,
                    "--out", tmp_path / "o")
    assert code == 3 and len(err) == 1, err
    assert str(bundle_copy / "bundle.json") in err[0] and message in err[0], err[0]


def test_a_misspelt_needs_key_is_one_line_naming_bundle_json(capsys, movenet_topdown_bundle, assets, tmp_path):
    folder = tmp_path / "pose"
    shutil.copytree(movenet_topdown_bundle.root, folder)
    edit(folder, needs={"detector": "yolox_nano", "min_scor": 0.5})
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", folder,
                    "--out", tmp_path / "o")
    assert code == 3 and len(err) == 1, err
    assert "bundle.json: field 'needs.min_scor': unknown key; did you mean 'min_score'?" in err[0], err[0]


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--decoder-arg", "scores_outptu=scores",
     "--decoder-arg scores_outptu: unknown key; did you mean 'scores_output'?"),
    ("--decoder-arg", "normalized=maybe", "--decoder-arg normalized: 'maybe' is not of type 'boolean'"),
    ("--needs", "detectr=x", "--needs detectr: unknown key; did you mean 'detector'?"),
])
def test_bundle_create_checks_its_flags(capsys, assets, tmp_path, flag, value, message):
    out = tmp_path / "ultraface"
    code, err = run(capsys, "bundle", "create", "--onnx", assets / "models/detection/ultraface_rfb_320x240.onnx",
                    "--task", "detection", "--decoder", "boxes", flag, value, "--out", out)
    assert code == 2 and err == [f"edge: error: {message}"]
    assert not out.exists()  # checked before anything is written


def test_needs_defaults_live_in_needs():
    needs = Needs(detector="d")
    assert needs and not Needs() and needs.kind == "detector" and needs.upstream == "d"
    assert needs.expand_for("pose") == 1.25 and needs.expand_for("classification") == 1.0
    assert Needs(detector="d", expand=2.0).expand_for("pose") == 2.0
    assert needs.to_json() == {"detector": "d"}
    assert Needs(detector="d", classes=("person",)).to_json() == {"detector": "d", "classes": ["person"]}


def test_label_fallback():
    assert class_label(["a", "b"], 1) == "b" and class_label(["a"], 7) == "class_7"
    assert class_label([], -1) == "class_-1"


def test_choose_matches_the_per_box_definition():
    """The vectorised choice is the obvious per-box one: wanted class, score at least min_score, best first."""
    rng = np.random.default_rng(0)
    labels = ["person", "car", "dog", "person"]  # a label may name two ids
    detections = Detections(np.zeros((200, 4), np.float32), rng.random(200).astype(np.float32),
                            rng.integers(0, 6, 200))  # ids 4, 5 have no label: class_4, class_5
    for needs in (Needs(detector="d", classes=("person", "dog"), min_score=0.3, max_crops=16),
                  Needs(detector="d", min_score=0.9), Needs(detector="d", classes=("car",), max_crops=500)):
        chosen = crops.choose(detections, needs, crops.wanted_classes(needs, labels))
        expected = [i for i in np.argsort(-detections.scores, kind="stable")
                    if (needs.classes is None or class_label(labels, int(detections.class_ids[i])) in needs.classes)
                    and detections.scores[i] >= needs.min_score][:needs.max_crops]
        assert chosen.tolist() == expected


def test_needs_round_trip_through_bundle_json(movenet_topdown_bundle):
    assert load_bundle(movenet_topdown_bundle.root).needs == movenet_topdown_bundle.needs


def test_decoder_made_in_code_checks_its_args(espnet_bundle):
    from dataclasses import replace

    from edge.backends.base import TensorInfo

    with pytest.raises(BadInputError, match="field 'decoder_args.upsampl': unknown key; did you mean 'upsample'"):
        DECODERS["softmax"](replace(espnet_bundle, decoder_args={"upsampl": "nearest"}),
                            [TensorInfo("out", (1, 21, 8, 8), np.float32)])
