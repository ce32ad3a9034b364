"""The annotator's parts that are not Gradio: the canvas document (``canvas.py``), the browser canvas
(``canvas.js``) and volumes annotated slice by slice (``volume.py``)."""
