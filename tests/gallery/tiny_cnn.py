"""A user's small CNN: 3x6x6 input, one conv, one linear, five scores. The example input is a
float64 numpy view with a stride-0 batch axis, as users hand data over."""
import numpy as np
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make():
    torch.manual_seed(0)
    img = np.random.default_rng(0).standard_normal((3, 6, 6))  # float64, like real user data
    example = np.broadcast_to(img, (1, 3, 6, 6))  # stride 0 on the batch axis
    return {"model": Tiny().eval(), "example_inputs": example, "input_names": ["pixels"],
            "output_names": ["scores"], "task": "classification"}


def make_tuple():
    torch.manual_seed(0)
    return Tiny().eval(), torch.randn(1, 3, 6, 6)
