"""`edgekit device`: start, list and stop an emulated aarch64 device (QEMU user mode), reached over SSH."""
from __future__ import annotations

import sys

from ..errors import UsageError, did_you_mean

KINDS = ["arm64"]


def add_parser(sub) -> None:
    d = sub.add_parser("device", help="start/stop an emulated aarch64 device on this machine (QEMU user mode, "
                       "Debian arm64, sshd on 127.0.0.1): real Arm kernels of the runtimes, for verify/build --device")
    dsub = d.add_subparsers(dest="device_command", metavar="{start,stop,status}")
    dsub.required = True
    st = dsub.add_parser("start", help="build the arm64 root once (cached), start its sshd, print its ssh:// address")
    st.add_argument("kind", help="arm64 (the only kind)")
    which = st.add_mutually_exclusive_group()
    which.add_argument("--cpu", help="QEMU CPU model: cortex-a53, cortex-a72 (Raspberry Pi 4), cortex-a76 (Pi 5, "
                       "phones; the default), neoverse-n1, or max (SVE/SME: no phone has them; wrong INT8 on QEMU 7.2)")
    which.add_argument("--target", help="the CPU the target profile's device has (rpi: cortex-a72, android and "
                       "jetson: cortex-a76)")
    sp = dsub.add_parser("stop", help="stop the emulated device(s) `device start` started (every process of theirs)")
    sp.add_argument("kind", help="arm64")
    sp.add_argument("--cpu", help="only the device with this CPU model (default: all)")
    dsub.add_parser("status", help="the emulated devices running now, with their addresses")


def _kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown device kind {kind!r}{did_you_mean(kind, KINDS)}", hint="the only kind: arm64")


def _cpu(args):
    from ..emulated import CPUS, NAMED_ONLY, cpu_for

    if args.target:
        from ..targets import get_profile

        profile = get_profile(args.target)
        if not profile.emulated_cpu:
            raise UsageError(f"target {args.target!r} names no Arm CPU to emulate ({profile.device})",
                             hint="targets with one: " + ", ".join(_arm_targets()))
        return CPUS[profile.emulated_cpu]
    cpu = cpu_for(args.cpu)
    if cpu.qemu in NAMED_ONLY:
        print(f"[edgekit] warning: --cpu {cpu.qemu}: {cpu.stands_for}; on QEMU 7.2 INT8 kernels compute wrong "
              "results under it. Numbers from this device describe no real Arm CPU.", file=sys.stderr)
    return cpu


def _arm_targets() -> list[str]:
    from ..targets import all_profiles

    return [p.name for p in all_profiles() if p.emulated_cpu]


def run(args) -> int:
    from ..emulated import CPUS, sshd

    if args.device_command == "status":
        states = sshd.running()
        for s in states:
            print(f"arm64 {s['cpu']:<12} {s['url']}  (pid {s['pid']}, since {s['started']})")
        if not states:
            print("no emulated device runs (start one: python -m edgekit device start arm64)", file=sys.stderr)
        return 0
    _kind(args.kind)
    if args.device_command == "stop":
        if args.cpu:
            from ..emulated import cpu_for

            cpu_for(args.cpu)
        stopped = sshd.stop(args.cpu)
        for s in stopped:
            print(f"stopped the emulated arm64 device ({s['cpu']}, port {s['port']}): "
                  f"{s['stopped_processes']} process(es)", file=sys.stderr)
        if not stopped:
            print("no emulated arm64 device was running", file=sys.stderr)
        return 0
    cpu = _cpu(args)
    state = sshd.start(cpu)
    print(f"[edgekit] emulated arm64 device: CPU {cpu.qemu} ({CPUS[cpu.qemu].stands_for}); guest features: "
          f"{', '.join(state.get('features') or []) or 'NEON only'}; {state['emulator']}; Python "
          f"{state.get('python', '?')}; sshd on 127.0.0.1:{state['port']} (pid {state['pid']})", file=sys.stderr)
    print("[edgekit] results on it are numerics on Arm kernels (where: aarch64-emulated), never device timings; "
          "stop it with: python -m edgekit device stop arm64", file=sys.stderr)
    print(state["url"])
    return 0
