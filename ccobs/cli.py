"""The ``ccobs`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from ccobs import __version__
from ccobs.settings import ObservabilitySettings, SettingsError


def _settings_command(args: argparse.Namespace) -> int:
    settings = ObservabilitySettings.load(config_file=args.config)
    sys.stdout.write(yaml.safe_dump(settings.as_dict(), sort_keys=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccobs",
        description="Observability for LLM API proxies: metrics, logs, push, dashboards, alerts.",
    )
    parser.add_argument("--version", action="version", version=f"ccobs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    settings = commands.add_parser(
        "settings",
        help="print the effective settings (defaults, YAML file, CCOBS_* variables)",
        description="Validate and print the settings ccobs would use, as YAML. "
        "Exits 2 with a message naming the field when a value is invalid.",
    )
    settings.add_argument("--config", metavar="FILE", help="YAML settings file ($CCOBS_CONFIG)")
    settings.set_defaults(handler=_settings_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code: int = args.handler(args)
    except SettingsError as exc:
        print(f"ccobs: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
