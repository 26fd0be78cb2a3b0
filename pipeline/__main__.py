"""``python -m pipeline`` runs the ``crawldex`` command."""

from pipeline.cli import main

main()
