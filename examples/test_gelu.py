"""Your GELU checked against gradsuite's gelu record: its reference, inputs and tolerances."""
from gelu import gelu

import gradsuite as gs

TestGelu = gs.battery(gs.like("gelu", torch_fn=gelu))
