"""torch.nn replicas of torchvision's and timm's VGG (tests only; needs torch).

Built without torchvision/timm: `features` is an nn.Sequential with torchvision's
indices (conv, ReLU, ..., MaxPool), the torchvision head is `avgpool` +
`classifier` (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear), the timm head
is `pre_logits.fc1` (7x7 conv), `pre_logits.fc2` (1x1 conv) and `head.fc`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.weights import writers


def _features(arch: str) -> nn.Sequential:
    layers, cin = [], 3
    for v in writers.CFGS[arch]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers)


class TorchvisionVGG(nn.Module):
    def __init__(self, arch: str, head):
        super().__init__()
        self.arch, self.features = arch, _features(arch)
        if head:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            h6, h7, h8 = head
            self.classifier = nn.Sequential(
                nn.Linear(512 * 49, h6),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(h6, h7),
                nn.ReLU(),
                nn.Dropout(),
                nn.Linear(h7, h8),
            )

    def run_head(self, x) -> dict:
        acts, x = {}, torch.flatten(self.avgpool(x), 1)
        for index, name in zip(
            (0, 1, 3, 4, 6), ("fc6", "relu6", "fc7", "relu7", "fc8"), strict=True
        ):
            x = acts[name] = self.classifier[index](x)
        return acts


class _ConvMlp(nn.Module):
    def __init__(self, h6, h7):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(512, h6, 7), nn.Conv2d(h6, h7, 1)


class _Head(nn.Module):
    def __init__(self, h7, h8):
        super().__init__()
        self.fc = nn.Linear(h7, h8)


class TimmVGG(nn.Module):
    def __init__(self, arch: str, head):
        super().__init__()
        self.arch, self.features = arch, _features(arch)
        if head:
            h6, h7, h8 = head
            self.pre_logits, self.head = _ConvMlp(h6, h7), _Head(h7, h8)

    def run_head(self, x) -> dict:
        if max(x.shape[-2:]) < 7:  # As timm's ConvMlp: pool small maps up to 7x7.
            x = F.adaptive_avg_pool2d(x, (7, 7))
        acts = {"fc6": self.pre_logits.fc1(x)}  # [N, 4096, 1, 1] for a 7x7 map.
        acts["relu6"] = F.relu(acts["fc6"])
        acts["fc7"] = self.pre_logits.fc2(acts["relu6"])
        acts["relu7"] = F.relu(acts["fc7"])
        acts["fc8"] = self.head.fc(torch.flatten(acts["relu7"], 1))
        return {k: torch.flatten(v, 1) for k, v in acts.items()}


def build(sd: dict, arch: str, *, layout: str, head) -> nn.Module:
    """The replica with `sd` (NumPy arrays) loaded strictly."""
    cls = TorchvisionVGG if layout == "torchvision" else TimmVGG
    model = cls(arch, head).eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    return model


@torch.no_grad()
def forward(model: nn.Module, images: np.ndarray) -> dict:
    """Named activations (NHWC or [N, F]) of images [N, H, W, 3] in [0, 1]."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) - mean) / std
    acts, block, conv, index = {}, 1, 1, 0
    for v in writers.CFGS[model.arch]:
        if v == "M":
            x = model.features[index](x)
            acts[f"pool{block}"], block, conv, index = x, block + 1, 1, index + 1
            continue
        x = model.features[index](x)
        acts[f"conv{block}_{conv}"] = x
        x = model.features[index + 1](x)
        acts[f"relu{block}_{conv}"], conv, index = x, conv + 1, index + 2
    if hasattr(model, "avgpool") or hasattr(model, "pre_logits"):
        acts.update(model.run_head(x))
    return {k: (v.permute(0, 2, 3, 1) if v.ndim == 4 else v).numpy() for k, v in acts.items()}
