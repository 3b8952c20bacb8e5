"""MkDocs hooks for kerlym's docs site (``hooks:`` in mkdocs.yml).

- ``<!-- kerlym:help -->`` in a page becomes the command's flags, group by group, generated from
  ``kerlym.main.build_parser()``, so the page cannot drift from ``kerlym --help``.
- ``<!-- kerlym:config NAME -->`` becomes a table of the fields of ``kerlym.config.NAME``: name, type,
  default, flags (``--<name>`` and the original spellings) and the help text kept in each field's metadata.
- ``benchmarks/README.md`` and its figures are served as the page ``benchmarks/`` (they live beside the
  scripts that produce them); links written ``../benchmarks/...`` in docs/ (right on GitHub) are
  pointed at it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import MISSING, fields

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.abspath(__file__))

HELP = "<!-- kerlym:help -->"
CONFIG = re.compile(r"<!-- kerlym:config (\w+) -->")
BENCHMARK_FILES = ("md", "png")


def on_files(files, config):
    """Add benchmarks/README.md and its figures to the site, under benchmarks/."""
    folder = os.path.join(ROOT, "benchmarks")
    for dirpath, _, names in os.walk(folder):
        for name in sorted(names):
            if name.rsplit(".", 1)[-1] in BENCHMARK_FILES:
                path = os.path.relpath(os.path.join(dirpath, name), ROOT)
                files.append(File(path, ROOT, config["site_dir"], config["use_directory_urls"]))
    return files


# Sphinx roles in docstrings (":func:`x`"), which mkdocstrings renders as text before the code.
ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|exc|obj):(<code>)~?")


def on_page_content(html, page, config, files):
    return ROLE.sub(r"\1", html)


def on_page_markdown(markdown, page, config, files):
    markdown = markdown.replace("](../benchmarks/", "](benchmarks/")
    if page.file.src_uri.startswith("benchmarks/"):
        # benchmarks/README.md links the docs as ../docs/X.md (right on GitHub); on the site they are ../X.md.
        markdown = markdown.replace("](../docs/", "](../")
    if HELP in markdown:
        markdown = markdown.replace(HELP, command_reference())
    return CONFIG.sub(lambda m: config_table(m.group(1)), markdown)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.dest}`"
    metavar = ""
    if action.nargs != 0:
        metavar = action.metavar or (
            action.dest.upper() if not action.choices else "{" + ",".join(map(str, action.choices)) + "}"
        )
        metavar = f" {metavar}" + (" ..." if action.nargs in ("+", "*") else "")
        if action.nargs == "?":
            metavar = f" [{metavar.strip()}]"
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _this_checkout() -> None:
    """Import kerlym from this checkout, installed or not (MkDocs restores sys.path after loading hooks)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def command_reference() -> str:
    """``kerlym --help`` as Markdown: the usage line, then one table per flag group."""
    _this_checkout()
    from kerlym.main import build_parser

    parser = build_parser()
    out = [parser.description or "", "", "```text", parser.format_usage().strip(), "```", ""]
    for group in parser._action_groups:  # argparse keeps its groups here; there is no public accessor
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        out += [f"## {group.title[0].upper()}{group.title[1:]}", "", "| flag | what it does |", "| --- | --- |"]
        out += [f"| {_flags(a)} | {_cell(a.help or '')} |" for a in actions]
        out.append("")
    out += [parser.epilog or ""]
    return "\n".join(out)


def config_table(name: str) -> str:
    """The fields of ``kerlym.config.<name>`` as a Markdown table."""
    _this_checkout()
    from kerlym import config as C

    cls = getattr(C, name)
    rows = ["| setting | type | default | flags | what it does |", "| --- | --- | --- | --- | --- |"]
    for f in fields(cls):
        default = f"`{f.default!r}`"  # in code spans a | does not split the cell
        cli = f.metadata.get("cli_default", MISSING)
        if cli is not MISSING:
            default += f" (command: `{cli!r}`)"
        flags = ", ".join(f"`{flag}`" for flag in f.metadata.get("flags", ()))
        kind, text = str(f.type), _cell(f.metadata["help"])
        rows.append(f"| `{f.name}` | `{kind}` | {default} | {flags} | {text} |")
    return "\n".join(rows)
