"""A user's CNN with three convolutions on lines of their own, for tests that must name one layer and
its source line (edgekit debug)."""
import torch


class ThreeConvs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.middle = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.last = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, image):
        x = torch.relu(self.stem(image))
        x = torch.relu(self.middle(x))
        x = torch.relu(self.last(x))
        return self.head(x.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    return {"model": ThreeConvs().eval(), "example_inputs": torch.randn(1, 3, 12, 12), "input_names": ["image"],
            "output_names": ["scores"]}
