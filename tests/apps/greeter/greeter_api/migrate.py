"""The tests' release hook: ``python -m greeter_api.migrate WHEN``.

Appends one line to /var/tmp/greeter-hooks.log on the host it runs on, so
that the tests can count the runs across the fleet. It needs what a real
migration needs: the release's venv (it imports the app) and the service's
environment (the greeting).
"""

import os
import socket
import sys

from greeter_api import GREETING_VARIABLE, VERSION

LOG = "/var/tmp/greeter-hooks.log"


def main(argv):
    when = argv[1] if len(argv) > 1 else "unnamed"
    greeting = os.environ[GREETING_VARIABLE]
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(f"{when} host={socket.gethostname()} version={VERSION} uid={os.getuid()} greeting={greeting}\n")
    print(f"greeter hook {when}: recorded on {socket.gethostname()}")


if __name__ == "__main__":
    main(sys.argv)
