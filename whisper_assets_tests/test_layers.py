"""The package's layers: imports point down only, domain code never imports Dagster, each source kind lives in
one module (the README's Layout section describes the same order)."""

import ast
import re
from pathlib import Path

import whisper_assets
from whisper_assets.sources.registry import SOURCE_KINDS

PACKAGE = Path(whisper_assets.__file__).parent
# Rooms from the bottom up; a module may import rooms below its own, and its own room.
LAYERS = [
    {"files", "partition_keys", "layout", "policy", "parallel", "reporting", "charts", "web_access"},
    {"audio", "text", "tables", "object_store", "compute"},
    {"speakers"},
    {"tts"},
    {"sources"},
    {"curation"},
    {"asr", "tracking"},
    {"training", "evaluation", "export", "segmentation"},
    {"keystrokes"},
    {"serving"},
    {"settings", "demo", "review_app"},
    {"defs"},
    {"definitions"},
    {"cli"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}
DAGSTER_ROOMS = {"defs", "definitions", "cli"}


def room(module: str) -> str:
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> dict[str, set[str]]:
    return {
        ".".join(("whisper_assets", *path.relative_to(PACKAGE).with_suffix("").parts)): imports(path)
        for path in PACKAGE.rglob("*.py")
    }


def test_every_room_has_a_layer():
    rooms = {room(name) for name in modules() if name.count(".") >= 1 and not name.endswith("__init__")}
    assert rooms <= set(RANK), f"put {sorted(rooms - set(RANK))} into a layer"


def test_imports_point_down_only():
    upward = []
    for name, imported in modules().items():
        if name == "whisper_assets.__init__":
            continue
        for target in imported:
            inside = target.startswith("whisper_assets.") and room(target) != room(name)
            if inside and RANK[room(target)] >= RANK[room(name)]:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_domain_code_never_imports_dagster():
    offenders = [
        name
        for name, imported in modules().items()
        if room(name) not in DAGSTER_ROOMS
        and any(t == "dagster" or t.startswith("dagster.") for t in imported)
    ]
    assert offenders == []


def test_each_source_kind_is_named_in_one_module_only():
    """`kind: <name>` literals live in their kind's module; nothing else dispatches on a kind's name."""
    for kind, cls in SOURCE_KINDS.items():
        pattern = re.compile(rf"""["']{kind}["']""")
        naming = sorted(
            str(path.relative_to(PACKAGE))
            for path in PACKAGE.rglob("*.py")
            if path.parent.name != "demo" and pattern.search(path.read_text(encoding="utf-8"))
        )
        assert naming == [str(Path(cls.__module__.replace(".", "/")).relative_to("whisper_assets")) + ".py"]
