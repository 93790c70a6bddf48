"""What every verb receives: parsed arguments, output, the config, and the CLI's errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gexdaemon.cli.output import Output
from gexdaemon.core.errors import GexError

if TYPE_CHECKING:
    from gexdaemon.config import Config

Handler = Callable[["Invocation"], int]


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
