"""Everything of the annotator, a module per concern:

* ``document.py``: one image's annotation (objects, prompts, masks, undo, saves), no UI;
* ``volume.py``: volumes annotated slice by slice, with propagation;
* ``session.py``: a tab's state and the :class:`~.session.Annotator` all tabs share (folder, classes,
  saves, exports);
* ``app.py``: the Gradio page and ``samprompt annotate``'s entry point;
* ``canvas.py`` and ``canvas.js``: what the browser canvas draws, and the canvas itself;
* ``users.py``: the users file, passwords and roles;
* ``formats.py``: label maps and COCO brought in to be corrected.
"""
