"""The samprompt annotator: interactive SAM prompting in the browser (Gradio).

    samprompt annotate [FOLDER] [--model tiny] [--host 127.0.0.1] [--port 7860] [--out DIR] [--import LABELS]

The page is a canvas (``canvas.js`` in a ``gr.HTML``) and a side panel.
On the canvas: points (left click positive, right click negative), boxes
(drag, or two clicks), a brush and an eraser, and polygon vertices to drag;
wheel zoom, pan, fit. The canvas keeps the picture and sends small commands; a
reply carries the mask overlay and vectors only, so nothing blanks while SAM
runs. Several objects per image, coloured by class with a legend; undo/redo;
segment-everything proposals to accept or discard; export COCO / PNG / YOLO-seg
plus the prompts. With a FOLDER, a file list shows each image's status (new,
saved, done), "done" moves to the next unfinished one, and saved annotations
are resumed. NIfTI volumes and DICOM series in the folder open slice by slice,
with window presets and propagation through the volume (``volume.py``).

Each browser tab has its own state (``gr.State``); the model and its
content-keyed embedding cache are shared. A tab's canvas sends one batch of
commands at a time and the server applies a tab's events one at a time (a lock
per tab; the buttons also share one Gradio queue), so a click followed at once
by ``z`` undoes that click. The class list is the folder's (``OUT/classes.json``),
the same in every tab and after a restart. Each image saves under a unique key:
its stem, or its path with a hash where two names of the folder clean up alike;
an upload under its stem and a hash of its content. Opening never writes; a
save based on a stale revision (another tab saved meanwhile) is refused.
"""

import argparse
import inspect
import json
import logging
from pathlib import Path

from ..errors import SampromptError
from ..images import IMAGE_SUFFIXES
from ..segmenter import Segmenter
from .document import StaleSaveError, stamp_objects
from .session import EDITS, MODES, Annotator, SessionState

CANVAS_JS = Path(__file__).with_name("canvas.js")
CANVAS_CSS = """
.sp-root { display: flex; gap: 8px; height: max(420px, min(780px, calc(100vh - 170px))); }
.sp-side { width: 190px; display: flex; flex-direction: column; font-size: 13px; }
.sp-files-title { font-weight: 600; padding: 2px 4px; }
.sp-files { overflow-y: auto; flex: 1; border: 1px solid #8884; border-radius: 6px; }
.sp-file { padding: 2px 6px; cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sp-file:hover { background: #8882; }
.sp-file.sp-on { background: #3b82f655; font-weight: 600; }
.sp-file.sp-done { color: #16a34a; }
.sp-file.sp-broken { color: #dc2626; }
.sp-main { flex: 1; display: flex; flex-direction: column; min-width: 0; gap: 4px; }
.sp-toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; font-size: 13px; }
.sp-toolbar button, .sp-volume button { padding: 2px 8px; border: 1px solid #8886; border-radius: 5px; background: #8881; }
.sp-toolbar button.sp-on { background: #3b82f6; color: #fff; border-color: #3b82f6; }
.sp-hint { opacity: 0.75; margin-left: 6px; }
.sp-stage { flex: 1; position: relative; min-height: 300px; border-radius: 6px; overflow: hidden; outline: none;
  user-select: none; -webkit-user-select: none; }
.sp-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.sp-away { position: absolute; left: 8px; right: 8px; top: 8px; padding: 6px 10px; border-radius: 6px;
  background: #b91c1c; color: #fff; font-weight: 600; }
.sp-notice { position: absolute; left: 50%; transform: translateX(-50%); top: 8px; max-width: 80%; padding: 6px 12px;
  border-radius: 6px; background: #b45309; color: #fff; font-weight: 600; cursor: pointer; z-index: 2; }
.sp-orient b { position: absolute; color: #fde047; font: 600 14px sans-serif; text-shadow: 0 0 3px #000; }
.sp-o-l { left: 6px; top: 50%; } .sp-o-r { right: 6px; top: 50%; } .sp-o-t { top: 4px; left: 50%; }
.sp-o-b { bottom: 4px; left: 50%; }
.sp-opacity { display: inline-flex; align-items: center; gap: 4px; margin-left: 6px; }
.sp-opacity input { width: 70px; }
.sp-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: #bbb; }
.sp-volume { display: flex; flex-wrap: nowrap; gap: 8px; align-items: center; font-size: 13px; }
.sp-volume select, .sp-volume button { padding: 2px 6px; font-size: 13px; width: auto; white-space: nowrap; }
.sp-volume select { padding-right: 22px; }
.sp-slice-no { white-space: nowrap; }
.sp-help { position: absolute; left: 8px; bottom: 8px; padding: 8px 12px; border-radius: 6px; line-height: 1.6;
  background: rgba(20, 20, 28, 0.92); color: #eee; font-size: 13px; }
.sp-volume[hidden], .sp-side[hidden], .sp-empty[hidden], .sp-away[hidden], .sp-help[hidden], .sp-notice[hidden],
.sp-orient[hidden] { display: none; }
.sp-volume label { display: flex; align-items: center; gap: 4px; flex: 1; min-width: 120px; }
.sp-slice { flex: 1; min-width: 60px; vertical-align: middle; }
.sp-legend { display: flex; flex-wrap: wrap; gap: 10px; font-size: 13px; min-height: 18px; }
.sp-class i { display: inline-block; width: 12px; height: 12px; border-radius: 3px; margin-right: 4px; vertical-align: -1px; }
.sp-class.sp-used { font-weight: 600; }
"""


