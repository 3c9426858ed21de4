"""A reference-free record: no NumPy reference, only the op and how to draw its inputs."""
from hypothesis import strategies as st
from reference_free import squareplus

import gradsuite as gs

TestSquareplus = gs.battery(gs.OpSpec(
    name="squareplus", torch_fn=squareplus,
    inputs=gs.inputs.Elementwise(min_dims=0, options={"b": st.floats(0.5, 8.0)},
                                 defaults={"b": 4.0})))
