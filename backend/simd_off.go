//go:build !goexperiment.simd

package backend

// simdKernels: built without GOEXPERIMENT=simd, so the Go backend runs its
// portable matmul kernels, about 3× slower than the SIMD ones.
const simdKernels = false
