// Package classifier is a small convolutional image classifier, the
// feature extractor of golcm's evaluation: its penultimate layer gives the
// features the Fréchet distance compares, its logits the prompt accuracy.
// Any classifier saved in its folder layout (config.json with the
// architecture and class names, model.safetensors) loads by path.
//
// The files: config.go (the architecture), classifier.go (the network),
// load.go (the folder), run.go (batched inference on the host), data.go
// (labelled IDX images), train.go (training with package train).
//
// Depends on GoMLX, models/nn, models/hub, models/safetensors and train.
package classifier
