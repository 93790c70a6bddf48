"""What every verb receives: parsed arguments, output, the config, and the CLI's errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gexdaemon.cli.output import Output
from gexdaemon.core.errors import GexError

if TYPE_CHECKING:
    from gexdaemon.config import Config

Handler = Callable[["Invocation"], int]


@dataclass(frozen=True)
class Verbs:
    """Where verbs are added, each with the common options (--config, --socket...) and its handler."""

    parsers: Any  # what `add_subparsers` returns
    common: argparse.ArgumentParser

    def add(
        self, name: str, handler: Handler, summary: str | None = None, **defaults: Any
    ) -> argparse.ArgumentParser:
        # No help at all (not help=None) keeps a verb out of its parent's list of verbs.
        listed: dict[str, Any] = {} if summary is None else {"help": summary}
        parser: argparse.ArgumentParser = self.parsers.add_parser(
            name, parents=[self.common], **listed
        )
        parser.set_defaults(handler=handler, **defaults)
        return parser


@dataclass
class Invocation:
    """One run of the CLI: parsed arguments, output, and the config loaded on demand."""

    args: argparse.Namespace
    output: Output
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from gexdaemon.config import load_config  # noqa: PLC0415 - only verbs that need it

            self._config = load_config(
                self.args.config or None,
                data_dir=getattr(self.args, "data_dir", None),
                socket=self.args.socket,
            )
        return self._config


class UsageError(GexError):
    code = "usage"
