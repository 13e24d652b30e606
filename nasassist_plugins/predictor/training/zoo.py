"""Random user-style models (ResNet, MobileNet, Inception, MLP, transformer) for pre-training.

Benchmark families are all cell-based CNNs; a user's model usually is not. Mixing
randomly sized models of the common hand-designed styles into encoder pre-training
keeps the embedding space from being only about cells.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.graph import ComputationalGraph


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        mid = c_out // 4 if bottleneck else c_out
        layers: list[nn.Module] = []
        if bottleneck:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU()]
            layers += [nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU()]
            layers += [nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        else:
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            layers += [nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, kernel: int, act: type[nn.Module]) -> None:
        super().__init__()
        mid = c_in * expand
        self.use_residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), act(),
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), act(),
            nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.use_residual else self.body(x)


class _Inception(nn.Module):
    def __init__(self, c_in: int, width: int) -> None:
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(c_in, width, 1), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(c_in, width, 1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.b5 = nn.Sequential(nn.Conv2d(c_in, width // 2, 1), nn.ReLU(), nn.Conv2d(width // 2, width // 2, 5, padding=2), nn.ReLU())
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c_in, width // 2, 1), nn.ReLU())
        self.out_channels = 3 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class _Classifier(nn.Module):
    def __init__(self, features: nn.Module, channels: int, num_classes: int = 10) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def random_resnet(rng: np.random.Generator) -> nn.Module:
    bottleneck = bool(rng.integers(2))
    width = int(rng.choice([16, 32, 64]))
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c = width
    for stage in range(int(rng.integers(2, 5))):
        c_out = width * 2**stage * (4 if bottleneck else 1)
        for block in range(int(rng.integers(1, 4))):
            layers.append(_ResBlock(c, c_out, 2 if block == 0 and stage > 0 else 1, bottleneck))
            c = c_out
    return _Classifier(nn.Sequential(*layers), c)


def random_mobilenet(rng: np.random.Generator) -> nn.Module:
    act = [nn.ReLU6, nn.Hardswish, nn.SiLU][int(rng.integers(3))]
    c = int(rng.choice([16, 24, 32]))
    layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), act()]
    for stage in range(int(rng.integers(3, 6))):
        c_out = int(c * rng.choice([1.0, 1.5, 2.0])) // 8 * 8 or 8
        for block in range(int(rng.integers(1, 4))):
            layers.append(_InvertedResidual(c, c_out, 2 if block == 0 and stage % 2 else 1,
                                            int(rng.choice([3, 4, 6])), int(rng.choice([3, 5, 7])), act))
            c = c_out
    return _Classifier(nn.Sequential(*layers), c)


def random_inception(rng: np.random.Generator) -> nn.Module:
    c = int(rng.choice([32, 64]))
    layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.ReLU()]
    for k in range(int(rng.integers(2, 6))):
        block = _Inception(c, int(rng.choice([16, 32, 48])))
        layers.append(block)
        c = block.out_channels
        if k % 2:
            layers.append(nn.MaxPool2d(2))
    return _Classifier(nn.Sequential(*layers), c)


class _MLP(nn.Module):
    def __init__(self, sizes: list[int], act: type[nn.Module], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), act()] + ([nn.Dropout(dropout)] if dropout else [])
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def random_mlp(rng: np.random.Generator) -> nn.Module:
    hidden = [int(rng.choice([64, 128, 256, 512])) for _ in range(int(rng.integers(1, 5)))]
    act = [nn.ReLU, nn.GELU, nn.Tanh][int(rng.integers(3))]
    return _MLP([3 * 32 * 32, *hidden, 10], act, float(rng.choice([0.0, 0.1])))


class _ViT(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, patch: int) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def random_transformer(rng: np.random.Generator) -> nn.Module:
    heads = int(rng.choice([2, 4]))
    return _ViT(heads * int(rng.choice([16, 32])), int(rng.integers(1, 7)), heads, int(rng.choice([4, 8])))


GENERATORS: dict[str, Callable[[np.random.Generator], nn.Module]] = {
    "resnet": random_resnet,
    "mobilenet": random_mobilenet,
    "inception": random_inception,
    "mlp": random_mlp,
    "transformer": random_transformer,
}


def sample_zoo_graphs(n: int, *, seed: int = 0, progress: bool = True) -> list[ComputationalGraph]:
    """``n`` graphs of random user-style models, cycling through the styles."""
    from tqdm.auto import tqdm

    from nasassist_plugins.adapters.torch_adapter import from_torch

    rng = np.random.default_rng(seed)
    styles = list(GENERATORS)
    graphs = []
    for k in tqdm(range(n), desc="tracing generated models", disable=not progress):
        style = styles[k % len(styles)]
        graphs.append(from_torch(GENERATORS[style](rng), (1, 3, 32, 32), name=f"{style}-{k}"))
    return graphs
