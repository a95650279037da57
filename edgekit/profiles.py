"""What a target profile says: candidate artifacts in preference order, and the tolerances each
precision must meet on held-out data. Profiles themselves live in targets/, one file each."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tolerance:
    cosine_min: float  # cosine similarity of all outputs vs the reference, flattened
    top1_min: float  # top-1 agreement with the reference, for classifiers
    max_nonfinite: int = 0  # NaN/Inf count allowed in the artifact's outputs
    # Signal-to-noise of the outputs vs the reference (dB). Cosine is blind to scale: an artifact whose
    # outputs are all 2x the reference has cosine 1.0 but SNR 0 dB.
    snr_min_db: float | None = None

    def to_dict(self) -> dict:
        return {"cosine_min": self.cosine_min, "top1_min": self.top1_min, "max_nonfinite": self.max_nonfinite,
                "snr_min_db": self.snr_min_db}


# FP32 artifacts must reproduce the source almost exactly; later precisions get their own rows.
# INT8 is judged against the FP32 source on held-out data: worst-sample cosine >= 0.99 and
# top-1 agreement >= 99% for classifiers (the quantizer tries static INT8, then dynamic).
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(cosine_min=0.9999, top1_min=0.99, snr_min_db=30.0),  # <= ~3% RMS error
    "fp16": Tolerance(cosine_min=0.999, top1_min=0.99, snr_min_db=25.0),  # <= ~6% RMS error
    "int8": Tolerance(cosine_min=0.99, top1_min=0.99, snr_min_db=15.0),  # <= ~18% RMS error
}


@dataclass(frozen=True)
class Candidate:
    converter: str  # a Converter's name (edgekit.converters)
    runtime: str  # a Runner's runtime (edgekit.runtimes)
    precision: str
    options: dict = field(default_factory=dict)
    variant: str = ""  # tells apart two candidates on one runtime+precision, e.g. "plain"
    # Built only when `compile --precision` names this precision: a precision the target does not
    # prefer by default, whose build costs time every default compile would pay for nothing.
    on_request: bool = False

    @property
    def id(self) -> str:
        return f"{self.runtime}-{self.precision}" + (f"-{self.variant}" if self.variant else "")

    def toolchains(self) -> list[str]:
        """What building and running it needs: its converter's toolchains, then its runtime's."""
        from . import converters
        from .runtimes import toolchain_of

        return list(dict.fromkeys([*converters.get(self.converter).toolchains, toolchain_of(self.runtime)]))

    def missing_toolchains(self) -> list[str]:
        """What this host lacks to build (and verify) it. Toolchains only the device has (TensorRT)
        are not missing here: that step is deferred to the device (edgekit build)."""
        from . import deps

        return [t for t in self.toolchains() if deps.TOOLCHAINS[t].where == "host" and not deps.available(t)]


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    device: str  # what the target hardware is, in words
    candidates: tuple[Candidate, ...]  # preference order: first verified one is primary
    # True when this machine can be the target itself (e.g. `cpu`): host timings are device timings.
    host_is_target: bool = False
    latency_budget_ms: float | None = None  # the runtime fallback switches when the median exceeds it
    # The target's CPU architecture (platform.machine()), when the profile names one: a host of
    # another architecture is never the device, so its timings are host timings.
    device_arch: str | None = None
    # The QEMU CPU model closest to the device's Arm CPU (edgekit.emulated.CPUS): what
    # `edgekit device start arm64 --target NAME` emulates, and what a bundle verified on an emulated
    # device is compared with (dot product or not decides which INT8 kernels run).
    emulated_cpu: str | None = None
    tolerances: dict = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    # The install set its host toolchains come from: a pip extra of pyproject.toml and an argument of
    # scripts/setup-env.sh (cpu, mobile, tvm, web). `./ek compile --target T` installs it on first use.
    setup: str = "cpu"
    # The set `compile --precision ...` needs instead, when on-request candidates need more than the
    # default ones (cpu: ExecuTorch and LiteRT come with `mobile`).
    precision_setup: str | None = None
    # For runtimes that partition (LiteRT and ExecuTorch with XNNPACK): the least share of the model's
    # FLOPs the accelerated backend must take, or the artifact fails verification (a single
    # operator left on reference kernels can make a model many times slower).
    min_delegated_flops_share: float | None = None

    def tolerance(self, precision: str) -> Tolerance:
        return self.tolerances[precision]

    def precisions(self) -> list[str]:
        return list(dict.fromkeys(c.precision for c in self.candidates))

    def for_precision(self, precision: str | None) -> "TargetProfile":
        """The profile narrowed to one precision (on-request candidates included), every candidate for
        "auto", or its default candidates when precision is None."""
        from dataclasses import replace

        from .errors import UsageError

        if precision is None:
            return replace(self, candidates=tuple(c for c in self.candidates if not c.on_request))
        if precision == "auto":
            return self
        chosen = tuple(c for c in self.candidates if c.precision == precision)
        if not chosen:
            raise UsageError(f"target {self.name!r} has no {precision} candidate",
                             hint=f"its precisions: {', '.join(self.precisions())}")
        return replace(self, candidates=chosen)
