"""The same battery on a GELU with a planted backward bug: these tests must FAIL (the gradient
checks), with the usual message, the verdict that the error is the op's, and a reproducer."""
from gelu import bad_gelu

import gradsuite as gs

TestBadGelu = gs.battery(gs.like("gelu", torch_fn=bad_gelu))
