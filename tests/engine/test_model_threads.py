"""onnxruntime's intra-op threads default to the physical cores this process may use (issue 29 item 3)."""

from __future__ import annotations

from engine.model import _session_options, default_threads, physical_cores

HT_CPUINFO = "\n\n".join(
    f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu % 2}\nflags\t\t: avx2" for cpu in range(4)
)


def test_physical_cores_counts_cores_not_hyperthreads():
    assert physical_cores(HT_CPUINFO, {0, 1, 2, 3}) == 2  # two cores, two threads each
    assert physical_cores(HT_CPUINFO, {0, 2}) == 1  # both threads of core 0
    assert physical_cores(HT_CPUINFO, {0, 1}) == 2
    assert physical_cores("", {0, 1, 2}) == 3  # no cpuinfo: the CPUs we may use
    assert physical_cores("processor : 0\n\nprocessor : 1", {0, 1}) == 2  # no core ids (ARM)


def test_sessions_get_the_physical_cores_by_default():
    assert _session_options(None).intra_op_num_threads == default_threads() == physical_cores()
    assert _session_options(3).intra_op_num_threads == 3
