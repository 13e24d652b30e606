"""A trusted 'trainer' for the sandbox training-mode tests: one SGD step on random data, returns the loss."""

from __future__ import annotations

import torch


def one_step(model: torch.nn.Module, batch: int = 4, classes: int = 10, size: int = 16) -> dict:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, classes, (batch,))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimiser.step()
    return {"loss": float(loss.item()), "params": sum(p.numel() for p in model.parameters())}
