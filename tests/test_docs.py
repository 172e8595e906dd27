"""docs/reference/ is generated from the code (docs/generate.py): regenerated here into a temporary
folder and compared with the committed pages, so a new config field, registry entry, CSV column
or server setting that the reference does not show fails the suite."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
STALE = "docs/reference is stale: run python docs/generate.py"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stale_pages(generated: Path, committed: Path) -> list[str]:
    """The pages that differ between two folders, by content, or exist in only one of them."""
    names = {p.name for p in generated.glob("*.md")} | {p.name for p in committed.glob("*.md")}
    return sorted(
        name
        for name in names
        if not (generated / name).exists()
        or not (committed / name).exists()
        or (generated / name).read_text() != (committed / name).read_text()
    )


def test_the_committed_reference_is_what_the_code_generates(tmp_path):
    _generator().generate(tmp_path)
    stale = stale_pages(tmp_path, REFERENCE)
    assert not stale, f"{STALE} ({', '.join(stale)} differ)"


def test_a_changed_page_is_found_stale(tmp_path):
    generated, committed = tmp_path / "generated", tmp_path / "committed"
    _generator().generate(generated)
    _generator().generate(committed)
    assert stale_pages(generated, committed) == []
    page = committed / "config.md"
    page.write_text(page.read_text().replace("| `rounds` |", "| `rounds_renamed` |"))
    (committed / "extra.md").write_text("a page nothing generates\n")
    assert stale_pages(generated, committed) == ["config.md", "extra.md"]


def test_every_config_field_and_setting_is_in_the_reference():
    from dataclasses import fields

    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

    config = (REFERENCE / "config.md").read_text()
    assert all(f"| `{name}` |" in config for name in ExperimentConfig.model_fields)
    settings = (REFERENCE / "settings.md").read_text()
    assert all(f"`{f.name if f.name != 'users_file' else 'users'}`" in settings for f in fields(Settings))
