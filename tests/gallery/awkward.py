"""Deliberately awkward models for the pre-flight check and the failure messages (tests/test_check.py).

Each is an ordinary thing a user writes; each breaks some toolchain. Lines matter: the tests
assert that messages point at the line that uses the awkward operator.
"""
import torch


class Bucketize(torch.nn.Module):
    """torch.bucketize: litert-torch has no lowering for it; ONNX Runtime runs it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("bounds", torch.linspace(-2, 2, 9))
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        bins = torch.bucketize(x, self.bounds)  # AWKWARD-LINE bucketize
        return self.fc(bins.float() / 9.0)


class NonZero(torch.nn.Module):
    """torch.nonzero: an output size that depends on the data (a dynamic shape)."""

    def forward(self, x):
        idx = torch.nonzero(x > 0)  # AWKWARD-LINE nonzero
        return idx.float().sum(0, keepdim=True)


class Branch(torch.nn.Module):
    """A Python `if` on a tensor value: torch.export cannot capture it; a trace would keep one side."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:  # AWKWARD-LINE branch
            return y * 2
        return y


class BFloat16(torch.nn.Module):
    """bfloat16 weights and math: ONNX Runtime's CPU kernels have no bfloat16 Gemm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 4).to(torch.bfloat16)

    def forward(self, x):
        return self.fc(x.to(torch.bfloat16)).float()  # AWKWARD-LINE bfloat16


def _example():
    return {"x": torch.randn(1, 8, generator=torch.Generator().manual_seed(1)).numpy()}


def bucketize():
    return Bucketize().eval(), _example()


def nonzero():
    return NonZero().eval(), _example()


def branch():
    return Branch().eval(), _example()


def bfloat16():
    return BFloat16().eval(), _example()


class Conv3d(torch.nn.Module):
    """A 3-D convolution (video, volumes): LiteRT converts it to CONV_3D, which XNNPACK does not take."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(2, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean((2, 3, 4))  # AWKWARD-LINE conv3d


def conv3d():
    return Conv3d().eval(), {"x": torch.randn(1, 2, 6, 8, 8, generator=torch.Generator().manual_seed(1)).numpy()}


class OutlierChannel(torch.nn.Module):
    """One channel of an activation 300x larger than the rest (as after a BatchNorm with a tiny
    variance, or in transformers' residual streams): per-tensor INT8 of that activation rounds the
    other channels to zero. Keeping the layers that read it in float (mixed precision) repairs it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(8, 4, 3, padding=1)
        with torch.no_grad():
            self.conv1.weight[0] *= 300  # the outlier channel ...
            self.conv1.bias[0] *= 300
            self.conv2.weight[:, 0] /= 300  # ... which conv2 reads with a small weight

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))  # AWKWARD-LINE outlier
        return self.conv3(h).mean((2, 3))


def outlier():
    return OutlierChannel().eval(), {"x": torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)).numpy()}


class Relu6Block(torch.nn.Module):
    """A MobileNet/EfficientNet-Lite block: conv-BN-ReLU6, depthwise conv-BN-ReLU6, pointwise conv.
    The BatchNorms make the pre-activation ranges wide (about +-100 here) while ReLU6 keeps [0, 6]:
    quantizing the conv output before the clamp wastes most of the INT8 grid."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU6())
        self.dw = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.BatchNorm2d(16),
                                      torch.nn.ReLU6())
        self.pw = torch.nn.Conv2d(16, 8, 1)
        with torch.no_grad():
            for bn in (self.stem[1], self.dw[1]):
                bn.weight.copy_(torch.linspace(5, 40, 16))
                bn.bias.copy_(torch.linspace(-20, 6, 16))

    def forward(self, x):
        return self.pw(self.dw(self.stem(x))).mean((2, 3))


def relu6():
    return Relu6Block().eval(), {"x": torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)).numpy()}
