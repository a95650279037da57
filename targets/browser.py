"""browser: web pages running TF.js (@tensorflow/tfjs), on whatever backend the browser offers.

Every artifact is a TF.js graph model (model.json + weight shards), verified here on the real
@tensorflow/tfjs in Node, and `bench --device chromium` times it inside a page of headless
Chromium. float16 weights first: half the download of FP32 with the same float32 arithmetic (the
page dequantizes at load), so the error is tiny. FP32 is the fallback that reproduces the source
exactly; uint8 weights (a quarter of the download) come last, as their error is the largest.
"""
from ..profiles import Candidate, TargetProfile

PROFILE = TargetProfile(
    name="browser",
    description="web page with TF.js (graph model; WebGL/WASM/CPU backends)",
    device="a desktop or phone browser running @tensorflow/tfjs 4.22 (checked in headless Chromium)",
    candidates=(
        Candidate(converter="tfjs", runtime="tfjs", precision="fp16"),
        Candidate(converter="tfjs", runtime="tfjs", precision="fp32"),
        Candidate(converter="tfjs", runtime="tfjs", precision="int8"),
    ),
    setup="web",
)
