"""``samprompt annotate``: the Gradio annotator (it parses its own options)."""

from __future__ import annotations

import argparse

HELP = "interactive annotation in the browser (Gradio)"


def add_parser(sub, formatter) -> None:
    a = sub.add_parser("annotate", help=HELP, add_help=False, formatter_class=formatter,
                       description="Launch the Gradio annotator; see samprompt annotate --help.")
    a.add_argument("rest", nargs=argparse.REMAINDER, help="the annotator's own options")
    a.set_defaults(func=run)


def run(args) -> int:
    from ..errors import require

    rest = [a for a in args.rest if a != "--"]
    if rest[:1] == ["users"]:  # samprompt annotate users add NAME --role ...
        from ..annotate.users import users_main

        return users_main(rest[1:])
    require("gradio", "app")
    from ..annotate.app import main as annotate_main

    annotate_main(rest)
    return 0
