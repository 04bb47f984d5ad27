"""Writing the mixin: every generated file, from one ``MixinConfig``.

``build(config)`` returns the files as text keyed by their path under the
output directory; ``write(config, out)`` writes them. The committed
``dashboards/`` and ``alerts/`` are ``write(MixinConfig(), repo_root)``, and a
test fails when they differ from a fresh build.
"""

from __future__ import annotations

import json
from pathlib import Path

from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards import build_dashboards
from ccobs.mixin.render import build_rule_files


def build(config: MixinConfig) -> dict[str, str]:
    """Relative path -> file content for every generated file."""
    files: dict[str, str] = {}
    for name, dashboard in build_dashboards(config).items():
        files[f"dashboards/{name}"] = json.dumps(dashboard, indent=2, sort_keys=False) + "\n"
    for name, text in build_rule_files(config).items():
        files[f"alerts/{name}"] = text
    return files


def write(config: MixinConfig, out: Path) -> list[Path]:
    """Write every file under ``out`` (creating folders); returns the paths written."""
    written = []
    for relative, content in sorted(build(config).items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
