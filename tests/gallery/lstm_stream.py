"""A streaming LSTM with its state made explicit: one time step per call, (h, c) in and out.

What edgekit needs from a recurrent model: the state as inputs and outputs, and a factory that
says which output feeds which input on the next call ("state"). Verification then streams every
artifact over 50 calls, and `edgekit.load(bundle).stream()` carries the state for an app.
"""
import torch

HIDDEN, FEATURES, CLASSES = 16, 8, 4


class StreamingLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, x, h, c):  # x [1, 1, FEATURES]; h, c [1, 1, HIDDEN]
        y, (h_out, c_out) = self.lstm(x, (h, c))
        return self.head(y[:, -1]), h_out, c_out


def make():
    torch.manual_seed(0)
    zeros = torch.zeros(1, 1, HIDDEN)
    return {"model": StreamingLSTM().eval(),
            "example_inputs": {"x": torch.randn(1, 1, FEATURES), "h": zeros, "c": zeros},
            "output_names": ["y", "h_out", "c_out"],
            "state": {"h_out": "h", "c_out": "c"}}
