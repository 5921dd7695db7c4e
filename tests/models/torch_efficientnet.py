"""A torch.nn EfficientNet-Lite0 that loads the wheel's state dict (tests and benchmarks; needs torch).

Written from the published architecture, like efficientnet_pytorch's model:
TensorFlow 'SAME' padding (odd pixel after), batch norm in eval mode (eps 1e-3),
ReLU6, shortcuts where a block keeps stride and width, the (x * 255 - 127) /
128 input convention. `guided=True` swaps every ReLU6 for one whose backward
pass is guided backpropagation's (a custom autograd.Function: the plain-autograd
way captum-style tools do it, without hooks).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.models import numpy_efficientnet


class GuidedReLU6(torch.autograd.Function):
    """ReLU6 whose gradient passes only where 0 < x < 6 and the incoming gradient > 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.relu6(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x > 0) & (x < 6) & (grad > 0)).to(grad.dtype)


class ConvBN(nn.Module):
    """Bias-free conv with TF 'SAME' padding, then eval-mode batch norm."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        pads = [numpy_efficientnet.same_pads(n, self.kernel, self.stride) for n in x.shape[2:]]
        return self.bn(self.conv(F.pad(x, (*pads[1], *pads[0]))))


class Block(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expand, act):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBN(cin, hidden, 1) if expand != 1 else None
        self.dw = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, cout, 1)
        self.act, self.shortcut = act, stride == 1 and cin == cout

    def forward(self, x):
        y = self.act(self.expand(x)) if self.expand is not None else x
        y = self.project(self.act(self.dw(y)))
        return y + x if self.shortcut else y


class EfficientNetLite0(nn.Module):
    STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
              (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
              (1, 3, 1, 6, 192, 320))  # fmt: skip

    def __init__(self, guided: bool = False):
        super().__init__()
        self.act = GuidedReLU6.apply if guided else F.relu6
        self.stem = ConvBN(3, 32, 3, 2)
        blocks = []
        for repeats, k, s, e, cin, cout in self.STAGES:
            for r in range(repeats):
                blocks.append(
                    Block(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e, self.act)
                )
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBN(320, 1280, 1)
        self.fc = nn.Linear(1280, 1000)

    def forward(self, images):
        """images [N, 3, H, W] in [0, 1] -> logits [N, 1000]."""
        x = self.act(self.stem((images * 255.0 - 127.0) / 128.0))
        for block in self.blocks:
            x = block(x)
        x = self.act(self.head(x))
        return self.fc(x.mean((2, 3)))


def _names() -> list[tuple[str, str]]:
    """(our module prefix, efficientnet_pytorch prefix) of each conv + batch norm."""
    pairs = [("stem", "_conv_stem", "_bn0"), ("head", "_conv_head", "_bn1")]
    for i in range(16):
        p = f"_blocks.{i}."
        pairs += [(f"blocks.{i}.expand", p + "_expand_conv", p + "_bn0"),
                  (f"blocks.{i}.dw", p + "_depthwise_conv", p + "_bn1"),
                  (f"blocks.{i}.project", p + "_project_conv", p + "_bn2")]  # fmt: skip
    return pairs


def load(state_dict: dict, *, guided: bool = False) -> EfficientNetLite0:
    """The model with the wheel's tensors (eval mode, float32)."""
    model = EfficientNetLite0(guided=guided)
    ours = {}
    for mine, conv, bn in _names():
        if f"{conv}.weight" not in state_dict:
            continue  # Block 0 has no expansion.
        ours[f"{mine}.conv.weight"] = state_dict[f"{conv}.weight"]
        for field in ("weight", "bias", "running_mean", "running_var"):
            ours[f"{mine}.bn.{field}"] = state_dict[f"{bn}.{field}"]
    ours["fc.weight"], ours["fc.bias"] = state_dict["_fc.weight"], state_dict["_fc.bias"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in ours.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), missing
    return model.eval()
