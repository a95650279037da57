"""`python -m edgekit COMMAND`: parses the command line and dispatches to edgekit.commands.

Each command is one module there (its arguments and its work). Here: the parser that holds them,
and the one place where errors become exit codes: user errors (EdgekitError) print one line (+ a
hint) and exit with their code (edgekit.errors; docs/reference/exit-codes.md); anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import COMMAND_MODULES, command_module
from .errors import EdgekitError, UsageError, did_you_mean


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage errors -> our exit code 2 with a suggestion
        if "invalid choice:" in message and "argument command" in message:
            bad = message.split("'")[1] if "'" in message else ""
            message += did_you_mean(bad, COMMAND_MODULES)
        raise UsageError(message, hint=f"{self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="edgekit", description="Compile a model for edge targets; verify; benchmark.")
    ap.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        command_module(name).add_parser(sub)
    return ap


def main(argv=None) -> int:
    from .commands.common import check_result_paths

    try:
        args = build_parser().parse_args(argv)
        check_result_paths(args)
        return command_module(args.command).run(args)
    except EdgekitError as e:
        print(f"edgekit: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the disk said no (full, read-only, permissions): the user's to fix, in one line
        where = f" {e.filename}" if e.filename else ""
        print(f"edgekit: error: cannot read or write{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except RecursionError:  # a file nested deeper than any real one (a crafted manifest or graph)
        print("edgekit: error: an input file is nested too deeply to read; refused", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
