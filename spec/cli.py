"""Subcommands of the spec part (placeholder until the TLC runner lands)."""


def register(sub) -> None:
    p = sub.add_parser("check", help="model-check models from spec/manifest.json")
    p.set_defaults(func=lambda args: 0)
