// Package metrics holds the sample-quality measures golcm's evaluation
// reports, as small pure functions on host float slices: latent RMSE and
// pixel PSNR between two samples from the same noise, the Fréchet distance
// between two feature sets (with a real matrix square root from a Jacobi
// eigendecomposition, in float64), and a classifier's prompt accuracy.
//
// Depends on the standard library only.
package metrics
