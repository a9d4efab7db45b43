// Root tier: kernel_path_root_test.cpp's tests, every one, on the kernel
// path walk that kernels without bpf_rdonly_cast (before 6.2, Debian 12's
// own 6.1) load: every field read with bpf_probe_read_kernel. This kernel
// takes both walks; the engine is asked for this one
// (EngineOptions::kernel_path_plain_loads = false) and TheWalkReadsAsAsked
// checks that it got it.
#define VIGIL_KPATH_PROBE_READS 1
#define KernelPath KernelPathProbeReads
#include "kernel_path_root_test.cpp"
