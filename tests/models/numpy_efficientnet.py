"""A NumPy EfficientNet-Lite0 that runs the PyTorch state dict as it is (the tests' reference).

Independent of neural_synth's model and port: it reads kernel sizes and widths
from the torch tensors, applies batch norm unfolded (eps 1e-3), pads like
TensorFlow's 'SAME' by its own arithmetic, computes in float64 and knows only
the published facts the weights cannot tell: which blocks have stride 2, ReLU6,
the (x * 255 - 127) / 128 input convention, and where shortcuts go (stride 1,
equal widths).
"""

import numpy as np

STRIDE2_BLOCKS = (1, 3, 5, 11)  # First blocks of the stride-2 stages.
BN_EPS = 1e-3


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output ceil(size / stride), the odd pixel padded after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    """x [N, H, W, C], torch weight [O, I, k, k] -> [N, H', W', O] by shifted windows."""
    k = w.shape[-1]
    (t, b), (lft, r) = same_pads(x.shape[1], k, stride), same_pads(x.shape[2], k, stride)
    xp = np.pad(x, ((0, 0), (t, b), (lft, r), (0, 0)))
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], oh, ow, w.shape[0]))
    for dy in range(k):
        for dx in range(k):
            window = xp[:, dy : dy + stride * oh : stride, dx : dx + stride * ow : stride]
            if depthwise:
                out += window * w[:, 0, dy, dx]
            else:
                out += window @ w[:, :, dy, dx].T
    return out


def batch_norm(x: np.ndarray, sd: dict, name: str) -> np.ndarray:
    scale = sd[f"{name}.weight"] / np.sqrt(sd[f"{name}.running_var"] + BN_EPS)
    return (x - sd[f"{name}.running_mean"]) * scale + sd[f"{name}.bias"]


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def block(x: np.ndarray, sd: dict, i: int) -> np.ndarray:
    p = f"_blocks.{i}."
    y = x
    if p + "_expand_conv.weight" in sd:
        y = relu6(batch_norm(conv(y, sd[p + "_expand_conv.weight"], 1, False), sd, p + "_bn0"))
    stride = 2 if i in STRIDE2_BLOCKS else 1
    y = relu6(batch_norm(conv(y, sd[p + "_depthwise_conv.weight"], stride, True), sd, p + "_bn1"))
    y = batch_norm(conv(y, sd[p + "_project_conv.weight"], 1, False), sd, p + "_bn2")
    return y + x if stride == 1 and y.shape == x.shape else y


def forward(state_dict: dict, images: np.ndarray) -> dict[str, np.ndarray]:
    """images [N, H, W, 3] in [0, 1] -> {'stem', 'block{i}', 'head', 'logits'} (float64, NHWC)."""
    sd = {k: np.asarray(v, np.float64) for k, v in state_dict.items()}
    x = (np.asarray(images, np.float64) * 255.0 - 127.0) / 128.0
    acts = {}
    x = relu6(batch_norm(conv(x, sd["_conv_stem.weight"], 2, False), sd, "_bn0"))
    acts["stem"] = x
    num_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    for i in range(num_blocks):
        x = block(x, sd, i)
        acts[f"block{i}"] = x
    x = relu6(batch_norm(conv(x, sd["_conv_head.weight"], 1, False), sd, "_bn1"))
    acts["head"] = x
    acts["logits"] = x.mean(axis=(1, 2)) @ sd["_fc.weight"].T + sd["_fc.bias"]
    return acts
