"""A small NumPy VGG that runs weights in their source layout (the tests' reference).

It follows each framework's own semantics, independently of neural_synth: NCHW
activations, OIHW cross-correlation kernels, torchvision's head (adaptive average
pool to 7x7, NCHW flatten, Linear), timm's head (7x7 conv then 1x1 conv on the
pooled map, then Linear) and Keras' head (NHWC flatten of a 7x7x512 pool5, Dense).
Returns the activations named as in the papers, converted to NHWC.
"""

import numpy as np

from tests.weights import writers

TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x [N, C, H, W], w [O, C, 3, 3] -> [N, O, H, W]; zero padding 1, cross-correlation."""
    n, c, h, width = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # [N,C,H,W,3,3]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * width, c * 9)  # im2col
    out = cols @ w.reshape(w.shape[0], c * 9).T + b  # [N*H*W, O]
    return out.reshape(n, h, width, -1).transpose(0, 3, 1, 2)


def max_pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max((3, 5))


def adaptive_avg_pool(x: np.ndarray, out: int) -> np.ndarray:
    """torch.nn.AdaptiveAvgPool2d: bin i spans [floor(i*H/out), ceil((i+1)*H/out))."""
    n, c, h, w = x.shape
    y = np.empty((n, c, out, out), x.dtype)
    for i in range(out):
        h0, h1 = (i * h) // out, -((-(i + 1) * h) // out)
        for j in range(out):
            w0, w1 = (j * w) // out, -((-(j + 1) * w) // out)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean((2, 3))
    return y


def preprocess(images: np.ndarray, convention: str) -> np.ndarray:
    """[N, H, W, 3] RGB in [0, 1] -> NCHW network input."""
    if convention == "torchvision":
        x = (images - np.array(TORCHVISION_MEAN)) / np.array(TORCHVISION_STD)
    else:  # caffe: BGR, 0-255, mean subtracted.
        x = images[..., ::-1] * 255.0 - np.array(CAFFE_BGR_MEAN)
    return x.astype(np.float32).transpose(0, 3, 1, 2)


def _features(x: np.ndarray, arch: str, conv_weights: list) -> tuple[dict, np.ndarray]:
    acts, block, conv, k = {}, 1, 1, 0
    for v in writers.CFGS[arch]:
        if v == "M":
            x = max_pool2(x)
            acts[f"pool{block}"] = x
            block, conv = block + 1, 1
            continue
        x = conv3x3(x, *conv_weights[k])
        acts[f"conv{block}_{conv}"] = x
        x = np.maximum(x, 0)
        acts[f"relu{block}_{conv}"] = x
        conv, k = conv + 1, k + 1
    return acts, x


def _head(acts: dict, fc6: np.ndarray, fc7_in_fn, weights: list) -> None:
    """fc6 [N, 4096-ish] given; fc7 = fc7_in_fn(relu6); fc8 = linear."""
    acts["fc6"] = fc6
    acts["relu6"] = np.maximum(fc6, 0)
    acts["fc7"] = fc7_in_fn(acts["relu6"])
    acts["relu7"] = np.maximum(acts["fc7"], 0)
    w8, b8 = weights
    acts["fc8"] = acts["relu7"] @ w8 + b8


def forward_torch(sd: dict, images: np.ndarray, arch: str, *, layout: str) -> dict:
    """Runs a torchvision- or timm-layout state dict; returns {name: NHWC / [N, F] array}."""
    convs = sorted(
        (int(k.split(".")[1]), k) for k in sd if k.startswith("features.") and k.endswith("weight")
    )
    weights = [(sd[k], sd[k.replace("weight", "bias")]) for _, k in convs]
    acts, x = _features(preprocess(images, "torchvision"), arch, weights)
    if layout == "torchvision" and "classifier.0.weight" in sd:
        flat = adaptive_avg_pool(x, 7).reshape(len(x), -1)  # NCHW flatten: (c, h, w).
        fc6 = flat @ sd["classifier.0.weight"].T + sd["classifier.0.bias"]
        _head(
            acts,
            fc6,
            lambda r: r @ sd["classifier.3.weight"].T + sd["classifier.3.bias"],
            (sd["classifier.6.weight"].T, sd["classifier.6.bias"]),
        )
    elif layout == "timm" and "pre_logits.fc1.weight" in sd:
        # timm pools maps smaller than 7x7 up to 7x7, then a VALID 7x7 conv -> 1x1.
        pooled = adaptive_avg_pool(x, 7) if max(x.shape[2:]) < 7 else x
        assert pooled.shape[2:] == (7, 7), "timm reference needs pool5 <= 7x7"
        fc6 = np.einsum("nchw,ochw->no", pooled, sd["pre_logits.fc1.weight"])
        fc6 = fc6 + sd["pre_logits.fc1.bias"]
        w7 = sd["pre_logits.fc2.weight"][:, :, 0, 0]
        _head(
            acts,
            fc6,
            lambda r: np.einsum("nc,oc->no", r, w7) + sd["pre_logits.fc2.bias"],
            (sd["head.fc.weight"].T, sd["head.fc.bias"]),
        )
    return {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in acts.items()}


def forward_keras(layers: dict, images: np.ndarray, arch: str) -> dict:
    """Runs keras-applications weights {layer: (kernel HWIO, bias)} (caffe input)."""
    convs = [n for n in layers if n.startswith("block")]
    weights = [(layers[n][0].transpose(3, 2, 0, 1), layers[n][1]) for n in convs]
    acts, x = _features(preprocess(images, "caffe"), arch, weights)
    if "fc1" in layers:
        assert x.shape[2:] == (7, 7), "Keras' top needs 224x224 inputs"
        flat = x.transpose(0, 2, 3, 1).reshape(len(x), -1)  # Keras Flatten of NHWC.
        fc6 = flat @ layers["fc1"][0] + layers["fc1"][1]
        _head(acts, fc6, lambda r: r @ layers["fc2"][0] + layers["fc2"][1], layers["predictions"])
    return {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in acts.items()}