def build_app(annotator: Annotator):
    """The Gradio Blocks UI over an :class:`Annotator`: the canvas (``annotate/canvas.js``) and a side panel."""
    import gradio as gr

    def reply(state, msg):
        choices = annotator.object_choices(state)
        current = choices[state.ann.current] if state.ann is not None and state.ann.current is not None and choices \
            else None
        side = (choices, current, annotator.progress(state))
        same = side == state.side  # then the side panel is left as it is: a lighter reply
        state.side = side
        view = annotator.view(state)
        if msg and msg.startswith("⚠️"):  # shown on the canvas too, where the user looks
            view["notice"] = msg[2:].strip()
        doc = json.dumps(view, separators=(",", ":"))  # one string: cheap for the page to take
        return (state, doc, msg or "", gr.skip() if same else gr.update(choices=choices, value=current),
                gr.skip() if same else side[2])

    def attempt(state, fn, *args) -> str:
        """Run an action and save; bad input becomes a status line and the app keeps working."""
        try:
            before = (id(state.ann), state.ann.edits) if state.ann is not None else None
            msg = fn(state, *args)
            if state.ann is not None and (id(state.ann), state.ann.edits) != before and before is not None \
                    and before[0] == id(state.ann):
                stamp_objects(state.ann, state.user)  # signed in: who made and who last changed each object
            annotator.autosave(state)
        except StaleSaveError as exc:  # asked where the user looks, and nothing is dropped whatever the answer
            name = state.ann.file_name if state.ann is not None else "this image"
            state.confirm = {"message": f"{name} was saved from another tab meanwhile, so your last change here "
                                        "is not saved.\n\nOK: show the saved version (what you made here is kept in "
                                        "a copy file).\nCancel: stay on your version (kept in a copy file when you "
                                        "move on).", "cmd": {"op": "reload_saved"}}
            msg = f"⚠️ {exc}"
        except (SampromptError, IndexError, ValueError, KeyError, TypeError) as exc:
            msg = f"⚠️ {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug must not stall the page: say it, log it, go on
            logging.getLogger("samprompt.annotator").exception("action failed")
            msg = f"⚠️ internal error ({type(exc).__name__}: {exc}); the details are in the server's log"
        if state.kept:
            msg, state.kept = f"{state.kept}; {msg}" if msg else state.kept, ""
        return msg

    def guard(fn):
        def wrapped(state, *args):
            *args, request = args  # Gradio passes the request last (the signature below asks for it)
            with state.lock:  # one event of a tab at a time, whichever way it came
                state.user = getattr(request, "username", None) or state.user  # signed in: every event knows who
                return reply(state, attempt(state, fn, *args))

        params = list(inspect.signature(fn).parameters.values())
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request)
        wrapped.__signature__ = inspect.Signature([*params, request])
        wrapped.__annotations__ = {"request": gr.Request}
        return wrapped

    def on_canvas(state, label_v, evt: gr.EventData, request: gr.Request):
        """A batch of canvas commands, applied in order."""
        data = evt._data if isinstance(evt._data, dict) else {}
        cmds = data.get("cmds", [])
        with state.lock:
            state.user = getattr(request, "username", None) or state.user
            msg = ""
            if state.ann is None and data.get("file"):  # a tab that outlived a server restart: its file first
                msg = attempt(state, annotator.reopen, str(data["file"]))
            for cmd in cmds if isinstance(cmds, list) else []:
                if isinstance(cmd, dict) and int(cmd.get("n", 0)) <= state.ack:
                    continue  # applied already: a batch sent again after its reply was lost
                if isinstance(cmd, dict):
                    msg = attempt(state, annotator.command, cmd, label_v or "object")
                    state.ack = max(state.ack, int(cmd.get("n", 0)))
            return reply(state, msg)

    with gr.Blocks(title="samprompt annotator") as app:
        state = gr.State(lambda: SessionState())  # a factory: one state per browser tab
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=760):
                canvas = gr.HTML("", html_template="", js_on_load=CANVAS_JS.read_text(), css_template=CANVAS_CSS,
                                 elem_id="canvas")
                status = gr.Markdown(elem_id="status", height=28)
            with gr.Column(scale=1, min_width=300):
                gr.Markdown("**samprompt annotator** · press **?** on the canvas for the keys")
                upload = gr.File(label="upload an image or a NIfTI volume", height=90, elem_id="upload",
                                 file_types=[*IMAGE_SUFFIXES, ".nii", ".gz"])
                progress = gr.Markdown(annotator.progress(SessionState()), elem_id="progress")
                with gr.Row():
                    prev_b = gr.Button("◀ previous", elem_id="prev", size="sm", min_width=60)
                    next_b = gr.Button("next ▶", elem_id="next", size="sm", min_width=60)
                    done_b = gr.Button("done ✓", elem_id="done", size="sm", min_width=60)
                advance = gr.Checkbox(True, label="after done, open the next unfinished file", elem_id="advance")
                classes = gr.Textbox(", ".join(annotator.classes), label="classes of this folder (comma-separated)",
                                     elem_id="classes")
                label = gr.Dropdown(annotator.classes, value=annotator.classes[0], allow_custom_value=True,
                                    label="class of new objects", elem_id="label")
                objects = gr.Dropdown([], label="objects", elem_id="objects")
                with gr.Row():
                    new_b = gr.Button("new object", elem_id="new", size="sm", min_width=60)
                    rename_b = gr.Button("set class", elem_id="rename", size="sm", min_width=60)
                    delete_b = gr.Button("delete", elem_id="delete", size="sm", min_width=60)
                with gr.Row():
                    undo_b = gr.Button("undo", elem_id="undo", size="sm", min_width=60)
                    redo_b = gr.Button("redo", elem_id="redo", size="sm", min_width=60)
                    clear_b = gr.Button("clear", elem_id="clear", size="sm", min_width=60)
                with gr.Row():
                    propose_b = gr.Button("segment everything", elem_id="propose", size="sm", min_width=60)
                    accept_b = gr.Button("accept", elem_id="accept", size="sm", min_width=60)
                    discard_b = gr.Button("discard", elem_id="discard", size="sm", min_width=60)
                with gr.Row(equal_height=True):  # a reviewer's verdict on the open file (review.py)
                    comment = gr.Textbox(placeholder="review comment", show_label=False, container=False, scale=2,
                                         min_width=90, elem_id="review_comment")
                    approve_b = gr.Button("accept file", elem_id="review_accept", size="sm", min_width=60)
                    reject_b = gr.Button("reject file", elem_id="review_reject", size="sm", min_width=60)
                with gr.Row():
                    export_b = gr.Button("export", variant="primary", elem_id="export", size="sm", min_width=60)
                    export_all_b = gr.Button("export folder (COCO, YOLO, CVAT, Label Studio)", elem_id="export_all", size="sm", min_width=60)
                accepted_only = gr.Checkbox(False, label="folder export: accepted files only", elem_id="accepted_only")
                files = gr.File(label="exported files", file_count="multiple", elem_id="files", height=80,
                                visible=False)  # shown once something was exported
                mode = gr.Radio(list(MODES), value=MODES[0], label="click adds", visible=False)  # for /click

        outs = [state, canvas, status, objects, progress]
        canvas.submit(on_canvas, [state, label], outs, queue=False, show_progress="hidden", api_name=False,
                      trigger_mode="multiple")  # the page sends one batch at a time itself

        def idx(o):
            return int(o.split(":")[0]) if o else -1

        # The same actions without a browser (scripts, gradio_client): "x,y" text for a click.
        xy = gr.Textbox(visible=False)
        xy_b = gr.Button(visible=False)

        def on_xy(st, text, mode_v, label_v):
            try:
                x, y = (float(v) for v in str(text).split(","))
            except ValueError:
                raise SampromptError(f"expected 'x,y' in pixels, got {text!r}") from None
            return annotator.click(st, x, y, mode_v, label_v or "object")

        def key(name):
            return guard(lambda st, lab="object": annotator.key(st, name, lab or "object"))

        xy_b.click(guard(on_xy), [state, xy, mode, label], outs, **EDITS, api_name="click")

        def on_command(st, text, label_v):  # the canvas's commands as JSON, one or a list
            try:
                cmds = json.loads(text)
            except ValueError:
                raise SampromptError(f"expected a JSON command such as {{\"op\": \"slice\", \"k\": 3}}, "
                                     f"got {text!r}") from None
            msg = ""
            for cmd in cmds if isinstance(cmds, list) else [cmds]:
                if not isinstance(cmd, dict):
                    raise SampromptError(f"a command is a JSON object with an \"op\", got {cmd!r}")
                msg = annotator.command(st, cmd, label_v or "object")
            return msg

        cmd_text = gr.Textbox(visible=False)
        cmd_b = gr.Button(visible=False)
        cmd_b.click(guard(on_command), [state, cmd_text, label], outs, **EDITS, api_name="command")
        upload.upload(guard(lambda st, f: annotator.open_upload(st, f)), [state, upload], outs, **EDITS, api_name="upload")
        # the box is emptied once the file was taken or refused: what is open is on the canvas, and a refused file
        # does not sit there as if it were
        upload.upload(lambda: None, None, [upload], queue=False, show_progress="hidden", api_name=False)
        prev_b.click(key("prev"), [state], outs, **EDITS, api_name="previous")
        next_b.click(key("next"), [state], outs, **EDITS, api_name="next")
        done_b.click(key("done"), [state], outs, **EDITS, api_name="done")
        new_b.click(key("new"), [state, label], outs, **EDITS, api_name="new_object")
        objects.input(guard(lambda st, o: annotator._need(st).select(idx(o))), [state, objects], outs, **EDITS,
                      api_name="select")
        rename_b.click(guard(lambda st, o, lab: annotator._need(st).rename(idx(o), lab)), [state, objects, label], outs,
                       **EDITS, api_name="rename")
        delete_b.click(guard(lambda st, o: annotator._need(st).delete(idx(o))), [state, objects], outs, **EDITS,
                       api_name="delete")
        undo_b.click(key("undo"), [state], outs, **EDITS, api_name="undo")
        redo_b.click(key("redo"), [state], outs, **EDITS, api_name="redo")
        clear_b.click(key("clear"), [state], outs, **EDITS, api_name="clear")

        def judged(msg):  # the comment box empties once a verdict is given, not when it was refused
            return gr.skip() if str(msg or "").startswith("⚠️") else ""

        def approve(st, c):
            return annotator.review(st, "accepted", c)

        def reject(st, c):
            return annotator.review(st, "rejected", c)

        for button, fn, name in ((approve_b, approve, "review_accept"), (reject_b, reject, "review_reject")):
            button.click(guard(fn), [state, comment], outs, **EDITS, api_name=name).then(
                judged, [status], [comment], queue=False, show_progress="hidden", api_name=False)
        propose_b.click(key("propose"), [state], outs, **EDITS, api_name="propose")
        accept_b.click(key("accept"), [state, label], outs, **EDITS, api_name="accept")
        discard_b.click(key("discard"), [state], outs, **EDITS, api_name="discard")

        def set_advance(st, on):
            st.auto_advance = bool(on)
            return st

        advance.change(set_advance, [state, advance], [state], **EDITS, api_name=False)

        def set_classes(st, text, current):
            names, note = annotator.set_classes(str(text).split(","))
            value = current if current in names else names[0]
            return st, gr.update(choices=names, value=value), ", ".join(names), note

        for event in (classes.blur, classes.submit):  # not on every keystroke
            event(set_classes, [state, classes, label], [state, label, classes, status], **EDITS,
                  api_name="classes" if event == classes.blur else False)

        def use_label(lab):  # a class typed into the dropdown joins the folder's list at once
            name = str(lab or "").strip()
            annotator.add_class(name)
            return gr.update(choices=annotator.classes, value=name or annotator.classes[0]), ", ".join(annotator.classes)

        label.input(use_label, [label], [label, classes], queue=False, show_progress="hidden", api_name=False)

        def refused(st, exc):
            st.notice = str(exc)  # said on the canvas too, by the event that follows
            return gr.skip(), f"⚠️ {exc}"

        def after_export(st):  # the list of files shown; a refusal said on the canvas
            if not st.notice:
                return gr.skip(), gr.update(visible=True)
            view = annotator.view(st)
            view["notice"], st.notice = st.notice, ""
            return json.dumps(view, separators=(",", ":")), gr.skip()

        def wrap_export(st, lab):
            with st.lock:
                try:
                    annotator.add_class(lab)
                    paths = annotator.export(st)
                    return paths, f"exported {len(paths)} files to {annotator.out}{annotator.export_note(st)}"
                except SampromptError as exc:
                    return refused(st, exc)

        def wrap_export_all(st, only):
            with st.lock:
                try:
                    coco, yolo, xml, tasks = annotator.export_all(st, accepted_only=bool(only))
                    return [coco, yolo, xml, tasks], (
                        f"exported the folder: {coco}, a YOLO dataset in {Path(yolo).parent} (images/, labels/, "
                        f"data.yaml), CVAT for images XML {Path(xml).name} and Label Studio tasks {Path(tasks).name}")
                except SampromptError as exc:
                    return refused(st, exc)

        for button, fn, inputs, name in ((export_b, wrap_export, [state, label], "export"),
                                         (export_all_b, wrap_export_all, [state, accepted_only], "export_all")):
            button.click(fn, inputs, [files, status], **EDITS, api_name=name).then(
                after_export, [state], [canvas, files], queue=False, show_progress="hidden", api_name=False)

        def current_classes():  # the folder's list now, not the one when the app was built
            return ", ".join(annotator.classes), gr.update(choices=annotator.classes, value=annotator.classes[0])

        app.load(current_classes, None, [classes, label], queue=False, show_progress="hidden")

        def signed_in(st, request: gr.Request):  # the tab's user (annotate --users), for every later event
            st.user = getattr(request, "username", None)
            return st

        app.load(signed_in, [state], [state], queue=False, show_progress="hidden", api_name=False)
        if annotator.entries:
            app.load(guard(lambda st: annotator.resume(st)), [state], outs, **EDITS)
    return app


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def auth_check(users):
    """Gradio's ``auth`` callable over a users file (:mod:`samprompt.annotate.users`)."""
    from .users import check_password

    return lambda name, password: check_password(users, name, password)


