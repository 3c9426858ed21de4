"""A loss with your own NumPy reference, drawn by one of gradsuite's input makers."""
from custom_loss import log_cosh_loss, log_cosh_loss_reference, log_cosh_loss_reference_vjp

import gradsuite as gs

TestLogCosh = gs.battery(gs.OpSpec(
    name="log_cosh_loss", torch_fn=log_cosh_loss, ref=log_cosh_loss_reference,
    ref_vjp=log_cosh_loss_reference_vjp, inputs=gs.inputs.Regression(), family="loss"))
