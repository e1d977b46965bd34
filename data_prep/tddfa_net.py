"""3DDFA_V2's regressor as a small torch module: MobileNet V1 (widen 0.5), 120 x 120 BGR crop -> 62 numbers.

Built from the architecture its weight file implies (3DDFA_V2, Guo et al. 2020, MIT): a stride-2 convolution,
13 depthwise-separable blocks, global average pooling and the head ``fc_param`` (12 pose + 40 shape + 10
expression, normalized: de-normalize with :class:`data_prep.tddfa_files.TddfaFiles`' ``param_mean`` /
``param_std``). The file's auxiliary head ``fc_lm`` is not built. Weights are read from safetensors only.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["TddfaRegressor", "load_regressor", "RegressorFileError", "INPUT_SIZE"]

INPUT_SIZE = 120
# (name, output channels at widen 1, stride) of the depthwise-separable blocks, in order.
_BLOCKS = (("dw2_1", 64, 1), ("dw2_2", 128, 2), ("dw3_1", 128, 1), ("dw3_2", 256, 2), ("dw4_1", 256, 1),
           ("dw4_2", 512, 2), ("dw5_1", 512, 1), ("dw5_2", 512, 1), ("dw5_3", 512, 1), ("dw5_4", 512, 1),
           ("dw5_5", 512, 1), ("dw5_6", 1024, 2), ("dw6", 1024, 1))


class RegressorFileError(ValueError):
    """The weight file is missing, not safetensors, or its tensors do not match the regressor."""


class _Separable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_dw(self.conv_dw(x)))
        return torch.relu(self.bn_sep(self.conv_sep(x)))


class TddfaRegressor(nn.Module):
    """(B, 3, 120, 120) BGR crops normalized as ``(pixel - 127.5) / 128`` -> (B, 62) normalized parameters."""

    def __init__(self, widen: float = 0.5, n_params: int = 62) -> None:
        super().__init__()
        c = int(32 * widen)
        self.conv1 = nn.Conv2d(3, c, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        for name, cout, stride in _BLOCKS:
            setattr(self, name, _Separable(c, int(cout * widen), stride))
            c = int(cout * widen)
        self.fc_param = nn.Linear(c, n_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(self, name)(x)
        return self.fc_param(x.mean((2, 3)))


def load_regressor(path: str | Path) -> TddfaRegressor:
    """The regressor with the weights of ``path`` (safetensors), in eval mode; RegressorFileError naming the file
    when it is missing or unreadable or a needed tensor is missing or of another shape (extra ones are ignored)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RegressorFileError(f"{path}: regressor weights not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RegressorFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    model = TddfaRegressor()
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong:
        what = (f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "") + \
            ("; " if missing and wrong else "") + (f"shape {wrong[0]}" if wrong else "")
        raise RegressorFileError(f"{path}: tensors do not match the 3DDFA_V2 MobileNet (widen 0.5): {what}")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in want.items()})
    return model.eval()
