"""bot/hardware.py: AMX detection from /proc/cpuinfo and the bf16 switch."""

from __future__ import annotations

from core import hardware


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx512f {flags}\n\nprocessor\t: 1\n")
    return path


def test_amx_is_read_from_the_flags_line(tmp_path):
    hardware.cpu_has_amx.cache_clear()
    assert hardware.cpu_has_amx(_cpuinfo(tmp_path, "amx_bf16 amx_tile amx_int8")) is True
    assert hardware.cpu_has_amx(_cpuinfo(tmp_path / "..", "avx512_bf16")) is False  # AVX512-BF16 is not AMX
    assert hardware.cpu_has_amx(tmp_path / "missing") is False
    hardware.cpu_has_amx.cache_clear()


def test_resolve_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_amx", lambda: True)
    assert hardware.resolve_bf16("auto") is True
    assert hardware.resolve_bf16("auto", quantized=True) is False
    assert hardware.resolve_bf16("off") is False
    monkeypatch.setattr(hardware, "cpu_has_amx", lambda: False)
    assert hardware.resolve_bf16("auto") is False
    assert hardware.resolve_bf16("on") is True
