"""``python -m tasks ...``: the operator CLI (tasks.cli), where the ``eventlog`` script is not on PATH."""

from tasks.cli import main

main(prog_name="python -m tasks")
