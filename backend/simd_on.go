//go:build goexperiment.simd

package backend

// simdKernels: built with GOEXPERIMENT=simd, so the Go backend runs its
// AVX2/AVX-512 matmul kernels (on CPUs that have them).
const simdKernels = true
