"""A custom optimizer in lockstep with gradsuite's SGD update rule."""
from custom_optimizer import MomentumSGD

import gradsuite as gs

TestMomentumSGD = gs.battery(gs.like("sgd", torch_cls=MomentumSGD))
