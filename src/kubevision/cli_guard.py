"""The error boundary shared by every `kubevision` command.

Why one boundary: every command may be handed bad input, and a user must get a short, specific
message and exit code 1, never a traceback. Library code raises `KubevisionError` for everything a
user can fix; anything else is a bug in kubevision, reported as such in one line with a hint to rerun
with `--debug` (which shows the traceback for a bug report).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kubevision.api.errors import KubevisionError

__all__ = ["guarded"]

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Turn every exception into a one-line message and exit code 1 (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KubevisionError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as err:
            # Unreadable files, full disks, permissions: the user's environment, not our bug.
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            click.echo(f"error: {err.strerror or err}{where}", err=True)
            sys.exit(1)
        except Exception as err:  # the boundary that must never leak a traceback
            ctx = click.get_current_context(silent=True)
            debug = bool(ctx and ctx.find_root().params.get("debug"))
            if debug:
                traceback.print_exc()
            click.echo(
                f"internal error: {type(err).__name__}: {err}\n"
                "This is a bug in kubevision; rerun with `kubevision --debug ...` and report the traceback.",
                err=True,
            )
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
