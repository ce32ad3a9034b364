"""``samprompt serve label-studio``: samprompt as a Label Studio ML backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .common import add_encoder_options, add_model_options, positive_int

HELP = "serve samprompt to other tools (label-studio: an ML backend for Label Studio)"
DESCRIPTION = """Serve samprompt over HTTP to another tool. label-studio: Label Studio's ML-backend protocol
(/health, /setup, /predict, /webhook, /metrics). In a Label Studio project with <BrushLabels> plus smart
<KeyPointLabels>/<RectangleLabels>, clicks and boxes get SAM masks; tasks without a click get
pre-annotations (segment everything, or the boxes of --detections). Connect it in the project's
Settings > Model with this server's URL. See docs/annotator.md."""

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub, formatter) -> None:
    s = sub.add_parser("serve", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    kinds = s.add_subparsers(dest="tool", required=True, metavar="TOOL")
    ls = kinds.add_parser("label-studio", help="Label Studio's ML-backend protocol", description=DESCRIPTION,
                          formatter_class=formatter)
    add_model_options(ls)
    add_encoder_options(ls)
    ls.add_argument("--host", default="127.0.0.1",
                    help="address to listen on; another than this machine's loopback needs --basic-auth or --insecure")
    ls.add_argument("--port", type=positive_int, default=9090, help="port (Label Studio's examples use 9090)")
    ls.add_argument("--document-root", metavar="DIR",
                    help="folder that /data/local-files/?d=PATH and plain paths of tasks are read from "
                         "(Label Studio's LOCAL_FILES_DOCUMENT_ROOT)")
    ls.add_argument("--data-dir", metavar="DIR",
                    help="Label Studio's data folder, to read uploads (/data/upload/...) from disk")
    ls.add_argument("--label-studio-url", default=os.environ.get("LABEL_STUDIO_URL"), metavar="URL",
                    help="Label Studio's address, to fetch uploads and its own URLs (default: $LABEL_STUDIO_URL)")
    ls.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"), metavar="KEY",
                    help="Label Studio access token sent with those fetches (default: $LABEL_STUDIO_API_KEY)")
    ls.add_argument("--detections", metavar="COCO_JSON",
                    help="pre-annotate tasks from the boxes of a COCO detections file (matched by file name) "
                         "instead of segment everything")
    ls.add_argument("--points-per-side", type=positive_int, default=16, help="segment-everything grid")
    ls.add_argument("--basic-auth", metavar="USER",
                    help="require HTTP basic auth as USER (set the same in Label Studio's model connection); "
                         "the password comes from $SAMPROMPT_BACKEND_PASSWORD or is asked for without echo "
                         "(default: $BASIC_AUTH_USER / $BASIC_AUTH_PASS, as Label Studio's own backends)")
    ls.add_argument("--insecure", action="store_true",
                    help="serve on a non-loopback --host without --basic-auth: anyone who can reach the machine "
                         "can read the images it can read")
    ls.set_defaults(func=run)


def _auth(args) -> tuple[str, str] | None:
    import getpass

    from ..errors import SampromptError

    user = args.basic_auth or os.environ.get("BASIC_AUTH_USER")
    if not user:
        return None
    password = os.environ.get("SAMPROMPT_BACKEND_PASSWORD") or os.environ.get("BASIC_AUTH_PASS")
    if not password:
        if not sys.stdin.isatty():
            raise SampromptError("--basic-auth needs a password: set $SAMPROMPT_BACKEND_PASSWORD")
        password = getpass.getpass(f"password for {user}: ")
    if not password:
        raise SampromptError("an empty password is refused")
    return user, password


def run(args) -> int:
    from ..errors import SampromptError, require

    require("starlette", "app")
    require("uvicorn", "app")
    for flag, folder in (("--document-root", args.document_root), ("--data-dir", args.data_dir)):
        if folder and not Path(folder).is_dir():
            raise SampromptError(f"{flag} {folder}: no such folder")
    auth = _auth(args)
    if args.host not in LOOPBACK and auth is None and not args.insecure:
        raise SampromptError(f"--host {args.host} would let anyone who can reach this machine read the images this "
                             "server can read; give --basic-auth USER, or --insecure")
    from ..annotate.app import port_problem

    if problem := port_problem(args.host, args.port, "samprompt serve"):
        raise SampromptError(problem)
    import uvicorn

    from ..annotate.ls_backend import Backend, ImageSource, make_app
    from .common import load_segmenter

    images = ImageSource(document_root=args.document_root, data_dir=args.data_dir,
                         label_studio_url=args.label_studio_url, api_key=args.api_key)
    backend = Backend(load_segmenter(args), images, detections=args.detections,
                      points_per_side=args.points_per_side)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"samprompt Label Studio backend ({backend.version}) on http://{shown}:{args.port}/ "
          f"({'basic auth as ' + auth[0] if auth else 'no sign-in'}); Ctrl-C stops", flush=True)
    uvicorn.run(make_app(backend, auth), host=args.host, port=args.port, log_level="warning")
    print("samprompt Label Studio backend stopped", flush=True)
    return 0
