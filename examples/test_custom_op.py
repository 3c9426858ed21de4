"""A torch.library custom op against gradsuite's softplus record; the battery also runs
torch.library.opcheck on it (schema, fake tensor, autograd registration, AOT dispatch).
baseline=True: in float32 and half precision its error must stay within 2x (outputs) and 3x
(gradients) of torch's own F.softplus on the same inputs."""
from custom_op import softplus

import gradsuite as gs

TestCustomSoftplus = gs.battery(gs.like("softplus", torch_fn=softplus, baseline=True))
