#!/usr/bin/python3
"""greeter is a complete theus worker plugin in Python: one process, greet,
that says hello and counts the greetings of each name in the Context
(the Go examples/greeter, in Python).

    theus-supervisor --plugin examples/py-greeter/greeter.py
    theusctl exec greet --args '{"name":"ada"}'

The interpreter is the one on the #! line (Debian's /usr/bin/python3,
which has python3-msgpack); the theus package must be importable by it:
installed, on the PYTHONPATH the supervisor runs with (its workers
inherit its environment), or, for this script in a checkout, found in
python/ beside examples/. See docs/PYTHON.md.
"""

import os
import sys

try:
    import theus
except ImportError:  # run from a checkout: the SDK is python/ at its root
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
    import theus


@theus.process("greet", inputs=["domain.greetings"], outputs=["domain.greetings"])
def greet(ctx, name=""):
    if not name:
        raise theus.Fail("bad_args", "greet: need a name")
    path = "domain.greetings." + name
    n = ctx.get(path, 0) + 1  # absent: 0
    ctx.set(path, n)
    return {"greeting": "hello, " + name, "count": n}


if __name__ == "__main__":
    theus.serve()
