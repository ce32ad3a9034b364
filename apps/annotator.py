"""Launch the samprompt annotator (the same as ``samprompt annotate``).

    python apps/annotator.py [FOLDER] [--model tiny] [--host 127.0.0.1] [--port 7860]

The app lives in :mod:`samprompt.annotate.app` so that an installed package has it too.
"""

from samprompt.annotate.app import main

if __name__ == "__main__":
    main()