def port_problem(host: str, port: int, who: str = "samprompt annotate") -> str | None:
    """Why ``host:port`` cannot be served on (in use, not an address here), or None: said before a model loads."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
            sock.bind((host, port))
    except OSError as exc:
        why = f"is in use (another {who}?)" if exc.errno in (98, 48, 10048) else f"cannot be used ({exc})"
        return f"port {port} on {host} {why}; choose another with --port"
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="samprompt annotate", description="Interactive SAM annotation in the browser.")
    p.add_argument("folder", nargs="?", help="folder of images, videos (video files, subfolders of frames) and "
                                             "volumes (NIfTI files, DICOM series folders), or a labelled folder's images/")
    p.add_argument("--model", default="tiny", help="registry name or checkpoint path of SAM, SAM 2/2.1 or SAM-HQ "
                                                   "(default: tiny); with SAM 2, volumes propagate by memory")
    p.add_argument("--family", choices=["medsam"], default=None,
                   help="medsam: a MedSAM checkpoint given by path (MedSAM's preprocessing)")
    p.add_argument("--out", help="where annotations go (default: FOLDER/annotations)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only; "
                                                       "another needs --users, or --insecure)")
    p.add_argument("--assign", type=int, default=0, metavar="N",
                   help="with --users: hand each signed-in user N files of the folder at a time (kept in "
                        "OUT/assignment.json); after done they go on with their own files first")
    p.add_argument("--users", metavar="TOML", help="sign-in: every tab signs in as a user of this file "
                                                  "(samprompt annotate users add NAME --role annotator|reviewer); "
                                                  "objects record who made and edited them")
    p.add_argument("--insecure", action="store_true",
                   help="serve on a non-loopback --host without --users: anyone who can reach the machine can "
                        "read every image and change every annotation")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=25, help="largest upload in MB (default 25)")
    p.add_argument("--max-pixels", type=float, default=60, metavar="MP",
                   help="largest image in megapixels (default 60); the page shows a copy of at most 2048 px a "
                        "side, SAM and the masks use every pixel")
    p.add_argument("--labels", metavar="JSON", help="a labels file (as samprompt medical --labels): its classes are "
                                                   "offered, and a volume's export gives them its label values")
    p.add_argument("--import", dest="imports", metavar="PATH",
                   help="start images that have no saved annotation from existing labels: a folder of label-map "
                        "PNGs (or one holding masks/), a COCO JSON file, a folder of YOLO-seg .txt files, "
                        "a CVAT for images 1.1 XML file or a Label Studio task JSON")
    args = p.parse_args(argv)
    users = None
    if args.users:
        from .users import read_users

        try:
            users = read_users(args.users)
        except SampromptError as exc:
            p.error(str(exc))
    if args.assign and (users is None or args.assign < 0):
        p.error("--assign N hands files to signed-in users: give --users users.toml, and N >= 1")
    if args.host not in LOOPBACK and users is None and not args.insecure:
        p.error(f"--host {args.host} would serve every image and every save to anyone who can reach this machine, "
                "with no sign-in; give --users users.toml (samprompt annotate users add NAME), or --insecure")
    if problem := port_problem(args.host, args.port):  # before the model loads: said at once, in our words
        p.error(problem)
    try:
        # the rearranged decoder: a click's masks equal to rounding, a third less of its time on ViT-B
        annotator = Annotator(Segmenter(args.model, family=args.family, decoder="fast"), args.folder, args.out, imports=args.imports,
                              labels=args.labels, max_pixels=int(args.max_pixels * 1_000_000))
    except SampromptError as exc:
        p.error(str(exc))
    annotator.roles = {name: u.role for name, u in (users or {}).items()}  # who may accept and reject
    annotator.assign = args.assign
    app = build_app(annotator)
    app.launch(server_name=args.host, server_port=args.port, max_file_size=f"{args.max_upload_mb}mb",
               show_error=True, quiet=True, prevent_thread_lock=True,  # our own words, not Gradio's share=True hint
               auth=auth_check(users) if users else None, auth_message="samprompt annotator: sign in")
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    reach = f"sign-in required, {len(users)} user(s)" if users else "this machine only" if args.host in LOOPBACK \
        else "open to the network: anyone who can reach this machine can read and edit the annotations"
    print(f"samprompt annotator on http://{shown}:{args.port}/ ({reach}); annotations go to {annotator.out}; "
          "Ctrl-C stops", flush=True)
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("samprompt annotator stopped; every change was saved", flush=True)
    finally:
        app.close(verbose=False)


if __name__ == "__main__":
    main()
